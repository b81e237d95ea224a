//! `store`: the desired-state store. A `Store` trait and its SQLite implementation: resources
//! with generation/resourceVersion, status, taints, events, the operation journal and audit
//! cursors.
//!
//! Must not depend on: the PVE crates, the planner or the operator runtime.
