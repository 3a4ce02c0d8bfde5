//! The audit trail: JSON-lines files under `<data dir>/audit/`, one record per S3 request
//! (allowed or refused), per transfer completion and per lifecycle event, chained by hash
//! (`chain.rs`). Appends are group-committed: a writer thread takes every record waiting,
//! writes them, fsyncs once, then answers all their callers. A request is served only after
//! its decision is durable; if the trail cannot be written, requests are refused.
//!
//! The trail is a series of numbered files (`files.rs`): the writer starts the next one
//! between batches once the current one has grown past `rotate_bytes` (`writer.rs`), the chain
//! running on across them. Old files can be deleted after `retain_days` behind a signed anchor
//! (`retention.rs`).
//!
//! What happens after a commit is up to the sinks of the committed trail (`sink.rs`): each
//! committed batch is handed, as its stored lines, to every tap, without the writer waiting
//! on any; the forwarder (`forward.rs`) is one, and above this module each webhook is another.
//! Nothing reaches a sink that the trail does not hold.

pub mod chain;
pub mod checkpoint;
pub mod files;
pub mod forward;
#[cfg(test)]
pub(crate) mod full_disk;
pub mod query;
#[cfg(test)]
pub(crate) mod receiver;
pub mod repair;
pub mod retention;
pub mod sink;
#[cfg(test)]
mod tests;
pub mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::oneshot;

use crate::clock::SharedClock;
use crate::record::{Body, Lifecycle, Repaired};

/// The first trail file; rotation adds `trail-000002.jsonl` and so on.
pub const TRAIL_FILE: &str = "trail-000001.jsonl";
/// Default size past which the writer starts a new file: 64 MiB.
pub const DEFAULT_ROTATE_BYTES: u64 = 64 * 1024 * 1024;
/// The checkpoint signing key, beside the trail folder (its public half in `.pub`).
pub const SIGNING_KEY_FILE: &str = "audit-signing.key";
/// Most records written between two fsyncs.
const MAX_BATCH: usize = 512;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("the audit trail cannot be written ({0}); requests are refused until it can")]
    Unwritable(String),
    #[error("the audit trail is broken at {file} line {line}: {reason}; run `sesame audit verify`")]
    Broken {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("the audit trail cannot be read: {0}")]
    Unreadable(String),
    #[error("audit forwarding: {0}")]
    Forward(String),
}

/// How the trail is kept: the `[audit]` table of the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Start a new file, between batches, once the current one is at least this big.
    pub rotate_bytes: u64,
    /// Delete files whose newest record is older than this many days; `None` keeps all.
    pub retain_days: Option<u32>,
    /// Where committed records are also sent, if anywhere.
    pub forward: Option<forward::Target>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rotate_bytes: DEFAULT_ROTATE_BYTES,
            retain_days: None,
            forward: None,
        }
    }
}

struct Job {
    /// Canonical bodies ([`Body::canonical`], serialised by the caller, off the writer
    /// thread), written in one batch; none: a barrier, answered once everything sent before
    /// it is on disk.
    bodies: Vec<String>,
    done: Option<Reply>,
}

/// Where the writer answers a caller waiting for its record: a task, or a plain thread (the
/// request desk, which records a decision before it stores it).
enum Reply {
    Task(oneshot::Sender<Result<u64, AuditError>>),
    Thread(std::sync::mpsc::SyncSender<Result<u64, AuditError>>),
}

impl Reply {
    fn send(self, result: Result<u64, AuditError>) {
        // A caller that stopped waiting has nothing left to hear.
        match self {
            Reply::Task(tx) => {
                let _ = tx.send(result);
            }
            Reply::Thread(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

/// The appending side, cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: std::sync::mpsc::Sender<Job>,
    /// Set while the last write failed, so callers learn at once.
    failing: Arc<AtomicBool>,
    forward: Option<forward::Queue>,
    taps: Arc<sink::Taps>,
    dir: PathBuf,
}

impl AuditLog {
    /// Opens the trail in `dir`, verifying what is there to find where the chain continues
    /// (the newest file); a broken trail is refused (the gateway does not start on it).
    /// Rotation and retention then run on the writer thread, before the first record.
    pub fn open(
        dir: &Path,
        settings: &Settings,
        clock: SharedClock,
    ) -> Result<AuditLog, AuditError> {
        AuditLog::open_replaying(dir, settings, clock, |_| {})
    }

    /// [`AuditLog::open`], handing each record it verifies to `replay` (what was done under
    /// each grant is rebuilt from the same read).
    pub fn open_replaying(
        dir: &Path,
        settings: &Settings,
        clock: SharedClock,
        replay: impl FnMut(&chain::Record),
    ) -> Result<AuditLog, AuditError> {
        AuditLog::open_holding(dir, settings, clock, retention::Hold::none(), replay)
    }

    /// [`AuditLog::open_replaying`], with retention keeping every record after `hold` (what
    /// a reader that resumes from there after a restart still needs), from the pruning at
    /// open on.
    pub fn open_holding(
        dir: &Path,
        settings: &Settings,
        clock: SharedClock,
        hold: retention::Hold,
        replay: impl FnMut(&chain::Record),
    ) -> Result<AuditLog, AuditError> {
        let signer = checkpoint::Signer::load_or_create(&dir.with_file_name(SIGNING_KEY_FILE))
            .map_err(AuditError::Unwritable)?;
        std::fs::create_dir_all(dir)
            .map_err(|e| AuditError::Unwritable(format!("{}: {e}", dir.display())))?;
        let torn = repair::torn_tail(dir).map_err(AuditError::Unwritable)?;
        let opened_at = clock.now();
        let tip = match verify::verify_each(dir, replay) {
            Ok(summary) => summary.tip,
            Err(verify::VerifyError::Broken(b)) => {
                return Err(AuditError::Broken {
                    file: b.file,
                    line: b.line,
                    reason: b.reason,
                });
            }
            Err(verify::VerifyError::Io(e)) => return Err(AuditError::Unreadable(e)),
        };
        let current = files::list(dir)
            .map_err(AuditError::Unreadable)?
            .pop()
            .unwrap_or_else(|| files::TrailFile::new(dir, 1));
        // Fail closed from the start: the trail must be writable before anything is served.
        writer::append_to(&current.path, b"")
            .map_err(|e| AuditError::Unwritable(format!("{}: {e}", current.path.display())))?;
        let forward = settings
            .forward
            .clone()
            .map(forward::Queue::start)
            .transpose()
            .map_err(AuditError::Forward)?;
        let taps = Arc::new(sink::Taps::new(tip.seq));
        if let Some(queue) = forward.clone() {
            taps.add(Box::new(move |batch| {
                queue.push(batch);
                true
            }));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let failing = Arc::new(AtomicBool::new(false));
        let size = std::fs::metadata(&current.path).map_or(0, |m| m.len());
        let writer = writer::Writer {
            dir: dir.to_owned(),
            current,
            size,
            torn: false,
            tip,
            rotate_bytes: settings.rotate_bytes.max(1),
            retain_days: settings.retain_days,
            hold,
            signer,
            clock,
            failing: failing.clone(),
            taps: taps.clone(),
        };
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(&rx))
            .map_err(|e| AuditError::Unwritable(e.to_string()))?;
        let log = AuditLog {
            tx,
            failing,
            forward,
            taps,
            dir: dir.to_owned(),
        };
        if let Some(torn) = torn {
            let summary = format!(
                "{} bytes cut short by a crash at the end of {} (offset {}) were never acknowledged; kept in {}",
                torn.bytes, torn.file, torn.offset, torn.kept_in
            );
            log.append_later(Lifecycle::AuditRepaired(Repaired {
                at: opened_at,
                summary,
                file: torn.file,
                offset: torn.offset,
                bytes: torn.bytes,
                kept_in: torn.kept_in,
            }));
        }
        Ok(log)
    }

    /// Appends a record and returns once it is on disk (its sequence number).
    pub async fn append(&self, body: impl Into<Body>) -> Result<u64, AuditError> {
        let body = body.into().canonical();
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                bodies: vec![body],
                done: Some(Reply::Task(done)),
            })
            .map_err(|_| AuditError::Unwritable("the writer stopped".into()))?;
        wait.await
            .map_err(|_| AuditError::Unwritable("the writer stopped".into()))?
    }

    /// Appends records in order and returns, on this thread, once all are on disk: they go in
    /// one batch, so either all are in the trail or none is. For code that is not async and must record before it acts.
    pub fn append_all_blocking(&self, bodies: &[Body]) -> Result<(), AuditError> {
        let stopped = || AuditError::Unwritable("the writer stopped".into());
        if bodies.is_empty() {
            return Ok(());
        }
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        self.tx
            .send(Job {
                bodies: bodies.iter().map(Body::canonical).collect(),
                done: Some(Reply::Thread(done)),
            })
            .map_err(|_| stopped())?;
        wait.recv().map_err(|_| stopped())?.map(|_| ())
    }

    /// Returns once every record sent before it (by [`AuditLog::append_later`] too) is on
    /// disk: how the control API makes lifecycle records durable before it answers.
    pub async fn flushed(&self) -> Result<(), AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                bodies: Vec::new(),
                done: Some(Reply::Task(done)),
            })
            .map_err(|_| AuditError::Unwritable("the writer stopped".into()))?;
        wait.await
            .map_err(|_| AuditError::Unwritable("the writer stopped".into()))?
            .map(|_| ())
    }

    /// Appends without waiting (completion records); order is kept, failures are logged.
    pub fn append_later(&self, body: impl Into<Body>) {
        if self
            .tx
            .send(Job {
                bodies: vec![body.into().canonical()],
                done: None,
            })
            .is_err()
        {
            tracing::error!("audit writer stopped: a completion record was lost");
        }
    }

    /// Whether the last write failed (the next one is tried anyway).
    #[must_use]
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Hands every batch committed from now on to `tap`, on the writer thread (it must not
    /// wait: a queue it cannot push to drops, and the sink reads the gap back from the files);
    /// returns the seq of the last record committed before, where reading back ends.
    pub fn tap(&self, tap: impl FnMut(&sink::Committed) -> bool + Send + 'static) -> u64 {
        self.taps.add(Box::new(tap))
    }

    /// The seq of the last committed record: what [`sink::read_back`] may read up to.
    #[must_use]
    pub fn committed(&self) -> u64 {
        self.taps.committed()
    }

    /// The folder of the trail's files.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How forwarding is doing (`None`: not configured).
    #[must_use]
    pub fn forward_stats(&self) -> Option<forward::Stats> {
        self.forward.as_ref().map(forward::Queue::stats)
    }
}
