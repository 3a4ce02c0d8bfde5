//! The one seam for persistence. A [`Store`] keeps rows (a table, an id, a value in a
//! version envelope, and the revision of the commit that last wrote it), commits several
//! writes at once with compare-and-set expectations, hands out every committed change in
//! revision order (the feed that keeps each process's books current), and keeps exact
//! counters. Two implementations: redb, embedded in one process (`redb.rs`), and PostgreSQL,
//! shared by several gateways (`postgres.rs`); `conformance.rs` is the one suite both pass.
//!
//! Every read-modify-write goes through [`update`]: read the row, decide the next value,
//! commit it only if the row is still at the revision read, retry otherwise. A second
//! gateway writing the same row at the same moment therefore never undoes the first.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::model::LocalUser;
use crate::model::Share;
use crate::model::request::AccessRequest;
use crate::model::{Credential, Grant};

#[cfg(test)]
pub mod conformance;
mod freshness;
mod postgres;
mod published;
mod redb;
mod values;

pub use freshness::{Freshness, STALE_AFTER, Stale};
pub use postgres::PostgresStore;
#[cfg(test)]
pub(crate) use postgres::TestDb;
pub use published::Published;
pub use values::{Lease, OwedRecord, SharedKey, UploadBinding};

/// The tables of the store. The names are the ones on disk and in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Grants,
    Credentials,
    Users,
    Requests,
    Shares,
    /// Lifecycle records owed to the audit trail (see [`OwedRecord`]).
    Owed,
    /// Multipart uploads Sesame started, keyed by `bucket/upload-id`.
    Uploads,
    /// Keys every gateway sharing the store must agree on, made once by the first.
    Keys,
    /// Leases on work that must be done once among the gateways (see [`Lease`]).
    Claims,
    /// What each gateway counted under each grant, one row per gateway, keyed by its replica
    /// id and written only by it (`grant::usage::ReplicaUsage`).
    Usage,
    /// The policy files in force among the gateways, one row (`desk::policies::InForce`).
    Policies,
}

impl Table {
    pub const ALL: [Table; 11] = [
        Table::Grants,
        Table::Credentials,
        Table::Users,
        Table::Requests,
        Table::Shares,
        Table::Owed,
        Table::Uploads,
        Table::Keys,
        Table::Claims,
        Table::Usage,
        Table::Policies,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Table::Grants => "grants",
            Table::Credentials => "credentials",
            Table::Users => "users",
            Table::Requests => "requests",
            Table::Shares => "shares",
            Table::Owed => "owed_records",
            Table::Uploads => "uploads",
            Table::Keys => "keys",
            Table::Claims => "claims",
            Table::Usage => "usage",
            Table::Policies => "policies",
        }
    }

    #[must_use]
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// The revision of a commit: every commit gets the next one, and a row carries the revision
/// of the commit that last wrote it. Revision 0 is "before anything".
pub type Revision = u64;

/// One stored row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub revision: Revision,
    pub value: Vec<u8>,
}

/// One committed change, as the feed hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub table: Table,
    pub id: String,
    pub revision: Revision,
    /// The value written; `None` when the row was deleted.
    pub value: Option<Vec<u8>>,
}

/// What a write expects of the row it replaces; a commit whose expectation does not hold
/// writes nothing and fails with [`StoreError::Conflict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there (records owed to the trail, which nobody else writes).
    Anything,
    /// No row with this id.
    Absent,
    /// The row as it was at this revision.
    At(Revision),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put {
        table: Table,
        id: String,
        value: Vec<u8>,
        expect: Expect,
    },
    Delete {
        table: Table,
        id: String,
        expect: Expect,
    },
}

impl Write {
    /// Stores a value under its own id.
    #[must_use]
    pub fn put<T: Stored>(value: &T, expect: Expect) -> Write {
        Write::Put {
            table: T::TABLE,
            id: value.row_id(),
            value: encode(value),
            expect,
        }
    }

    #[must_use]
    pub fn delete<T: Stored>(id: &str, expect: Expect) -> Write {
        Write::Delete {
            table: T::TABLE,
            id: id.to_owned(),
            expect,
        }
    }

    fn target(&self) -> (Table, &str, Expect) {
        match self {
            Write::Put {
                table, id, expect, ..
            }
            | Write::Delete { table, id, expect } => (*table, id, *expect),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store database: {0}")]
    Db(String),
    #[error("the store cannot be reached: {0}")]
    Unreachable(String),
    #[error("stored {what} {id:?} cannot be decoded: {reason}")]
    Decode {
        what: &'static str,
        id: String,
        reason: String,
    },
    /// A write's expectation did not hold: someone else wrote the row first.
    #[error("{table:?} row {id:?} was changed by someone else")]
    Conflict { table: Table, id: String },
    /// The store was written by a newer Sesame.
    #[error("the store's schema is version {found}; this build knows versions up to {known}")]
    TooNew { found: u32, known: u32 },
}

/// Persistence, behind which redb and PostgreSQL are interchangeable.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Every row of a table.
    async fn scan(&self, table: Table) -> Result<Vec<Row>, StoreError>;

    /// One row, if it is there.
    async fn read(&self, table: Table, id: &str) -> Result<Option<Row>, StoreError>;

    /// All of `writes` in one durable transaction under one new revision, or none of them
    /// when any expectation fails ([`StoreError::Conflict`]). Durable before it returns.
    async fn commit(&self, writes: Vec<Write>) -> Result<Revision, StoreError>;

    /// Committed changes with a revision above `after`, oldest first, at most `limit` of
    /// them; a row written twice since then appears once, at its latest revision.
    async fn changes_since(&self, after: Revision, limit: usize)
    -> Result<Vec<Change>, StoreError>;

    /// Adds `delta` to a counter (starting from 0) unless the sum would pass `at_most`;
    /// `None` then, and nothing changes. Exact under any number of concurrent callers.
    async fn add(
        &self,
        counter: &str,
        delta: i64,
        at_most: Option<i64>,
    ) -> Result<Option<i64>, StoreError>;

    /// Every counter whose name starts with `prefix`.
    async fn counters(&self, prefix: &str) -> Result<Vec<(String, i64)>, StoreError>;

    /// Wakes whoever follows the feed: notified after every local commit, and (where the
    /// engine can tell) after commits by other processes.
    fn wakeups(&self) -> Arc<tokio::sync::Notify>;

    /// Where the store is, for logs and errors (no password).
    fn describe(&self) -> String;
}

pub type SharedStore = Arc<dyn Store>;

/// Opens the embedded store in a file.
pub async fn open_file(path: &std::path::Path) -> Result<SharedStore, StoreError> {
    Ok(Arc::new(redb::RedbStore::open(path.to_owned()).await?))
}

/// Connects to a PostgreSQL database, bringing it up to this build's schema.
pub async fn open_postgres(url: &str) -> Result<SharedStore, StoreError> {
    Ok(Arc::new(PostgresStore::connect(url).await?))
}

/// A plain value kept in one table, in a version envelope.
pub trait Stored: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const TABLE: Table;
    /// What the value is called in errors.
    const WHAT: &'static str;
    fn row_id(&self) -> String;
}

impl Stored for Grant {
    const TABLE: Table = Table::Grants;
    const WHAT: &'static str = "grant";
    fn row_id(&self) -> String {
        self.id.clone()
    }
}

impl Stored for Credential {
    const TABLE: Table = Table::Credentials;
    const WHAT: &'static str = "credential";
    fn row_id(&self) -> String {
        self.access_key_id.clone()
    }
}

impl Stored for LocalUser {
    const TABLE: Table = Table::Users;
    const WHAT: &'static str = "user";
    fn row_id(&self) -> String {
        self.name.clone()
    }
}

impl Stored for AccessRequest {
    const TABLE: Table = Table::Requests;
    const WHAT: &'static str = "request";
    fn row_id(&self) -> String {
        self.id.clone()
    }
}

impl Stored for Share {
    const TABLE: Table = Table::Shares;
    const WHAT: &'static str = "share link";
    fn row_id(&self) -> String {
        self.id.clone()
    }
}

/// Current encoding version of every stored value.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    value: T,
}

/// A value in the current version's envelope.
#[must_use]
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(&Envelope { v: VERSION, value }).expect("stored values always serialise")
}

/// A stored value, read through its envelope's version.
pub fn decode<T: Stored>(id: &str, bytes: &[u8]) -> Result<T, StoreError> {
    decode_versioned(bytes).map_err(|reason| StoreError::Decode {
        what: T::WHAT,
        id: id.to_owned(),
        reason,
    })
}

/// Reads the envelope's version first, then the value in that version's shape.
fn decode_versioned<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let envelope: Envelope<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    match envelope.v {
        1 => serde_json::from_value(envelope.value).map_err(|e| e.to_string()),
        other => Err(format!(
            "unknown version {other}; this build reads version {VERSION}"
        )),
    }
}

/// Every value of a table with the revision it was written at.
pub async fn load<T: Stored>(store: &dyn Store) -> Result<Vec<(Revision, T)>, StoreError> {
    store
        .scan(T::TABLE)
        .await?
        .into_iter()
        .map(|row| Ok((row.revision, decode(&row.id, &row.value)?)))
        .collect()
}

/// One value and its revision.
pub async fn get<T: Stored>(
    store: &dyn Store,
    id: &str,
) -> Result<Option<(Revision, T)>, StoreError> {
    match store.read(T::TABLE, id).await? {
        Some(row) => Ok(Some((row.revision, decode(&row.id, &row.value)?))),
        None => Ok(None),
    }
}

/// The key named `name` that every gateway sharing this store uses: the stored one, or
/// `first` stored now when there is none yet. Two gateways starting at once store one key
/// between them, and both return it.
pub async fn shared_key(
    store: &dyn Store,
    name: &str,
    first: crate::secret::Key,
) -> Result<crate::secret::Key, StoreError> {
    let decoded = |key: &SharedKey| -> Result<crate::secret::Key, StoreError> {
        let bytes: [u8; 32] = hex::decode(&key.hex)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| StoreError::Decode {
                what: SharedKey::WHAT,
                id: name.to_owned(),
                reason: "not 32 bytes in hex".into(),
            })?;
        Ok(crate::secret::Key::from_bytes(bytes))
    };
    let candidate = SharedKey {
        name: name.to_owned(),
        hex: hex::encode(first.expose()),
    };
    let kept = update::<SharedKey, (), StoreError>(store, name, |current| {
        Ok(match current {
            Some(_) => Step::Keep(()),
            None => Step::Write {
                next: candidate.clone(),
                also: vec![],
                answer: (),
            },
        })
    })
    .await?;
    decoded(&kept.value.expect("a key was stored or found"))
}

/// Takes the lease on `work` for `holder` until `until`: `true` when this holder may do the
/// work now (no lease, one that ran out at `now`, or its own), `false` while another
/// holder's lease runs. One serialised update, so of two gateways claiming at once one wins.
pub async fn claim(
    store: &dyn Store,
    work: &str,
    holder: &str,
    now: time::OffsetDateTime,
    until: time::OffsetDateTime,
) -> Result<bool, StoreError> {
    let lease = Lease {
        work: work.to_owned(),
        holder: holder.to_owned(),
        until,
    };
    let claimed = update::<Lease, bool, StoreError>(store, work, |current| {
        Ok(match current {
            Some(held) if held.holder != holder && held.until > now => Step::Keep(false),
            Some(_) | None => Step::Write {
                next: lease.clone(),
                also: vec![],
                answer: true,
            },
        })
    })
    .await?;
    Ok(claimed.answer)
}

/// What an [`update`] decided.
pub enum Step<T, R> {
    /// Write `next` (and `also`, in the same transaction), then answer `answer`.
    Write {
        next: T,
        also: Vec<Write>,
        answer: R,
    },
    /// Write nothing and answer.
    Keep(R),
}

/// What an [`update`] did: the value as it now is (`None`: there is no such row) and at
/// which revision, whether this call wrote it, and the answer.
pub struct Updated<T, R> {
    pub value: Option<T>,
    pub revision: Revision,
    pub wrote: bool,
    pub answer: R,
}

/// How many times an update re-reads and retries before it gives up: far more than any
/// real contention, few enough that a bug cannot spin forever.
pub(crate) const UPDATE_ATTEMPTS: usize = 64;

/// The one serialised read-modify-write: reads row `id` of `T`'s table from the store (not
/// from a cache), lets `decide` choose the next value from the current one, and commits it
/// on condition that the row is still at the revision read; on a conflict it reads again and
/// decides again. `decide` must therefore be pure: it may run more than once.
pub async fn update<T, R, E>(
    store: &dyn Store,
    id: &str,
    mut decide: impl FnMut(Option<&T>) -> Result<Step<T, R>, E>,
) -> Result<Updated<T, R>, E>
where
    T: Stored,
    E: From<StoreError>,
{
    for _ in 0..UPDATE_ATTEMPTS {
        let current = get::<T>(store, id).await?;
        let (expect, revision) = match &current {
            Some((revision, _)) => (Expect::At(*revision), *revision),
            None => (Expect::Absent, 0),
        };
        let value = current.map(|(_, value)| value);
        match decide(value.as_ref())? {
            Step::Keep(answer) => {
                return Ok(Updated {
                    value,
                    revision,
                    wrote: false,
                    answer,
                });
            }
            Step::Write { next, also, answer } => {
                let mut writes = vec![Write::put(&next, expect)];
                writes.extend(also);
                match store.commit(writes).await {
                    Ok(revision) => {
                        return Ok(Updated {
                            value: Some(next),
                            revision,
                            wrote: true,
                            answer,
                        });
                    }
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Err(StoreError::Conflict {
        table: T::TABLE,
        id: id.to_owned(),
    }
    .into())
}

/// Checks one write's expectation against the revision the row is at (`None`: absent).
fn expectation_holds(expect: Expect, found: Option<Revision>) -> bool {
    match (expect, found) {
        (Expect::Anything, _) | (Expect::Absent, None) => true,
        (Expect::At(want), Some(have)) => want == have,
        (Expect::Absent, Some(_)) | (Expect::At(_), None) => false,
    }
}

#[cfg(test)]
mod tests;
