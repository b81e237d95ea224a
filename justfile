# Everyday commands. CI runs `.ci/run`, which `just ci` calls.

default:
    @just --list

# the README's test command
test:
    cargo test --workspace

# formatting and lints exactly as CI checks them
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# everything CI runs
ci:
    .ci/run

# the main job on the embedded defaults
demo:
    cargo run --release -p reborn -- demo

# a PVE-compatible simulator on 127.0.0.1:8006
sim *ARGS:
    cargo run --release -p reborn -- sim --listen 127.0.0.1:8006 {{ARGS}}

# benchmarks (results go in docs/benchmarks.md)
bench:
    cargo bench --workspace
