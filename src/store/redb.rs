//! The embedded store: one redb file in the data directory, for one gateway process. Every
//! transaction runs on tokio's blocking pool, so a commit's fsync never stalls the runtime.
//!
//! Layout (schema 2): `rows` maps (table, id) to (revision, value), a deleted row keeping its
//! revision with no value so the feed can say it went; `revisions` indexes rows by the
//! revision that last wrote them, which is the feed; `counters` holds the exact counters;
//! `meta` holds the schema version and the last revision. Schema 1 (one redb table per kind,
//! no revisions) is moved into this layout the first time a newer build opens the file.

use std::path::PathBuf;
use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};

use super::{Change, Revision, Row, StoreError, Table, Write, expectation_holds};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (revision, value), the value `None` once the row is deleted.
type Stamped<'a> = (u64, Option<&'a [u8]>);
const ROWS: TableDefinition<(&str, &str), Stamped> = TableDefinition::new("rows");
const REVISIONS: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("revisions");
const COUNTERS: TableDefinition<&str, i64> = TableDefinition::new("counters");

const SCHEMA: u32 = 2;
const SCHEMA_KEY: &str = "schema";
const HEAD_KEY: &str = "head";

pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
    wakeups: Arc<tokio::sync::Notify>,
}

fn db_error(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(e.into().to_string())
}

impl RedbStore {
    /// Opens (or creates) the file, bringing an older layout up to this one.
    pub async fn open(path: PathBuf) -> Result<RedbStore, StoreError> {
        let opened = path.clone();
        let db = blocking(move || {
            let db = Database::create(&opened).map_err(db_error)?;
            migrate(&db)?;
            Ok(db)
        })
        .await?;
        Ok(RedbStore {
            db: Arc::new(db),
            path,
            wakeups: Arc::default(),
        })
    }

    async fn with_db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        blocking(move || work(&db)).await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Db(format!("store task failed: {e}")))?
}

#[async_trait::async_trait]
impl super::Store for RedbStore {
    async fn scan(&self, table: Table) -> Result<Vec<Row>, StoreError> {
        self.with_db(move |db| {
            let txn = db.begin_read().map_err(db_error)?;
            let rows = txn.open_table(ROWS).map_err(db_error)?;
            let name = table.name();
            let mut out = Vec::new();
            for entry in rows.range((name, "")..).map_err(db_error)? {
                let (key, value) = entry.map_err(db_error)?;
                let (t, id) = key.value();
                if t != name {
                    break;
                }
                let (revision, bytes) = value.value();
                if let Some(bytes) = bytes {
                    out.push(Row {
                        id: id.to_owned(),
                        revision,
                        value: bytes.to_vec(),
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn read(&self, table: Table, id: &str) -> Result<Option<Row>, StoreError> {
        let id = id.to_owned();
        self.with_db(move |db| {
            let txn = db.begin_read().map_err(db_error)?;
            let rows = txn.open_table(ROWS).map_err(db_error)?;
            let found = rows.get((table.name(), id.as_str())).map_err(db_error)?;
            Ok(found.and_then(|value| {
                let (revision, bytes) = value.value();
                bytes.map(|bytes| Row {
                    id: id.clone(),
                    revision,
                    value: bytes.to_vec(),
                })
            }))
        })
        .await
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<Revision, StoreError> {
        let revision = self
            .with_db(move |db| {
                let txn = db.begin_write().map_err(db_error)?;
                let revision = {
                    let mut meta = txn.open_table(META).map_err(db_error)?;
                    let head = meta
                        .get(HEAD_KEY)
                        .map_err(db_error)?
                        .map_or(0, |v| v.value());
                    let revision = head + 1;
                    meta.insert(HEAD_KEY, revision).map_err(db_error)?;
                    let mut rows = txn.open_table(ROWS).map_err(db_error)?;
                    let mut revisions = txn.open_table(REVISIONS).map_err(db_error)?;
                    for write in &writes {
                        let (table, id, expect) = write.target();
                        let key = (table.name(), id);
                        let previous = rows
                            .get(key)
                            .map_err(db_error)?
                            .map(|v| (v.value().0, v.value().1.is_some()));
                        let live = previous.and_then(|(rev, live)| live.then_some(rev));
                        if !expectation_holds(expect, live) {
                            // Dropping the transaction rolls every write of it back.
                            return Err(StoreError::Conflict {
                                table,
                                id: id.to_owned(),
                            });
                        }
                        if let Some((old, _)) = previous {
                            revisions
                                .remove((old, table.name(), id))
                                .map_err(db_error)?;
                        }
                        let value = match write {
                            Write::Put { value, .. } => Some(value.as_slice()),
                            Write::Delete { .. } => None,
                        };
                        if value.is_none() && previous.is_none() {
                            continue;
                        }
                        rows.insert(key, (revision, value)).map_err(db_error)?;
                        revisions
                            .insert((revision, table.name(), id), ())
                            .map_err(db_error)?;
                    }
                    revision
                };
                txn.commit().map_err(db_error)?;
                Ok(revision)
            })
            .await?;
        self.wakeups.notify_one();
        Ok(revision)
    }

    async fn changes_since(
        &self,
        after: Revision,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        self.with_db(move |db| {
            let txn = db.begin_read().map_err(db_error)?;
            let revisions = txn.open_table(REVISIONS).map_err(db_error)?;
            let rows = txn.open_table(ROWS).map_err(db_error)?;
            let mut out = Vec::new();
            for entry in revisions.range((after + 1, "", "")..).map_err(db_error)? {
                if out.len() == limit {
                    break;
                }
                let (key, ()) = {
                    let (key, _) = entry.map_err(db_error)?;
                    (key, ())
                };
                let (revision, name, id) = key.value();
                let Some(table) = Table::from_name(name) else {
                    continue;
                };
                let value = rows
                    .get((name, id))
                    .map_err(db_error)?
                    .and_then(|v| v.value().1.map(<[u8]>::to_vec));
                out.push(Change {
                    table,
                    id: id.to_owned(),
                    revision,
                    value,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn add(
        &self,
        counter: &str,
        delta: i64,
        at_most: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        let counter = counter.to_owned();
        self.with_db(move |db| {
            let txn = db.begin_write().map_err(db_error)?;
            let sum = {
                let mut counters = txn.open_table(COUNTERS).map_err(db_error)?;
                let current = counters
                    .get(counter.as_str())
                    .map_err(db_error)?
                    .map_or(0, |v| v.value());
                let sum = current.saturating_add(delta);
                if at_most.is_some_and(|limit| sum > limit) {
                    return Ok(None);
                }
                counters.insert(counter.as_str(), sum).map_err(db_error)?;
                sum
            };
            txn.commit().map_err(db_error)?;
            Ok(Some(sum))
        })
        .await
    }

    async fn counters(&self, prefix: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let prefix = prefix.to_owned();
        self.with_db(move |db| {
            let txn = db.begin_read().map_err(db_error)?;
            let counters = txn.open_table(COUNTERS).map_err(db_error)?;
            let mut out = Vec::new();
            for entry in counters.range(prefix.as_str()..).map_err(db_error)? {
                let (name, value) = entry.map_err(db_error)?;
                if !name.value().starts_with(prefix.as_str()) {
                    break;
                }
                out.push((name.value().to_owned(), value.value()));
            }
            Ok(out)
        })
        .await
    }

    fn wakeups(&self) -> Arc<tokio::sync::Notify> {
        self.wakeups.clone()
    }

    fn describe(&self) -> String {
        format!("redb file {}", self.path.display())
    }
}

/// Brings the file to [`SCHEMA`]: creates the tables, and moves schema 1's tables (one per
/// kind, holding the same version envelopes) into `rows` under revision 1.
fn migrate(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(db_error)?;
    {
        let mut meta = txn.open_table(META).map_err(db_error)?;
        let found = meta.get(SCHEMA_KEY).map_err(db_error)?.map(|v| v.value());
        match found {
            Some(found) if found > u64::from(SCHEMA) => {
                return Err(StoreError::TooNew {
                    found: u32::try_from(found).unwrap_or(u32::MAX),
                    known: SCHEMA,
                });
            }
            Some(_) => return Ok(()),
            None => {}
        }
        txn.open_table(ROWS).map_err(db_error)?;
        txn.open_table(REVISIONS).map_err(db_error)?;
        txn.open_table(COUNTERS).map_err(db_error)?;
        let legacy: Vec<String> = txn
            .list_tables()
            .map_err(db_error)?
            .map(|t| t.name().to_owned())
            .filter(|name| Table::from_name(name).is_some())
            .collect();
        let mut moved = false;
        for name in &legacy {
            let old: TableDefinition<&str, &[u8]> = TableDefinition::new(name);
            let entries: Vec<(String, Vec<u8>)> = {
                let table = txn.open_table(old).map_err(db_error)?;
                if table.len().map_err(db_error)? > 0 {
                    moved = true;
                }
                table
                    .iter()
                    .map_err(db_error)?
                    .map(|e| {
                        let (k, v) = e.map_err(db_error)?;
                        Ok((k.value().to_owned(), v.value().to_vec()))
                    })
                    .collect::<Result<_, StoreError>>()?
            };
            let mut rows = txn.open_table(ROWS).map_err(db_error)?;
            let mut revisions = txn.open_table(REVISIONS).map_err(db_error)?;
            for (id, value) in &entries {
                rows.insert((name.as_str(), id.as_str()), (1, Some(value.as_slice())))
                    .map_err(db_error)?;
                revisions
                    .insert((1, name.as_str(), id.as_str()), ())
                    .map_err(db_error)?;
            }
            drop(rows);
            drop(revisions);
            txn.delete_table(old).map_err(db_error)?;
        }
        meta.insert(SCHEMA_KEY, u64::from(SCHEMA))
            .map_err(db_error)?;
        meta.insert(HEAD_KEY, u64::from(moved)).map_err(db_error)?;
    }
    txn.commit().map_err(db_error)?;
    Ok(())
}
