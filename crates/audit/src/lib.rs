//! `audit`: decoding Cerbos PDP audit logs, evaluating `TaintPolicy` rules over them, and
//! tailing log files with cursors persisted in the store.
//!
//! Must not depend on: the PVE crates or the operator runtime; it produces taints, it never
//! acts on them.
//!
//! The path of a line: [`tail::FileTailer`] (or the HTTP body given to
//! [`Ingestor::ingest_ndjson`]) → [`decode::decode_line`] → [`join::Joiner`] (access and
//! decision halves paired on `callId`) and [`policy::Evaluator`] (CheckResources decisions
//! only, attributed to a node by [`attribution`]) → taints committed together with the
//! source's cursor in one store transaction ([`Ingestor::commit_batch`]), with the policy
//! windows the batch changed, so a restart resumes both exactly.

pub mod attribution;
mod call_key;
pub mod decode;
mod few;
pub mod ingest;
pub mod join;
mod lite;
pub mod policy;
mod scan;
mod shape;
pub mod tail;

pub use attribution::{AddressBook, Attributed, NodeAddresses, attribute, peer_ip};
pub use decode::{DecodeError, Entry, decode_line};
pub use ingest::{DEFAULT_WINDOW_SCOPE, IngestError, IngestReport, Ingestor, TAINT_EVENT_KIND};
pub use join::{JoinedCall, Joiner};
pub use policy::{CompiledPolicy, EvalStats, Evaluator};
pub use tail::{FileIdentity, FileSourceConfig, FileTailer, TailBatch, TailError, run_file_source};
