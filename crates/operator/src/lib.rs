//! `operator`: the runtime. The controller loop, the executor (the only code that mutates PVE),
//! readiness checks, the operator HTTP API, the webhook and metrics.
//!
//! Must not depend on: `pve-sim` (tests may use it as a dev-dependency) or the `reborn` binary.
