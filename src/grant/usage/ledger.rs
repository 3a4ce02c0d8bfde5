//! Each gateway's usage, durable: one row of its own in the store's `usage` table, keyed by
//! its replica id and written only by it, holding what its trail says was done under each
//! grant through one seq ([`Totals`]). The row is written at most every [`FLUSH_EVERY`],
//! only when something changed, and at shutdown; never on the data path.
//!
//! At start ([`Resumed`]) the gateway loads its row and replays only the trail after the
//! row's seq, so what it counted survives a restart however much of the trail retention has
//! deleted since: retention keeps every record after the last row written (a [`Hold`] on the
//! trail). A crash between two writes loses nothing either: what the row does not hold yet,
//! the trail still does. While it runs the ledger counts each committed batch of the trail (a
//! tap queues them, and each write of the row counts those queued; batches it missed are
//! read back from the files), so the row says exactly what the trail through its seq says,
//! decisions still waiting for their bytes included.
//!
//! Other gateways take the row in through the change feed and add it to their own count.
//! With the totals goes what this gateway had counted beyond its trail when it wrote
//! (`ahead`: requests admitted whose records were not committed yet, bytes still streaming),
//! which the others count and a restart does not (the trail has what was committed).
//!
//! The bound between writes: a gateway checks a limit against its own count, which is exact,
//! plus the other gateways' rows as they last arrived. A row is at most [`FLUSH_EVERY`] (and
//! the time its write takes) behind its gateway's meter, and reaches the other gateways with
//! the change feed: at once when the store announces the commit, within the feed's poll
//! period (500 ms) when it does not. So while `n` gateways serve one grant at the same time,
//! the grant can pass a limit by at most what the other `n - 1` admitted and streamed under
//! it in that window, each; two gateways can each overshoot by what they serve in one flush
//! period plus the feed's delay. A gateway alone never passes a limit. A gateway that cannot
//! write its row (the store unreachable) keeps serving from memory, and its window grows for
//! as long.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{Effect, Meter, Replay, Totals, Usage};
use crate::audit::AuditLog;
use crate::audit::chain::Record;
use crate::audit::retention::Hold;
use crate::audit::sink::{self, Committed};
use crate::store::{Expect, Revision, SharedStore, StoreError, Stored, Table, Write};

/// How often, at most, a gateway writes its row.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Committed batches that may wait for the next write of the row (one [`FLUSH_EVERY`]'s
/// worth: 16,000 a second) before the rest is read back from the trail's files.
const QUEUE: usize = 4096;

/// One gateway's row: its trail's totals through a seq, and what its meter had counted
/// beyond them when the row was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaUsage {
    pub replica: String,
    pub totals: Totals,
    /// Per grant, what the meter had counted that the trail through `totals.through_seq`
    /// does not hold: counted by the other gateways, dropped by a restart.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ahead: BTreeMap<String, Usage>,
}

/// Stored beside the type it holds: `Usage` sits above the store.
impl Stored for ReplicaUsage {
    const TABLE: Table = Table::Usage;
    const WHAT: &'static str = "usage row";
    fn row_id(&self) -> String {
        self.replica.clone()
    }
}

impl ReplicaUsage {
    /// What the gateway had counted under each grant when it wrote the row.
    #[must_use]
    pub fn counted(&self) -> HashMap<String, Usage> {
        let mut all: HashMap<String, Usage> = self.totals.grants.clone().into_iter().collect();
        for (grant, ahead) in &self.ahead {
            let usage = all.entry(grant.clone()).or_default();
            *usage = usage.plus(ahead);
        }
        all
    }
}

/// Usage at start, between reading the store and opening the trail: the trail is opened
/// holding [`Resumed::hold`], handing each record it verifies to [`Resumed::add`].
pub struct Resumed {
    store: SharedStore,
    replica: String,
    replay: Replay,
    /// The own row's revision; 0: there is none yet.
    revision: Revision,
    others: Vec<(Revision, ReplicaUsage)>,
    hold: Hold,
}

impl Resumed {
    /// Reads every gateway's row; the one of `replica` (this gateway) is where counting
    /// resumes. A row that cannot be read stops the start: limits would undercount.
    pub async fn load(
        store: SharedStore,
        replica: &str,
        effect_of: fn(&str) -> Effect,
    ) -> Result<Resumed, StoreError> {
        let mut others = crate::store::load::<ReplicaUsage>(&*store).await?;
        let own = others
            .iter()
            .position(|(_, row)| row.replica == replica)
            .map(|i| others.swap_remove(i));
        let (revision, totals) = own.map_or((0, Totals::default()), |(r, row)| (r, row.totals));
        let hold = Hold::after(totals.through_seq);
        Ok(Resumed {
            store,
            replica: replica.to_owned(),
            replay: Replay::resume(effect_of, totals),
            revision,
            others,
            hold,
        })
    }

    /// Whether this gateway has no usage row yet: nothing it read before is counted.
    #[must_use]
    pub fn is_fresh(&self) -> bool {
        self.revision == 0
    }

    /// What retention must keep from the moment the trail opens: every record after the
    /// row's seq.
    #[must_use]
    pub fn hold(&self) -> Hold {
        self.hold.clone()
    }

    /// Counts a record of the trail as it opens; those the row holds are skipped.
    pub fn add(&mut self, record: &Record) {
        self.replay.add(record.seq, &record.body);
    }

    /// The meter and its ledger, once the trail is open.
    #[must_use]
    pub fn finish(mut self, audit: &AuditLog) -> (Arc<Meter>, Ledger) {
        let committed = audit.committed();
        let through = self.replay.totals().through_seq;
        if committed < through {
            tracing::warn!(
                replica = %self.replica,
                row_through_seq = through,
                trail_through_seq = committed,
                "the audit trail ends before this gateway's usage row (a trail restored from an older copy?): the row's totals are kept, and the trail's next records are counted on top"
            );
            self.replay.rebase(committed);
        }
        self.replay.forget_pending();
        let totals = self.replay.totals();
        let meter = Arc::new(Meter::starting(&self.replica, totals.grants.clone()));
        meter.saw_rows(&self.others);
        let (flushed, _) = watch::channel(Flushed {
            through_seq: totals.through_seq,
            revision: self.revision,
        });
        let ledger = Ledger {
            store: self.store,
            meter: meter.clone(),
            replay: self.replay,
            revision: self.revision,
            hold: self.hold,
            written: None,
            dir: audit.dir().to_owned(),
            flushed,
        };
        (meter, ledger)
    }
}

/// What the last row written holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    pub through_seq: u64,
    pub revision: Revision,
}

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error("the usage row could not be written: {0}")]
    Store(#[from] StoreError),
    #[error("the usage ledger has stopped")]
    Stopped,
}

/// Keeps the gateway's row: counts the committed trail, writes the row.
pub struct Ledger {
    store: SharedStore,
    meter: Arc<Meter>,
    replay: Replay,
    revision: Revision,
    hold: Hold,
    /// The seq and the meter's count of counts the last row was written at (`None`: no row
    /// written by this process yet), so an idle gateway writes nothing.
    written: Option<(u64, u64)>,
    /// The trail's folder, to read back what the ledger missed.
    dir: PathBuf,
    flushed: watch::Sender<Flushed>,
}

impl Ledger {
    /// Starts the ledger's task on the committed trail of `audit`: it counts each batch,
    /// writes the row at once and then every [`FLUSH_EVERY`] when something changed, and
    /// when asked ([`Flusher::flush_now`]).
    #[must_use]
    pub fn spawn(self, audit: &AuditLog) -> (JoinHandle<()>, Flusher) {
        let (tx, batches) = mpsc::channel(QUEUE);
        let behind = Arc::new(AtomicBool::new(false));
        let missed = behind.clone();
        let committed = audit.tap(move |batch| match tx.try_send(batch.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                missed.store(true, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        let (ask, asked) = mpsc::channel(1);
        let flusher = Flusher {
            ask,
            audit: audit.clone(),
            flushed: self.flushed.subscribe(),
        };
        let task = tokio::spawn(self.run(audit.clone(), committed, batches, behind, asked));
        (task, flusher)
    }

    async fn run(
        mut self,
        audit: AuditLog,
        committed: u64,
        mut batches: mpsc::Receiver<Committed>,
        behind: Arc<AtomicBool>,
        mut asked: mpsc::Receiver<Ask>,
    ) {
        // What was committed between the trail's opening and the tap (a pruning, a repair).
        self.catch_up(committed).await;
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Batches wait in their queue until the row is written: the trail's commits
            // never wake this task, which runs four times a second however busy the
            // gateway is (a wake per batch cost every request a thread hand-off).
            tokio::select! {
                Some((upto, reply)) = asked.recv() => {
                    self.absorb_queued(&mut batches).await;
                    self.catch_up(upto).await;
                    let _ = reply.send(self.flush().await.map_err(FlushError::from));
                }
                _ = tick.tick() => {
                    self.absorb_queued(&mut batches).await;
                    if behind.swap(false, Ordering::Relaxed) {
                        self.catch_up(audit.committed()).await;
                    }
                    if let Err(e) = self.flush().await {
                        tracing::warn!(replica = %self.meter.replica(), error = %e, "the usage row could not be written; usage is kept in memory and the trail, and the row is tried again");
                    }
                }
            }
        }
    }

    /// Counts every batch waiting in the queue.
    async fn absorb_queued(&mut self, batches: &mut mpsc::Receiver<Committed>) {
        while let Ok(batch) = batches.try_recv() {
            self.absorb(&batch).await;
        }
    }

    /// Counts the records of a committed batch not counted yet. A gap before it (batches the
    /// tap dropped) is read back from the files first; while it cannot be, the batch is left
    /// for the next one to bring back with it, so the row never skips a record.
    pub(super) async fn absorb(&mut self, batch: &Committed) {
        let through = self.replay.totals().through_seq;
        if batch.last <= through {
            return;
        }
        if batch.first > through + 1 && !self.catch_up(batch.first - 1).await {
            return;
        }
        for line in String::from_utf8_lossy(&batch.lines).lines() {
            match Record::parse(line) {
                Ok(record) => self.replay.add(record.seq, &record.body),
                Err(e) => tracing::error!(error = %e, "usage: a committed line cannot be read"),
            }
        }
    }

    /// Counts what the trail committed through `upto` and the ledger has not counted yet,
    /// read back from the trail's files; whether that could be done.
    pub(super) async fn catch_up(&mut self, upto: u64) -> bool {
        let after = self.replay.totals().through_seq;
        if upto <= after {
            return true;
        }
        let dir = self.dir.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut records = Vec::new();
            sink::read_back(&dir, after, upto, |record| records.push(record)).map(|()| records)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|read| read);
        match read {
            Ok(records) => {
                for record in &records {
                    self.replay.add(record.seq, &record.body);
                }
                true
            }
            Err(e) => {
                tracing::error!(after, upto, error = %e, "usage: the trail cannot be read back; the usage row waits until it can");
                false
            }
        }
    }

    /// Writes the row when anything changed since the last one: the trail's totals through
    /// the last record counted, and what the meter counted beyond them. Retention may then
    /// delete the records the row holds.
    pub(super) async fn flush(&mut self) -> Result<Flushed, StoreError> {
        // Read first: a count made while the row is built is in it, and written again.
        let counted = self.meter.counted();
        let totals = self.replay.totals();
        let through = totals.through_seq;
        if self.written == Some((through, counted)) {
            return Ok(*self.flushed.borrow());
        }
        let row = ReplicaUsage {
            replica: self.meter.replica().to_owned(),
            ahead: self.meter.ahead_of(&totals.grants),
            totals: totals.clone(),
        };
        let expect = match self.revision {
            0 => Expect::Absent,
            revision => Expect::At(revision),
        };
        let revision = match self.store.commit(vec![Write::put(&row, expect)]).await {
            Ok(revision) => revision,
            Err(conflict @ StoreError::Conflict { .. }) => {
                // Only this gateway writes its row: someone else did (two gateways with one
                // replica id, or a write of a previous run still landing). Said loudly; the
                // next write, from what this run counted, replaces it.
                tracing::error!(replica = %row.replica, "another process wrote this gateway's usage row: if two gateways share this replica id (a copied data directory?), give each its own replica.id");
                self.revision = crate::store::get::<ReplicaUsage>(&*self.store, &row.replica)
                    .await?
                    .map_or(0, |(revision, _)| revision);
                return Err(conflict);
            }
            Err(e) => return Err(e),
        };
        self.revision = revision;
        self.written = Some((through, counted));
        self.hold.advance(through);
        let flushed = Flushed {
            through_seq: through,
            revision,
        };
        self.flushed.send_replace(flushed);
        Ok(flushed)
    }
}

/// A request to write the row now, with everything committed through a seq.
type Ask = (u64, oneshot::Sender<Result<Flushed, FlushError>>);

/// The handle on a running ledger.
#[derive(Clone)]
pub struct Flusher {
    ask: mpsc::Sender<Ask>,
    audit: AuditLog,
    flushed: watch::Receiver<Flushed>,
}

impl Flusher {
    /// Writes the row now, with everything the trail holds: records still on their way to it
    /// first (completions are appended without waiting), then every committed one. At
    /// shutdown, once the listeners have drained.
    pub async fn flush_now(&self) -> Result<Flushed, FlushError> {
        if let Err(e) = self.audit.flushed().await {
            tracing::warn!(error = %e, "usage: records still queued for the trail may be missing from the usage row; the trail has whatever it committed");
        }
        let upto = self.audit.committed();
        let (reply, answer) = oneshot::channel();
        self.ask
            .send((upto, reply))
            .await
            .map_err(|_| FlushError::Stopped)?;
        answer.await.map_err(|_| FlushError::Stopped)?
    }

    /// What the last row written holds, as it changes.
    #[must_use]
    pub fn flushed(&self) -> watch::Receiver<Flushed> {
        self.flushed.clone()
    }
}
