//! The writer thread: takes every record waiting, chains them (adding a signed checkpoint
//! every [`checkpoint::EVERY`] records), appends them to the current file with one fsync
//! (records nobody waits for, such as completion records, wait up to [`RIDE`] to share the
//! next awaited batch's fsync),
//! hands the stored lines to the sinks of the committed trail (`sink.rs`), and answers their
//! callers. Between batches, and only there, it rotates to the next file when
//! the current one has grown past the rotation size, so a batch never straddles two files
//! and every file ends at a record boundary; after rotating (and once at start) it applies
//! retention.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::chain::{self, Tip};
use super::files::TrailFile;
use super::sink::{Committed, Taps};
use super::{AuditError, Job, MAX_BATCH, checkpoint, retention};
use crate::clock::SharedClock;
use crate::record::Body;

/// How long records nobody waits for (completion records) wait for a record someone waits
/// for, so both share one fsync: a request then costs one durable write, not two. A crash
/// loses at most this much of them; records that are waited for never wait here.
const RIDE: Duration = Duration::from_millis(10);

pub(super) struct Writer {
    pub dir: PathBuf,
    /// The file being appended to; created by its first write.
    pub current: TrailFile,
    /// It, held open between batches with its (device, inode) (none: opened by the next
    /// write).
    pub open: Option<(std::fs::File, (u64, u64))>,
    /// Its size in bytes: where its last durable, whole record ends.
    pub size: u64,
    /// The last write failed after some of it may have reached the file: it is cut back to
    /// `size` before anything else is written.
    pub torn: bool,
    pub tip: Tip,
    pub rotate_bytes: u64,
    pub retain_days: Option<u32>,
    /// Records retention keeps whatever their age.
    pub hold: retention::Hold,
    pub signer: checkpoint::Signer,
    pub clock: SharedClock,
    pub failing: Arc<AtomicBool>,
    /// The sinks of the committed trail, told of each batch once it is durable.
    pub taps: Arc<Taps>,
    /// The replica the writer's own records (checkpoints, retention) name, as the log's do.
    pub replica: Option<Arc<str>>,
    /// The replica's lock on its chain, held while the writer runs (none: no replica's).
    pub _lock: Option<std::fs::File>,
}

impl Writer {
    pub fn run(mut self, rx: &std::sync::mpsc::Receiver<Job>) {
        // A trail reopened on a full file starts the next one; old files may have aged out
        // while the gateway was down.
        self.rotate_if_full();
        self.apply_retention();
        while let Ok(first) = rx.recv() {
            let mut batch = gather(first, rx);
            // Each job's records, in order; `counts` remembers how many were whose.
            let counts: Vec<usize> = batch.iter().map(|job| job.bodies.len()).collect();
            let bodies: Vec<String> = batch
                .iter_mut()
                .flat_map(|job| std::mem::take(&mut job.bodies))
                .collect();
            let result = if bodies.is_empty() {
                // Only barriers: they vouch for what came before, so a failing trail fails them.
                if self.failing.load(Ordering::Relaxed) {
                    Err(AuditError::Unwritable("the last write failed".into()))
                } else {
                    Ok(Vec::new())
                }
            } else {
                self.commit(bodies)
            };
            let committed = result.is_ok();
            match result {
                Ok(seqs) => {
                    let mut seqs = seqs.into_iter();
                    let mut last = 0;
                    for (job, count) in batch.into_iter().zip(counts) {
                        for _ in 0..count {
                            last = seqs.next().unwrap_or(last);
                        }
                        if let Some(done) = job.done {
                            done.send(Ok(last));
                        }
                    }
                }
                Err(e) => {
                    for job in batch {
                        if let Some(done) = job.done {
                            done.send(Err(e.clone()));
                        }
                    }
                }
            }
            if committed && self.rotate_if_full() {
                self.apply_retention();
            }
        }
    }

    /// Chains `bodies` (canonical, as [`crate::record::Body::canonical`] makes them) onto the
    /// tip, appends them to the current file with one fsync, and only then hands the stored
    /// lines to the sinks (a batch that failed reaches none); the seq of each body, in order. Each body is hashed and copied into its
    /// line as it is: nothing is parsed or serialised again here.
    pub(super) fn commit(&mut self, bodies: Vec<String>) -> Result<Vec<u64>, AuditError> {
        let mut text = String::new();
        let mut next_tip = self.tip.clone();
        let mut seqs = Vec::with_capacity(bodies.len());
        for body in bodies {
            let record = chain::seal(next_tip.seq + 1, &next_tip.hash, &body);
            seqs.push(record.seq);
            text.push_str(&record.line);
            text.push('\n');
            next_tip = Tip {
                seq: record.seq,
                hash: record.hash,
            };
            if next_tip.seq.is_multiple_of(checkpoint::EVERY) {
                let body = self.written(self.signer.body(next_tip.seq, &next_tip.hash));
                let checkpoint = chain::seal(next_tip.seq + 1, &next_tip.hash, &body);
                text.push_str(&checkpoint.line);
                text.push('\n');
                next_tip = Tip {
                    seq: checkpoint.seq,
                    hash: checkpoint.hash,
                };
            }
        }
        if let Err(e) = self.write_batch(text.as_bytes()) {
            self.failing.store(true, Ordering::Relaxed);
            tracing::error!(path = %self.current.path.display(), error = %e, cut_back = !self.torn, "AUDIT TRAIL NOT WRITABLE: refusing requests");
            // Callers hear the reason, not where the data directory is.
            return Err(AuditError::Unwritable(e.to_string()));
        }
        self.failing.store(false, Ordering::Relaxed);
        self.size += text.len() as u64;
        self.taps.publish(&Committed {
            lines: text.into(),
            first: self.tip.seq + 1,
            last: next_tip.seq,
        });
        self.tip = next_tip;
        Ok(seqs)
    }

    /// A body of the writer's own, as the log's are stored.
    fn written(&self, body: Body) -> String {
        super::stored(self.replica.as_deref(), body)
    }

    /// Appends one batch and syncs it. A write or sync that fails (a full disk) may leave part
    /// of the batch in the file: the file is cut back to its last durable length at once (and
    /// again before the next write, should that fail too), so the trail never holds a
    /// fragment and the batch's sequence numbers, never acknowledged, are used by the next.
    fn write_batch(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let (mut file, identity) = self.file()?;
        if self.torn {
            cut_back(&file, self.size)?;
            self.torn = false;
        }
        if let Err(e) = file.write_all(bytes).and_then(|()| file.sync_data()) {
            self.torn = cut_back(&file, self.size).is_err();
            // Opened afresh next time, in case the handle itself is what went wrong.
            self.open = None;
            return Err(e);
        }
        self.open = Some((file, identity));
        // A file's first write also makes its name durable.
        if self.size == 0 {
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// The current file and its identity: the handle held since the last batch while the
    /// path still names that file (one `stat`), else opened again, so a file that was
    /// replaced, moved or removed is noticed at the next write and never written to unseen.
    fn file(&mut self) -> std::io::Result<(std::fs::File, (u64, u64))> {
        use std::os::unix::fs::MetadataExt as _;
        if let Some((file, identity)) = self.open.take()
            && std::fs::symlink_metadata(&self.current.path)
                .is_ok_and(|n| n.is_file() && (n.dev(), n.ino()) == identity)
        {
            return Ok((file, identity));
        }
        let file = open_regular(&self.current.path)?;
        let held = file.metadata()?;
        Ok((file, (held.dev(), held.ino())))
    }

    /// Moves on to the next file when the current one has reached the rotation size; the
    /// next file is created by the next write, whose first record chains to this file's last.
    pub(super) fn rotate_if_full(&mut self) -> bool {
        if self.size < self.rotate_bytes {
            return false;
        }
        let next = TrailFile::new(&self.dir, self.current.number + 1);
        tracing::info!(
            from = %self.current.name(),
            to = %next.name(),
            bytes = self.size,
            last_seq = self.tip.seq,
            "audit trail rotated"
        );
        self.current = next;
        self.open = None;
        self.size = 0;
        true
    }

    /// Deletes files past retention (never the current one) and records that in the chain.
    /// A failure is logged and leaves the files in place: retention is never worth refusing
    /// requests over.
    fn apply_retention(&mut self) {
        let Some(days) = self.retain_days else { return };
        let now = self.clock.now();
        let cutoff = now - time::Duration::days(i64::from(days));
        match retention::prune(
            &self.dir,
            self.current.number,
            cutoff,
            &self.hold,
            &self.signer,
            now,
        ) {
            Ok(None) => {}
            Ok(Some(pruned)) => {
                tracing::info!(files = ?pruned.files, through_seq = pruned.through_seq, "audit files past retention deleted");
                if let Err(e) = self.commit(vec![self.written(pruned.record(days, now))]) {
                    tracing::error!(error = %e, "the audit.pruned record could not be written");
                }
            }
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "audit retention failed; files kept");
            }
        }
    }
}

/// Takes every job waiting after `first`, up to [`MAX_BATCH`]; when none of them is waited
/// for, waits up to [`RIDE`] for one that is (or until the log closes).
pub(super) fn gather(first: Job, rx: &std::sync::mpsc::Receiver<Job>) -> Vec<Job> {
    let mut batch = vec![first];
    let deadline = Instant::now() + RIDE;
    while batch.len() < MAX_BATCH {
        let next = if batch.iter().any(|job| job.done.is_some()) {
            rx.try_recv().ok()
        } else {
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .ok()
        };
        match next {
            Some(job) => batch.push(job),
            None => break,
        }
    }
    batch
}

/// Opens the file, appends, and syncs before returning.
pub(super) fn append_to(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = open_regular(path)?;
    file.write_all(bytes)?;
    file.sync_data()
}

/// The trail file, opened for appending; anything but a regular file is refused.
fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// Truncates the file back to `len` and makes that durable.
fn cut_back(file: &std::fs::File, len: u64) -> std::io::Result<()> {
    file.set_len(len)?;
    file.sync_data()
}
