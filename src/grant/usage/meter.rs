//! The meter every decision and every streaming chunk asks, in memory only: per grant, what
//! this gateway counted (from its row and the trail at start, then live) and what the other
//! gateways sharing the store counted, as their rows last said (brought by the change feed).
//! Limits are checked against the two together; the control API shows the two together.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use time::OffsetDateTime;

use super::{Direction, Effect, ReplicaUsage, Usage};
use crate::model::{Grant, Limits};
use crate::store::{Change, Revision, StoreError, Table};

/// One grant's counts: this gateway's, and the sum of the other gateways' rows.
#[derive(Default)]
struct Counts {
    own: Usage,
    others: Usage,
}

impl Counts {
    fn summed(&self) -> Usage {
        self.own.plus(&self.others)
    }
}

/// One grant's usage, shared by the meter and every transfer under the grant: a transfer
/// looks its grant up once, then counts each chunk under this grant's own lock.
#[derive(Clone)]
pub struct GrantUsage {
    grant_id: Arc<str>,
    counts: Arc<Mutex<Counts>>,
    /// The meter's count of counts, moved by each chunk too.
    counted: Arc<AtomicU64>,
}

impl GrantUsage {
    /// Counts `n` bytes streaming under the grant. A chunk that would take every gateway's
    /// bytes together across the byte limit is not counted, marks the grant spent, and the
    /// caller cuts the transfer with the reason returned.
    pub fn add_bytes(&self, limits: &Limits, direction: Direction, n: u64) -> Result<(), String> {
        let mut counts = self.lock();
        self.counted.fetch_add(1, Ordering::Relaxed);
        if let Some(max) = limits.bytes {
            let moved = [
                counts.own.bytes_read,
                counts.own.bytes_written,
                counts.others.bytes_read,
                counts.others.bytes_written,
                n,
            ]
            .into_iter()
            .fold(0u64, u64::saturating_add);
            if moved > max {
                let why = format!(
                    "grant {} reached its limit of {max} bytes read and written",
                    self.grant_id
                );
                counts.own.cut_at_limit = Some(why.clone());
                return Err(why);
            }
        }
        match direction {
            Direction::Read => counts.own.bytes_read += n,
            Direction::Write => counts.own.bytes_written += n,
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Another gateway's row, as this one last saw it.
struct Seen {
    revision: Revision,
    /// Each grant as that gateway counted it.
    grants: HashMap<String, Usage>,
}

pub struct Meter {
    /// This gateway's replica id: its own row is written from here, never read back in.
    replica: String,
    grants: Mutex<HashMap<String, GrantUsage>>,
    /// The other gateways' rows, by replica id.
    others: Mutex<HashMap<String, Seen>>,
    /// How many counts were made: the ledger writes a row only when this moved.
    counted: Arc<AtomicU64>,
}

impl Default for Meter {
    /// A meter from nothing, for a gateway alone on its store.
    fn default() -> Self {
        Meter::starting("", BTreeMap::new())
    }
}

impl Meter {
    /// The meter of gateway `replica`, starting from what it had counted per grant.
    #[must_use]
    pub fn starting(replica: &str, own: BTreeMap<String, Usage>) -> Meter {
        let counted = Arc::new(AtomicU64::new(0));
        let grants = own
            .into_iter()
            .map(|(id, usage)| {
                let counts = Counts {
                    own: usage,
                    others: Usage::default(),
                };
                let shared = GrantUsage {
                    grant_id: id.as_str().into(),
                    counts: Arc::new(Mutex::new(counts)),
                    counted: counted.clone(),
                };
                (id, shared)
            })
            .collect();
        Meter {
            replica: replica.to_owned(),
            grants: Mutex::new(grants),
            others: Mutex::default(),
            counted,
        }
    }

    #[must_use]
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// What every gateway together did under a grant, as far as this one knows.
    #[must_use]
    pub fn get(&self, grant_id: &str) -> Usage {
        self.lock()
            .get(grant_id)
            .map(|g| g.lock().summed())
            .unwrap_or_default()
    }

    /// The usage of one grant, for a transfer to count its bytes into.
    #[must_use]
    pub fn of(&self, grant_id: &str) -> GrantUsage {
        let mut all = self.lock();
        if let Some(usage) = all.get(grant_id) {
            return usage.clone();
        }
        let usage = GrantUsage {
            grant_id: grant_id.into(),
            counts: Arc::default(),
            counted: self.counted.clone(),
        };
        all.insert(grant_id.to_owned(), usage.clone());
        usage
    }

    /// Counts an allowed request; refuses it (uncounted: the caller counts refusals with
    /// [`Meter::denied`]) when a limit is already reached by every gateway together, or
    /// when the object it would move is one past the object limit.
    pub fn admit(&self, grant: &Grant, effect: Effect, at: OffsetDateTime) -> Result<(), String> {
        let of = self.of(&grant.id);
        let mut counts = of.lock();
        if let Some(why) = counts.summed().limit_reached(&grant.id, &grant.limits) {
            return Err(why);
        }
        counts.own.admitted(effect, at);
        self.counted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub fn denied(&self, grant_id: &str) {
        self.of(grant_id).lock().own.denied += 1;
        self.counted.fetch_add(1, Ordering::Relaxed);
    }

    /// How many counts this gateway has made since it started.
    #[must_use]
    pub fn counted(&self) -> u64 {
        self.counted.load(Ordering::Relaxed)
    }

    /// What this gateway counted beyond `totals` (what its trail has committed), per grant
    /// where that is anything.
    #[must_use]
    pub fn ahead_of(&self, totals: &BTreeMap<String, Usage>) -> BTreeMap<String, Usage> {
        let none = Usage::default();
        self.lock()
            .iter()
            .filter_map(|(id, g)| {
                let beyond = g.lock().own.beyond(totals.get(id).unwrap_or(&none))?;
                Some((id.clone(), beyond))
            })
            .collect()
    }

    /// Takes in a change to the usage table, from the feed: another gateway's row replaces
    /// what it said before. This gateway's own row is ignored: it counts further live.
    pub fn apply(&self, change: &Change) -> Result<(), StoreError> {
        if change.table != Table::Usage || change.id == self.replica {
            return Ok(());
        }
        let row = change
            .value
            .as_deref()
            .map(|bytes| crate::store::decode::<ReplicaUsage>(&change.id, bytes))
            .transpose()?;
        self.saw(&change.id, change.revision, row.as_ref());
        Ok(())
    }

    /// Takes in the other gateways' rows as they stand, at start.
    pub fn saw_rows(&self, rows: &[(Revision, ReplicaUsage)]) {
        for (revision, row) in rows {
            if row.replica != self.replica {
                self.saw(&row.replica, *revision, Some(row));
            }
        }
    }

    /// Gateway `replica`'s row at `revision` (`None`: deleted), unless one as new is held;
    /// the grants it names before or after have their others' sum counted again.
    fn saw(&self, replica: &str, revision: Revision, row: Option<&ReplicaUsage>) {
        let mut others = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        let held = others.get(replica);
        if held.is_some_and(|seen| seen.revision >= revision) {
            return;
        }
        let mut touched: BTreeSet<String> = held
            .map(|seen| seen.grants.keys().cloned().collect())
            .unwrap_or_default();
        let grants = row.map(ReplicaUsage::counted).unwrap_or_default();
        touched.extend(grants.keys().cloned());
        others.insert(replica.to_owned(), Seen { revision, grants });
        for grant in touched {
            let sum = others
                .values()
                .filter_map(|seen| seen.grants.get(&grant))
                .fold(Usage::default(), |sum, usage| sum.plus(usage));
            self.of(&grant).lock().others = sum;
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, GrantUsage>> {
        self.grants.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
