//! `planner`: the pure function `plan(desired, observed, taints, budgets, policy, now) -> Plan`.
//! Every action it emits carries its reason.
//!
//! Must not depend on: async, a clock, randomness of its own, the network, the store or the
//! filesystem. It depends on `model` only; purity is enforced by this dependency list.
