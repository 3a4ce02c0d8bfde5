//! The audit trail: JSON-lines files, one record per S3 request (allowed or refused), per
//! transfer completion and per lifecycle event, chained by hash (`chain.rs`). Each gateway
//! writes its own chain, in the folder of the trail root named by its replica id, and
//! readers take every chain of the root together (`replicas.rs`). Appends are
//! group-committed: a writer thread takes every record waiting, writes them, fsyncs once,
//! then answers all their callers. A request is served only after its decision is durable;
//! if the trail cannot be written, requests are refused.
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
pub mod replicas;
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
    /// The trail root every replica's chain is under (`audit.dir`); `None`: `<data dir>/audit`.
    /// Read by the gateway, which opens its replica's chain there ([`AuditLog::open_replica`]).
    pub root: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rotate_bytes: DEFAULT_ROTATE_BYTES,
            retain_days: None,
            forward: None,
            root: None,
        }
    }
}

/// A body as the chain of `replica` stores it: naming the replica (when the chain is one's)
/// and canonical, as its hash covers it.
fn stored(replica: Option<&str>, body: Body) -> String {
    match replica {
        Some(replica) => body.written_by(replica).canonical(),
        None => body.canonical(),
    }
}

struct Job {
    /// Canonical bodies ([`Body::canonical`], serialised by the caller, off the writer
    /// thread), written in one batch; none: a barrier, answered once everything sent before
    /// it is on disk.
    bodies: Vec<String>,
    done: Option<Reply>,
}

/// A record on its way to disk ([`AuditLog::append_started`]): resolves to its sequence
/// number once it is durable.
pub struct Appending(oneshot::Receiver<Result<u64, AuditError>>);

impl std::future::Future for Appending {
    type Output = Result<u64, AuditError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|written| {
            written.unwrap_or_else(|_| Err(AuditError::Unwritable("the writer stopped".into())))
        })
    }
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
    /// The replica every record names (none: a chain that is no replica's).
    replica: Option<Arc<str>>,
}

/// A chain verified and ready for its writer: where it continues, and what was repaired.
struct Opening {
    dir: PathBuf,
    signer: checkpoint::Signer,
    settings: Settings,
    clock: SharedClock,
    tip: chain::Tip,
    current: files::TrailFile,
    /// Torn last lines moved aside, each to be recorded once the writer runs.
    torn: Vec<repair::Torn>,
    opened_at: time::OffsetDateTime,
    /// Records retention must keep (what a reader resuming after a restart still needs).
    hold: retention::Hold,
}

impl Opening {
    /// Creates the chain's folder, moves a torn last line aside, verifies the chain (handing
    /// each record to `replay`) and checks that its newest file can be written.
    fn new(
        chain: &replicas::Chain,
        signer: checkpoint::Signer,
        settings: &Settings,
        clock: SharedClock,
        replay: impl FnMut(&chain::Record),
    ) -> Result<Opening, AuditError> {
        let dir = &chain.dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| AuditError::Unwritable(format!("{}: {e}", dir.display())))?;
        let torn = repair::torn_tail(dir).map_err(AuditError::Unwritable)?;
        let opened_at = clock.now();
        let tip = verify::verify_chain(chain, replay)?.tip;
        let current = files::list(dir)
            .map_err(AuditError::Unreadable)?
            .pop()
            .unwrap_or_else(|| files::TrailFile::new(dir, 1));
        // Fail closed from the start: the trail must be writable before anything is served.
        writer::append_to(&current.path, b"")
            .map_err(|e| AuditError::Unwritable(format!("{}: {e}", current.path.display())))?;
        Ok(Opening {
            dir: dir.clone(),
            signer,
            settings: settings.clone(),
            clock,
            tip,
            current,
            torn: torn.into_iter().collect(),
            opened_at,
            hold: retention::Hold::none(),
        })
    }

    /// Starts the writer thread, writing as `replica` (its id, and the lock it holds on the
    /// chain) or as no replica, and records the repairs.
    fn start(self, replica: Option<(String, std::fs::File)>) -> Result<AuditLog, AuditError> {
        let forward = self
            .settings
            .forward
            .clone()
            .map(forward::Queue::start)
            .transpose()
            .map_err(AuditError::Forward)?;
        let taps = Arc::new(sink::Taps::new(self.tip.seq));
        if let Some(queue) = forward.clone() {
            taps.add(Box::new(move |batch| {
                queue.push(batch);
                true
            }));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let failing = Arc::new(AtomicBool::new(false));
        let size = std::fs::metadata(&self.current.path).map_or(0, |m| m.len());
        let (replica, lock) = replica.unzip();
        let replica: Option<Arc<str>> = replica.map(Arc::from);
        let writer = writer::Writer {
            dir: self.dir.clone(),
            current: self.current,
            open: None,
            size,
            torn: false,
            tip: self.tip,
            rotate_bytes: self.settings.rotate_bytes.max(1),
            retain_days: self.settings.retain_days,
            hold: self.hold,
            signer: self.signer,
            clock: self.clock,
            failing: failing.clone(),
            taps: taps.clone(),
            replica: replica.clone(),
            _lock: lock,
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
            dir: self.dir,
            replica,
        };
        for torn in self.torn {
            let summary = format!(
                "{} bytes cut short by a crash at the end of {} (offset {}) were never acknowledged; kept in {}",
                torn.bytes, torn.file, torn.offset, torn.kept_in
            );
            log.append_later(Lifecycle::AuditRepaired(Repaired {
                at: self.opened_at,
                summary,
                file: torn.file,
                offset: torn.offset,
                bytes: torn.bytes,
                kept_in: torn.kept_in,
            }));
        }
        Ok(log)
    }
}

impl From<verify::VerifyError> for AuditError {
    fn from(e: verify::VerifyError) -> AuditError {
        match e {
            verify::VerifyError::Broken(b) => AuditError::Broken {
                file: b.file,
                line: b.line,
                reason: b.reason,
            },
            verify::VerifyError::Io(e) => AuditError::Unreadable(e),
        }
    }
}

/// Where a replica's chain is opened: the trail root (shared by replicas or not), the
/// replica's id, and its signing key (in its own data directory, never shared).
#[derive(Debug, Clone, Copy)]
pub struct Replica<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub signing_key: &'a Path,
}

/// The lock a replica's writer holds on its chain's folder for as long as it runs.
const LOCK_FILE: &str = "writer.lock";

impl AuditLog {
    /// Opens the trail in `dir` as one chain, its signing key beside the folder, verifying
    /// what is there to find where the chain continues (the newest file); a broken trail is
    /// refused (the gateway does not start on it). Its records name no replica: for one
    /// writer that is not a replica of a gateway (tests, embedders). Rotation and retention
    /// then run on the writer thread, before the first record.
    pub fn open(
        dir: &Path,
        settings: &Settings,
        clock: SharedClock,
    ) -> Result<AuditLog, AuditError> {
        let signer = checkpoint::Signer::load_or_create(&dir.with_file_name(SIGNING_KEY_FILE))
            .map_err(AuditError::Unwritable)?;
        let chain = replicas::Chain::folder(dir);
        Opening::new(&chain, signer, settings, clock, |_| {})?.start(None)
    }

    /// [`AuditLog::open`], handing each record it verifies to `replay`, with retention
    /// keeping every record after `hold` from the pruning at open on.
    pub fn open_holding(
        dir: &Path,
        settings: &Settings,
        clock: SharedClock,
        hold: retention::Hold,
        replay: impl FnMut(&chain::Record),
    ) -> Result<AuditLog, AuditError> {
        let signer = checkpoint::Signer::load_or_create(&dir.with_file_name(SIGNING_KEY_FILE))
            .map_err(AuditError::Unwritable)?;
        let chain = replicas::Chain::folder(dir);
        let mut opening = Opening::new(&chain, signer, settings, clock, replay)?;
        opening.hold = hold;
        opening.start(None)
    }

    /// Opens the replica's own chain, `<root>/<id>/`, as [`AuditLog::open`] does, and
    /// locks it: a second gateway with the same id is refused. Each record it verifies is
    /// handed to `replay` (what was done under each grant is rebuilt from the same read):
    /// first those of the trail from before replicas at the root, when there is one (read
    /// and checked, never written again), then the chain's own. Every record the log writes
    /// names the replica. Retention keeps every record after `hold`; the trail from before
    /// replicas is handed to `replay` only when `replay_before` (it is never written again, so
    /// once a reader has counted it, it need not again).
    pub fn open_replica(
        replica: Replica<'_>,
        settings: &Settings,
        clock: SharedClock,
        (hold, replay_before): (retention::Hold, bool),
        mut replay: impl FnMut(&chain::Record),
    ) -> Result<AuditLog, AuditError> {
        let signer = checkpoint::Signer::load_or_create(replica.signing_key)
            .map_err(AuditError::Unwritable)?;
        let chain = replicas::Chain::of_replica(replica.root, replica.id);
        let unwritable = |path: &Path, e: std::io::Error| {
            AuditError::Unwritable(format!("{}: {e}", path.display()))
        };
        std::fs::create_dir_all(&chain.dir).map_err(|e| unwritable(&chain.dir, e))?;
        let lock_path = chain.dir.join(LOCK_FILE);
        let lock = std::fs::File::create(&lock_path).map_err(|e| unwritable(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AuditError::Unwritable(format!(
                    "{}: another gateway is writing the chain of replica {} (its data directory's replica.id); each replica needs a data directory of its own",
                    chain.dir.display(),
                    replica.id
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(unwritable(&lock_path, e)),
        }
        let public_key = chain.public_key_file();
        std::fs::write(&public_key, format!("{}\n", signer.public_key_hex()))
            .map_err(|e| unwritable(&public_key, e))?;
        let mut torn = Vec::new();
        if let Some(before) =
            replicas::before_replicas(replica.root).map_err(AuditError::Unreadable)?
        {
            // Its files are named from the replica's folder, where the record goes.
            torn.extend(
                repair::torn_tail(&before.dir)
                    .map_err(AuditError::Unwritable)?
                    .map(|t| repair::Torn {
                        file: format!("../{}", t.file),
                        kept_in: format!("../{}", t.kept_in),
                        ..t
                    }),
            );
            if replay_before {
                verify::verify_chain(&before, &mut replay).map_err(AuditError::from)?;
            } else {
                verify::verify_chain(&before, |_| {}).map_err(AuditError::from)?;
            }
        }
        let mut opening = Opening::new(&chain, signer, settings, clock, replay)?;
        opening.torn.splice(0..0, torn);
        opening.hold = hold;
        opening.start(Some((replica.id.to_owned(), lock)))
    }

    /// Appends a record and returns once it is on disk (its sequence number).
    pub async fn append(&self, body: impl Into<Body>) -> Result<u64, AuditError> {
        self.append_started(body)?.await
    }

    /// Hands a record to the writer and returns at once: the [`Appending`] resolves when it
    /// is on disk. For work that may start meanwhile but must not be answered before then.
    pub fn append_started(&self, body: impl Into<Body>) -> Result<Appending, AuditError> {
        let body = self.written(body.into());
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                bodies: vec![body],
                done: Some(Reply::Task(done)),
            })
            .map_err(|_| AuditError::Unwritable("the writer stopped".into()))?;
        Ok(Appending(wait))
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
                bodies: bodies.iter().map(|b| self.written(b.clone())).collect(),
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
                bodies: vec![self.written(body.into())],
                done: None,
            })
            .is_err()
        {
            tracing::error!("audit writer stopped: a completion record was lost");
        }
    }

    /// The body as this log writes it.
    fn written(&self, body: Body) -> String {
        stored(self.replica.as_deref(), body)
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
