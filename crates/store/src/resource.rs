//! Declared resources: keys, stored records and the preconditions that guard writes.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A store-wide, monotonically increasing revision. Every committed transaction that changes
/// anything gets the next revision; a resource's `resource_version` is the revision of the last
/// transaction that changed it (the etcd `mod_revision` model).
pub type Revision = u64;

/// Identifies one resource: its kind (`Node`, `GoldImage`, ...) and its name, unique per kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceKey {
    /// The manifest kind, e.g. `Node`.
    pub kind: String,
    /// `metadata.name`, unique within the kind.
    pub name: String,
}

impl ResourceKey {
    /// Builds a key from a kind and a name.
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// A resource as stored: the declared part (labels, spec) and the observed part (status),
/// with the counters that let writers and watchers reason about change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// Kind and name.
    pub key: ResourceKey,
    /// Assigned at creation; a resource deleted and created again gets a new uid.
    pub uid: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The declared spec, as the manifest gave it.
    pub spec: Value,
    /// Written by the operator, separately from the spec (`Value::Null` until first written).
    pub status: Value,
    /// Starts at 1 and is bumped only when the spec changes (not on label or status writes).
    pub generation: u64,
    /// The revision of the last change to this resource (spec, labels or status).
    pub resource_version: Revision,
    /// When the resource was created (store clock).
    pub created_at: DateTime<Utc>,
    /// When the resource last changed (store clock).
    pub updated_at: DateTime<Utc>,
}

/// The precondition a write states about the current version of a resource (optimistic
/// concurrency). A write whose precondition does not hold fails with
/// [`StoreError::Conflict`](crate::StoreError::Conflict) and the whole transaction is rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    /// No precondition: last writer wins (`reborn apply` without a version).
    Any,
    /// The resource must not exist yet (create only).
    Absent,
    /// The resource must exist with exactly this `resource_version`.
    Version(Revision),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Any => f.write_str("any version"),
            Expect::Absent => f.write_str("absent"),
            Expect::Version(v) => write!(f, "resourceVersion {v}"),
        }
    }
}

/// The declared part of a resource, as `apply` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceWrite {
    /// Kind and name.
    pub key: ResourceKey,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The declared spec.
    pub spec: Value,
    /// Precondition on the stored version.
    pub expect: Expect,
}

impl ResourceWrite {
    /// A write without a version precondition and without labels.
    pub fn new(key: ResourceKey, spec: Value) -> Self {
        Self {
            key,
            labels: BTreeMap::new(),
            spec,
            expect: Expect::Any,
        }
    }

    /// Sets the labels.
    pub fn with_labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.labels = labels;
        self
    }

    /// Sets the version precondition.
    pub fn expecting(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }
}

/// A consistent list of resources of one kind, with the revision it was read at (a watcher can
/// compare it with [`Store::subscribe`](crate::Store::subscribe) values).
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// The store revision when the list was read.
    pub revision: Revision,
    /// The resources, ordered by name.
    pub items: Vec<Resource>,
}

/// A [`Listing`] whose resources are shared, immutable snapshots: taking one again while little
/// changed costs a row scan, not a decode and copy of every spec and status (the controller
/// lists every node on every pass).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedListing {
    /// The store revision when the list was read.
    pub revision: Revision,
    /// The resources, ordered by name.
    pub items: Vec<std::sync::Arc<Resource>>,
}
