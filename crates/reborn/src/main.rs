//! `reborn`: the command-line binary. CLI, `run` (the daemon), `sim` and `demo`.
//! Composition only: behaviour lives in the library crates.

fn main() {}
