//! The audit trail: JSON-lines files under `<data dir>/audit/`, one record per S3 request
//! (allowed or refused), per transfer completion and per lifecycle event, chained by hash
//! (`chain.rs`). Appends are group-committed: a writer thread takes every record waiting,
//! writes them, fsyncs once, then answers all their callers. A request is served only after
//! its decision is durable; if the trail cannot be written, requests are refused.

pub mod chain;
pub mod checkpoint;
pub mod verify;

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::oneshot;

use self::chain::Tip;

/// The one trail file; rotation will add numbered siblings.
pub const TRAIL_FILE: &str = "trail-000001.jsonl";
/// The checkpoint signing key, beside the trail folder (its public half in `.pub`).
pub const SIGNING_KEY_FILE: &str = "audit-signing.key";
/// Most records written between two fsyncs.
const MAX_BATCH: usize = 512;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("the audit trail cannot be written ({0}); requests are refused until it can")]
    Unwritable(String),
    #[error("the audit trail is broken at line {line}: {reason}; run `sesame audit verify`")]
    Broken { line: usize, reason: String },
    #[error("the audit trail cannot be read: {0}")]
    Unreadable(String),
}

struct Job {
    body: serde_json::Value,
    done: Option<oneshot::Sender<Result<u64, AuditError>>>,
}

/// The appending side, cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: std::sync::mpsc::Sender<Job>,
    /// Set while the last write failed, so callers learn at once.
    failing: Arc<AtomicBool>,
}

impl AuditLog {
    /// Opens the trail in `dir`, verifying what is there to find where the chain continues;
    /// a broken trail is refused (the gateway does not start on it).
    pub fn open(dir: &Path) -> Result<AuditLog, AuditError> {
        let signer = checkpoint::Signer::load_or_create(&dir.with_file_name(SIGNING_KEY_FILE))
            .map_err(AuditError::Unwritable)?;
        std::fs::create_dir_all(dir)
            .map_err(|e| AuditError::Unwritable(format!("{}: {e}", dir.display())))?;
        let path = dir.join(TRAIL_FILE);
        let tip = match verify::verify_dir(dir) {
            Ok(summary) => summary.tip,
            Err(verify::VerifyError::Broken(b)) => {
                return Err(AuditError::Broken {
                    line: b.line,
                    reason: b.reason,
                });
            }
            Err(verify::VerifyError::Io(e)) => return Err(AuditError::Unreadable(e)),
        };
        // Fail closed from the start: the trail must be writable before anything is served.
        append_to(&path, b"")
            .map_err(|e| AuditError::Unwritable(format!("{}: {e}", path.display())))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let failing = Arc::new(AtomicBool::new(false));
        let flag = failing.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(&rx, &path, tip, &flag, &signer))
            .map_err(|e| AuditError::Unwritable(e.to_string()))?;
        Ok(AuditLog { tx, failing })
    }

    /// Appends a record and returns once it is on disk (its sequence number).
    pub async fn append(&self, body: serde_json::Value) -> Result<u64, AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                body,
                done: Some(done),
            })
            .map_err(|_| AuditError::Unwritable("the writer stopped".into()))?;
        wait.await
            .map_err(|_| AuditError::Unwritable("the writer stopped".into()))?
    }

    /// Appends without waiting (completion records); order is kept, failures are logged.
    pub fn append_later(&self, body: serde_json::Value) {
        if self.tx.send(Job { body, done: None }).is_err() {
            tracing::error!("audit writer stopped: a completion record was lost");
        }
    }

    /// Whether the last write failed (the next one is tried anyway).
    #[must_use]
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

fn write_loop(
    rx: &std::sync::mpsc::Receiver<Job>,
    path: &Path,
    mut tip: Tip,
    failing: &AtomicBool,
    signer: &checkpoint::Signer,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut text = String::new();
        let mut next_tip = tip.clone();
        let mut seqs = Vec::with_capacity(batch.len());
        for job in &batch {
            let record = chain::next(next_tip.seq + 1, &next_tip.hash, job.body.clone());
            next_tip = Tip {
                seq: record.seq,
                hash: record.hash.clone(),
            };
            seqs.push(record.seq);
            text.push_str(&serde_json::to_string(&record).expect("records serialise"));
            text.push('\n');
            if record.seq.is_multiple_of(checkpoint::EVERY) {
                let checkpoint = chain::next(
                    record.seq + 1,
                    &record.hash,
                    signer.body(record.seq, &record.hash),
                );
                next_tip = Tip {
                    seq: checkpoint.seq,
                    hash: checkpoint.hash.clone(),
                };
                text.push_str(&serde_json::to_string(&checkpoint).expect("records serialise"));
                text.push('\n');
            }
        }
        let written = append_to(path, text.as_bytes());
        let result = match written {
            Ok(()) => {
                tip = next_tip;
                failing.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                failing.store(true, Ordering::Relaxed);
                tracing::error!(path = %path.display(), error = %e, "AUDIT TRAIL NOT WRITABLE: refusing requests");
                Err(AuditError::Unwritable(format!("{}: {e}", path.display())))
            }
        };
        for (job, seq) in batch.into_iter().zip(seqs) {
            if let Some(done) = job.done {
                let _ = done.send(result.clone().map(|()| seq));
            }
        }
    }
}

/// Opens the trail for each batch (so a file that was replaced or became unwritable is
/// noticed at once), appends, and syncs before returning.
fn append_to(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    file.write_all(bytes)?;
    file.sync_data()
}
