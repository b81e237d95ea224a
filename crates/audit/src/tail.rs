//! Tails a Cerbos audit file across rotation (rename + new file) and truncation, never splitting a line, resuming from a stored cursor.
//!
//! A file is identified by `device:inode`. The cursor is the identity and the offset just past
//! the last complete line handed out; a partial trailing line stays in memory until its
//! newline arrives. On resume, a cursor whose file was rotated away is found again by identity
//! in the same directory (`audit-<time>.log`) and drained before the current file.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::{CursorPosition, Store};
use tokio::sync::{mpsc, watch};

use crate::ingest::{IngestError, IngestReport, Ingestor};

/// Lines longer than this are skipped as malformed (Cerbos lines are a few KiB).
pub const DEFAULT_MAX_LINE: usize = 8 * 1024 * 1024;
/// At most this many bytes per batch (one store transaction).
pub const DEFAULT_MAX_BATCH: usize = 4 * 1024 * 1024;

/// A file's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// Device id.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileIdentity {
    /// The identity of an open file or a path's metadata.
    pub fn of(meta: &fs::Metadata) -> Self {
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

impl fmt::Display for FileIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.dev, self.ino)
    }
}

impl FromStr for FileIdentity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (d, i) = s
            .split_once(':')
            .ok_or_else(|| format!("file identity {s:?} is not dev:inode"))?;
        Ok(FileIdentity {
            dev: d.parse().map_err(|_| format!("bad device in {s:?}"))?,
            ino: i.parse().map_err(|_| format!("bad inode in {s:?}"))?,
        })
    }
}

/// Complete lines read from one file, and the position just past them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailBatch {
    /// Complete lines, each ending in `\n`.
    pub data: Vec<u8>,
    /// The file they came from.
    pub identity: FileIdentity,
    /// The offset just past the last complete line.
    pub offset: u64,
    /// Partial or over-long lines that were dropped (a line cut by rotation or truncation).
    pub dropped_lines: u64,
}

impl TailBatch {
    /// The cursor to store with this batch.
    pub fn cursor(&self) -> CursorPosition {
        CursorPosition::File {
            identity: self.identity.to_string(),
            offset: self.offset,
        }
    }
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    identity: FileIdentity,
    /// Bytes read so far (file position).
    read_to: u64,
    /// Start of the first byte not yet part of a handed-out complete line.
    line_start: u64,
}

/// Follows one audit file path.
#[derive(Debug)]
pub struct FileTailer {
    path: PathBuf,
    open: Option<OpenFile>,
    resume: Option<(FileIdentity, u64)>,
    partial: Vec<u8>,
    discarding: bool,
    dropped: u64,
    max_line: usize,
    max_batch: usize,
}

impl FileTailer {
    /// Tails `path` from its beginning.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileTailer {
            path: path.into(),
            open: None,
            resume: None,
            partial: Vec::new(),
            discarding: false,
            dropped: 0,
            max_line: DEFAULT_MAX_LINE,
            max_batch: DEFAULT_MAX_BATCH,
        }
    }

    /// Tails `path` from a stored cursor. A cursor that is not a file cursor or whose
    /// identity does not parse starts from the beginning of the current file.
    pub fn resume(path: impl Into<PathBuf>, cursor: Option<&CursorPosition>) -> Self {
        let mut t = FileTailer::new(path);
        t.resume = match cursor {
            Some(CursorPosition::File { identity, offset }) => match identity.parse() {
                Ok(id) => Some((id, *offset)),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring unreadable audit cursor");
                    None
                }
            },
            _ => None,
        };
        t
    }

    /// Sets the longest accepted line and the largest batch.
    pub fn with_limits(mut self, max_line: usize, max_batch: usize) -> Self {
        self.max_line = max_line.max(1);
        self.max_batch = max_batch.max(1);
        self
    }

    /// The path being followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Forgets everything read since `position` (a failed commit) and starts again there.
    pub fn rewind(&mut self, position: Option<&CursorPosition>) {
        let path = self.path.clone();
        *self = FileTailer::resume(path, position).with_limits(self.max_line, self.max_batch);
    }

    /// Reads what is available. `None` when there is nothing new (or no file yet).
    pub fn poll(&mut self) -> io::Result<Option<TailBatch>> {
        // Bounded: each round either returns or switches file once.
        for _ in 0..4 {
            if self.open.is_none() && !self.open_initial()? {
                return Ok(None);
            }
            let batch = self.read_available()?;
            if let Some(b) = batch {
                return Ok(Some(b));
            }
            // At the end of the open file: has it been rotated or truncated?
            let Some(open) = &self.open else {
                return Ok(None);
            };
            let current = match fs::metadata(&self.path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let identity = open.identity;
            if FileIdentity::of(&current) != identity {
                // Rotated. The writer closed the old file before renaming it; drain it once
                // more in case a line landed between our last read and the rename.
                if let Some(b) = self.read_available()? {
                    return Ok(Some(b));
                }
                let cut = self.drop_partial();
                tracing::info!(path = %self.path.display(), old = %identity, "audit log rotated");
                self.open = None;
                self.open_at(&self.path.clone(), 0)?;
                if cut > 0 {
                    return Ok(Some(self.empty_batch()));
                }
                continue;
            }
            if current.len() < open.read_to {
                tracing::info!(path = %self.path.display(), "audit log truncated; reading from the start");
                self.drop_partial();
                if let Some(open) = &mut self.open {
                    open.file.seek(SeekFrom::Start(0))?;
                    open.read_to = 0;
                    open.line_start = 0;
                }
                continue;
            }
            return Ok(None);
        }
        Ok(None)
    }

    fn empty_batch(&mut self) -> TailBatch {
        let (identity, offset) = self
            .open
            .as_ref()
            .map(|o| (o.identity, o.line_start))
            .unwrap_or((FileIdentity { dev: 0, ino: 0 }, 0));
        TailBatch {
            data: Vec::new(),
            identity,
            offset,
            dropped_lines: std::mem::take(&mut self.dropped),
        }
    }

    /// Drops a partial line (its file ended without its newline); returns 1 if there was one.
    fn drop_partial(&mut self) -> u64 {
        let cut = u64::from(!self.partial.is_empty() || self.discarding);
        if cut > 0 && !self.discarding {
            self.dropped += 1;
        }
        self.partial.clear();
        self.discarding = false;
        cut
    }

    /// Opens the file to start from; false if there is none yet.
    fn open_initial(&mut self) -> io::Result<bool> {
        if let Some((identity, offset)) = self.resume.take() {
            match fs::metadata(&self.path) {
                Ok(m) if FileIdentity::of(&m) == identity => {
                    let offset = if m.len() < offset { 0 } else { offset };
                    return self.open_at(&self.path.clone(), offset);
                }
                Ok(_) | Err(_) => {}
            }
            if let Some(old) = find_by_identity(&self.path, identity)? {
                tracing::info!(file = %old.display(), "resuming audit log in its rotated file");
                return self.open_at(&old, offset);
            }
            tracing::warn!(path = %self.path.display(), cursor = %identity, "the file of the audit cursor is gone; reading the current file from the start");
        }
        match self.open_at(&self.path.clone(), 0) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            other => other,
        }
    }

    fn open_at(&mut self, path: &Path, offset: u64) -> io::Result<bool> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let identity = FileIdentity::of(&file.metadata()?);
        file.seek(SeekFrom::Start(offset))?;
        self.partial.clear();
        self.discarding = false;
        self.open = Some(OpenFile {
            file,
            identity,
            read_to: offset,
            line_start: offset,
        });
        Ok(true)
    }

    /// Reads up to the batch limit from the open file; `None` if nothing complete was read
    /// and nothing was dropped.
    fn read_available(&mut self) -> io::Result<Option<TailBatch>> {
        let Some(open) = &mut self.open else {
            return Ok(None);
        };
        let mut data = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut got_any = false;
        while data.len() < self.max_batch {
            let n = match open.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            got_any = true;
            let base = open.read_to;
            open.read_to += n as u64;
            let chunk = &buf[..n];
            let Some(last) = chunk.iter().rposition(|b| *b == b'\n') else {
                if !self.discarding {
                    self.partial.extend_from_slice(chunk);
                    if self.partial.len() > self.max_line {
                        self.partial.clear();
                        self.discarding = true;
                        self.dropped += 1;
                    }
                }
                continue;
            };
            let first = chunk.iter().position(|b| *b == b'\n').unwrap_or(last);
            if self.discarding {
                self.discarding = false;
            } else {
                data.extend_from_slice(&self.partial);
                data.extend_from_slice(&chunk[..=first]);
            }
            self.partial.clear();
            data.extend_from_slice(&chunk[first + 1..=last]);
            let rest = &chunk[last + 1..];
            if rest.len() > self.max_line {
                self.discarding = true;
                self.dropped += 1;
            } else {
                self.partial.extend_from_slice(rest);
            }
            open.line_start = base + last as u64 + 1;
        }
        if !got_any && self.dropped == 0 {
            return Ok(None);
        }
        if data.is_empty() && self.dropped == 0 {
            return Ok(None);
        }
        Ok(Some(TailBatch {
            data,
            identity: open.identity,
            offset: open.line_start,
            dropped_lines: std::mem::take(&mut self.dropped),
        }))
    }
}

/// Finds a file with this identity in the directory of `path` (a rotated audit log).
fn find_by_identity(path: &Path, identity: FileIdentity) -> io::Result<Option<PathBuf>> {
    let dir = parent_dir(path);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        if let Ok(m) = entry.metadata()
            && m.is_file()
            && FileIdentity::of(&m) == identity
        {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

/// Where and how often to tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSourceConfig {
    /// The source name (the cursor's key in the store).
    pub source: String,
    /// The audit log path (`audit.file.path` of the Cerbos config).
    pub path: PathBuf,
    /// How often to look for new lines (with `notify`: the fallback, e.g. for file systems
    /// without inotify events).
    pub poll_interval: Duration,
    /// Also look as soon as the kernel reports a change in the file's directory (inotify:
    /// appends, truncation, creation, renames), so that a line is read within a millisecond
    /// or so instead of up to `poll_interval` later.
    pub notify: bool,
}

impl FileSourceConfig {
    /// A source woken by inotify, polling every 100 ms as a fallback.
    pub fn new(source: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        FileSourceConfig {
            source: source.into(),
            path: path.into(),
            poll_interval: Duration::from_millis(100),
            notify: true,
        }
    }
}

/// An inotify watch on the directory of an audit file: readable when something in it changed
/// (the file itself, or its rotation). Watching the directory rather than the file keeps
/// working across rotation by rename.
struct DirWatch {
    fd: tokio::io::unix::AsyncFd<rustix::fd::OwnedFd>,
}

impl DirWatch {
    /// Watches the directory of `path`; must run inside the tokio runtime.
    fn new(path: &Path) -> io::Result<DirWatch> {
        use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        inotify::add_watch(
            &fd,
            parent_dir(path),
            WatchFlags::MODIFY
                | WatchFlags::CLOSE_WRITE
                | WatchFlags::CREATE
                | WatchFlags::MOVED_FROM
                | WatchFlags::MOVED_TO
                | WatchFlags::DELETE,
        )?;
        // `AsyncFd::new` is deprecated because an arbitrary `AsRawFd` type could close or swap
        // its descriptor while registered; an `OwnedFd` owned by the `AsyncFd` cannot (it is
        // deregistered before it closes), and the replacement `register` is `unsafe`, which
        // this workspace forbids.
        #[allow(deprecated)]
        let fd = tokio::io::unix::AsyncFd::new(fd)?;
        Ok(DirWatch { fd })
    }

    /// Waits for the next change, then consumes every queued event (the tailer reads
    /// everything available anyway, so one wake-up covers them all).
    async fn changed(&self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            let mut guard = self.fd.readable().await?;
            let mut got = false;
            let drained = guard.try_io(|fd| {
                loop {
                    match rustix::io::read(fd.get_ref(), &mut buf[..]) {
                        Ok(0) => return Ok(()),
                        Ok(_) => got = true,
                        Err(e) => return Err(io::Error::from(e)),
                    }
                }
            });
            match drained {
                // Read up to `EAGAIN`: readiness is cleared, events (if any) consumed.
                Err(_would_block) if got => return Ok(()),
                Err(_would_block) => {}
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => return Err(e),
            }
        }
    }
}

/// Opens the watch of a source, or says why it polls only.
fn open_watch(config: &FileSourceConfig) -> Option<DirWatch> {
    if !config.notify {
        return None;
    }
    match DirWatch::new(&config.path) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::debug!(path = %config.path.display(), error = %e, "no inotify watch on the audit log's directory; polling only");
            None
        }
    }
}

/// Waits for a change reported by `watch`; never returns without one.
async fn watched(watch: Option<&DirWatch>) -> io::Result<()> {
    match watch {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

/// The directory of `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Why tailing stopped.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// Reading the cursor failed.
    #[error("reading the audit cursor of source {source_name:?} failed")]
    Cursor {
        /// The source.
        source_name: String,
        /// The store's error.
        #[source]
        source: store::StoreError,
    },
    /// The blocking worker panicked or was cancelled.
    #[error("audit tailing worker of source {source_name:?} failed")]
    Worker {
        /// The source.
        source_name: String,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Tails `config.path` until `shutdown` becomes true, committing every batch with its cursor
/// (resuming from the stored cursor). Read and store errors are logged and retried after the
/// poll interval; the batch is then read again from the last committed cursor. Each committed
/// batch's report is sent to `reports` if given.
pub async fn run_file_source(
    config: FileSourceConfig,
    store: Arc<dyn Store>,
    ingestor: Arc<Mutex<Ingestor>>,
    mut shutdown: watch::Receiver<bool>,
    reports: Option<mpsc::UnboundedSender<IngestReport>>,
) -> Result<(), TailError> {
    let source = config.source.clone();
    let cursor = {
        let store = store.clone();
        let source = source.clone();
        tokio::task::spawn_blocking(move || store.audit_cursor(&source))
            .await
            .map_err(|e| TailError::Worker {
                source_name: config.source.clone(),
                source: e,
            })?
            .map_err(|e| TailError::Cursor {
                source_name: config.source.clone(),
                source: e,
            })?
    };
    let mut committed = cursor.map(|c| c.position);
    let mut tailer = FileTailer::resume(&config.path, committed.as_ref());
    // Set up before the first read: a line appended after that read wakes the loop.
    let mut watch = open_watch(&config);
    tracing::info!(source = %source, path = %config.path.display(), notify = watch.is_some(), "tailing Cerbos audit log");
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let store2 = store.clone();
        let ingestor2 = ingestor.clone();
        let source2 = source.clone();
        let (t, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = step(&mut tailer, &*store2, &ingestor2, &source2);
            (tailer, outcome)
        })
        .await
        .map_err(|e| TailError::Worker {
            source_name: source.clone(),
            source: e,
        })?;
        tailer = t;
        let more = match outcome {
            Ok(Some(report)) => {
                committed = report.cursor.clone().or(committed);
                if let Some(tx) = &reports {
                    let _ = tx.send(report);
                }
                true
            }
            Ok(None) => false,
            Err(StepError::Io(e)) => {
                tracing::warn!(source = %source, error = %e, "reading the audit log failed; retrying");
                tailer.rewind(committed.as_ref());
                false
            }
            Err(StepError::Ingest(e)) => {
                tracing::warn!(source = %source, error = %e, "committing audit batch failed; retrying");
                tailer.rewind(committed.as_ref());
                false
            }
        };
        if more {
            continue;
        }
        let woken = tokio::select! {
            _ = tokio::time::sleep(config.poll_interval) => Wake::Timer,
            r = watched(watch.as_ref()) => match r {
                Ok(()) => Wake::Change,
                Err(e) => Wake::WatchFailed(e),
            },
            changed = shutdown.changed() => match changed {
                Ok(()) => Wake::Shutdown,
                Err(_) => return Ok(()),
            },
        };
        match woken {
            Wake::Timer if watch.is_none() => {
                // The directory may exist by now (or inotify have room again).
                watch = open_watch(&config);
            }
            Wake::WatchFailed(e) => {
                tracing::warn!(source = %source, error = %e, "inotify watch of the audit log failed; polling only");
                watch = None;
            }
            Wake::Timer | Wake::Change | Wake::Shutdown => {}
        }
    }
}

/// Why the tailing loop woke up.
enum Wake {
    Timer,
    Change,
    WatchFailed(io::Error),
    Shutdown,
}

enum StepError {
    Io(io::Error),
    Ingest(IngestError),
}

fn step(
    tailer: &mut FileTailer,
    store: &dyn Store,
    ingestor: &Mutex<Ingestor>,
    source: &str,
) -> Result<Option<IngestReport>, StepError> {
    let Some(batch) = tailer.poll().map_err(StepError::Io)? else {
        return Ok(None);
    };
    let mut ing = ingestor.lock().unwrap_or_else(|e| e.into_inner());
    let mut report = ing
        .commit_batch(store, source, &batch.data, Some(batch.cursor()))
        .map_err(StepError::Ingest)?;
    report.malformed += batch.dropped_lines;
    report.lines += batch.dropped_lines;
    Ok(Some(report))
}
