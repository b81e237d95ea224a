//! `model`: reborn's manifest kinds (`Node`, `GoldImage`, `DisruptionBudget`, `TaintPolicy`),
//! the typed ids and values they are made of (`NodeName`, `VmId`, `MemorySize`, ...), manifest
//! loading with file:line:col diagnostics, and the JSON Schema generated from these types.
//!
//! Must not depend on: any I/O beyond reading manifest files it is handed, tokio, the store,
//! or the PVE crates. Everything here is plain data and pure validation.
