//! `pve-sim`: a Proxmox VE 8.x compatible HTTP(S) server for tests, benchmarks and the demo,
//! written from PVE's documented behaviour (`shared/reference/pve-api.md`).
//!
//! Must not depend on: `pve-client` (a bug must not hide by being the same on both sides),
//! or any other reborn crate.
