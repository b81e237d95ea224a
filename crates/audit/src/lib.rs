//! `audit`: decoding Cerbos PDP audit logs, evaluating `TaintPolicy` rules over them, and
//! tailing log files with cursors persisted in the store.
//!
//! Must not depend on: the PVE crates or the operator runtime; it produces taints, it never
//! acts on them.
