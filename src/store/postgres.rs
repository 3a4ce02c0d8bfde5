//! The shared store: one PostgreSQL database that several gateways use at once.
//!
//! Layout (see `postgres/migrations/`): `rows` maps (table, id) to (revision, value), a
//! deleted row keeping its revision with no value so the feed can say it went; `counters`
//! holds the exact counters; `head` holds the last revision, and every commit takes the next
//! one by updating it first, which serialises commits so that revision order is commit order:
//! a follower that has read the feed up to revision r never later finds a commit below r.
//! `schema_migrations` records which numbered SQL files have been applied.
//!
//! Wake-ups for other processes travel by `LISTEN`/`NOTIFY` (`postgres/listen.rs`);
//! connections come from a small pool of our own (`postgres/pool.rs`).

mod listen;
mod pool;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

use super::{Change, Revision, Row, StoreError, Table, Write, expectation_holds};
use pool::Pool;

/// The schema, one SQL file per version, applied in order. A released file is never edited.
const MIGRATIONS: [(u32, &str); 1] = [(1, include_str!("postgres/migrations/0001_rows.sql"))];

/// The newest schema this build knows.
const SCHEMA: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The advisory lock every gateway takes to migrate, so that replicas starting together
/// apply each migration once ("sesame" in ASCII).
const MIGRATION_LOCK: i64 = 0x7365_7361_6d65;

/// Connections a store keeps open at most, beside its listening one. Commits queue for the
/// head row anyway; the rest are for reads and counters made at the same time.
const POOL_SIZE: usize = 8;

/// Bounds on one statement, one wait for a lock and one transaction left idle, unless the
/// URL sets `options` itself: a stuck session (a client that hung holding the head row, an
/// operator's forgotten transaction) makes commits fail with an error instead of stalling
/// every gateway, which then refuse while stale rather than wait for ever.
const SESSION_BOUNDS: &str =
    "-c statement_timeout=10s -c lock_timeout=5s -c idle_in_transaction_session_timeout=10s";

/// How long a connection attempt may take when the URL does not say: a store that cannot be
/// reached is reported as such instead of holding the caller.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PostgresStore {
    pool: Pool,
    name: String,
    wakeups: Arc<Notify>,
    /// The task listening for other processes' commits; it ends with the store.
    listener: AbortHandle,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/dbname`,
    /// or libpq's `key=value` form), brings its schema up to this build's, and starts
    /// listening for commits made by other processes.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let mut config: Config = url.parse().map_err(|e| {
            StoreError::Db(format!(
                "the postgresql url is not valid ({}); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME",
                full(&e)
            ))
        })?;
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            return Err(StoreError::Db(
                "the postgresql url names no host; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME"
                    .to_owned(),
            ));
        }
        plain_only_where_it_stays_on_the_machine(&config)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_options().is_none() {
            config.options(SESSION_BOUNDS);
        }
        let application = config.get_application_name().unwrap_or("sesame").to_owned();
        config.application_name(&application);
        let name = describe(&config);

        let pool = Pool::new(config.clone(), name.clone(), POOL_SIZE);
        let mut client = pool.get().await?;
        migrate(&mut client, &name).await?;
        drop(client);

        let wakeups = Arc::new(Notify::new());
        let mut listening = config;
        listening.application_name(format!("{application} listener"));
        let listener = listen::start(listening, name.clone(), wakeups.clone())
            .await?
            .abort_handle();
        Ok(PostgresStore {
            pool,
            name,
            wakeups,
            listener,
        })
    }

    /// Maps a driver error met while using the store (see [`query_error`]).
    fn fail(&self) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
        |e| query_error(&self.name, &e)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Dropping the listening client closes its connection; pooled ones close as dropped.
        self.listener.abort();
    }
}

#[async_trait::async_trait]
impl super::Store for PostgresStore {
    async fn scan(&self, table: Table) -> Result<Vec<Row>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, revision, value FROM rows \
                 WHERE tbl = $1 AND value IS NOT NULL ORDER BY id",
                &[&table.name()],
            )
            .await
            .map_err(self.fail())?;
        rows.iter()
            .map(|row| {
                Ok(Row {
                    id: row.try_get(0).map_err(self.fail())?,
                    revision: revision(row.try_get(1).map_err(self.fail())?)?,
                    value: row.try_get(2).map_err(self.fail())?,
                })
            })
            .collect()
    }

    async fn read(&self, table: Table, id: &str) -> Result<Option<Row>, StoreError> {
        let client = self.pool.get().await?;
        let found = client
            .query_opt(
                "SELECT revision, value FROM rows \
                 WHERE tbl = $1 AND id = $2 AND value IS NOT NULL",
                &[&table.name(), &id],
            )
            .await
            .map_err(self.fail())?;
        found
            .map(|row| {
                Ok(Row {
                    id: id.to_owned(),
                    revision: revision(row.try_get(0).map_err(self.fail())?)?,
                    value: row.try_get(1).map_err(self.fail())?,
                })
            })
            .transpose()
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<Revision, StoreError> {
        let mut client = self.pool.get().await?;
        let txn = client.transaction().await.map_err(self.fail())?;
        // Taking the next revision locks the head row until this transaction ends: commits are
        // serialised, so a later revision is always a later commit.
        let head: i64 = txn
            .query_one(
                "UPDATE head SET revision = revision + 1 RETURNING revision",
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(self.fail())?;
        let committed = revision(head)?;
        for write in &writes {
            let (table, id, expect) = write.target();
            let previous: Option<(i64, bool)> = txn
                .query_opt(
                    "SELECT revision, value IS NOT NULL FROM rows \
                     WHERE tbl = $1 AND id = $2 FOR UPDATE",
                    &[&table.name(), &id],
                )
                .await
                .and_then(|found| {
                    found
                        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                        .transpose()
                })
                .map_err(self.fail())?;
            // A tombstone counts as absent.
            let live = match previous {
                Some((at, true)) => Some(revision(at)?),
                Some((_, false)) | None => None,
            };
            if !expectation_holds(expect, live) {
                // Dropping the transaction rolls every write of it back.
                return Err(StoreError::Conflict {
                    table,
                    id: id.to_owned(),
                });
            }
            match write {
                Write::Put { value, .. } => {
                    txn.execute(
                        "INSERT INTO rows (tbl, id, revision, value) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (tbl, id) \
                         DO UPDATE SET revision = EXCLUDED.revision, value = EXCLUDED.value",
                        &[&table.name(), &id, &head, value],
                    )
                    .await
                    .map_err(self.fail())?;
                }
                // Deleting a row that was never there leaves nothing to tell the feed.
                Write::Delete { .. } if previous.is_none() => {}
                Write::Delete { .. } => {
                    txn.execute(
                        "UPDATE rows SET revision = $3, value = NULL WHERE tbl = $1 AND id = $2",
                        &[&table.name(), &id, &head],
                    )
                    .await
                    .map_err(self.fail())?;
                }
            }
        }
        // Delivered to every listener when (and only if) this transaction commits.
        txn.execute(
            "SELECT pg_notify($1, $2)",
            &[&listen::CHANNEL, &head.to_string()],
        )
        .await
        .map_err(self.fail())?;
        txn.commit().await.map_err(self.fail())?;
        self.wakeups.notify_one();
        Ok(committed)
    }

    async fn changes_since(
        &self,
        after: Revision,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        // Revisions are bigint: nothing lies above one past its range, and no limit is larger.
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Only the tables this build knows, as redb does: a newer build's table is not ours.
        let known: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT tbl, id, revision, value FROM rows \
                 WHERE revision > $1 AND tbl = ANY($2) \
                 ORDER BY revision, tbl, id LIMIT $3",
                &[&after, &known, &limit],
            )
            .await
            .map_err(self.fail())?;
        rows.iter()
            .map(|row| {
                let name: &str = row.try_get(0).map_err(self.fail())?;
                let table = Table::from_name(name).ok_or_else(|| {
                    StoreError::Db(format!("{}: unknown table {name:?} in the feed", self.name))
                })?;
                Ok(Change {
                    table,
                    id: row.try_get(1).map_err(self.fail())?,
                    revision: revision(row.try_get(2).map_err(self.fail())?)?,
                    value: row.try_get(3).map_err(self.fail())?,
                })
            })
            .collect()
    }

    async fn add(
        &self,
        counter: &str,
        delta: i64,
        at_most: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        let mut client = self.pool.get().await?;
        let txn = client.transaction().await.map_err(self.fail())?;
        // A counter starts at 0; making its row first lets one conditional UPDATE decide, under
        // the row's lock, against the value as it is when the lock is granted.
        txn.execute(
            "INSERT INTO counters (name, value) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
            &[&counter],
        )
        .await
        .map_err(self.fail())?;
        let sum = txn
            .query_opt(
                "UPDATE counters SET value = sesame_saturating_add(value, $2) \
                 WHERE name = $1 \
                 AND ($3::bigint IS NULL OR sesame_saturating_add(value, $2) <= $3) \
                 RETURNING value",
                &[&counter, &delta, &at_most],
            )
            .await
            .map_err(self.fail())?;
        let Some(sum) = sum else {
            // Refused: dropping the transaction also takes back a row made for it above.
            return Ok(None);
        };
        let sum: i64 = sum.try_get(0).map_err(self.fail())?;
        txn.commit().await.map_err(self.fail())?;
        Ok(Some(sum))
    }

    async fn counters(&self, prefix: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT name, value FROM counters WHERE starts_with(name, $1) ORDER BY name",
                &[&prefix],
            )
            .await
            .map_err(self.fail())?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0).map_err(self.fail())?,
                    row.try_get(1).map_err(self.fail())?,
                ))
            })
            .collect()
    }

    fn wakeups(&self) -> Arc<Notify> {
        self.wakeups.clone()
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Brings the database to [`SCHEMA`], in one transaction under [`MIGRATION_LOCK`]: the first
/// gateway applies what is missing, the others wait for it and then find nothing to do.
async fn migrate(client: &mut Client, name: &str) -> Result<(), StoreError> {
    let fail = |e: tokio_postgres::Error| query_error(name, &e);
    let txn = client.transaction().await.map_err(fail)?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(fail)?;
    txn.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
         version bigint PRIMARY KEY, \
         applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(fail)?;
    let found: i64 = txn
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(fail)?;
    if found > i64::from(SCHEMA) {
        return Err(StoreError::TooNew {
            found: u32::try_from(found).unwrap_or(u32::MAX),
            known: SCHEMA,
        });
    }
    for (version, sql) in MIGRATIONS {
        if i64::from(version) <= found {
            continue;
        }
        txn.batch_execute(sql).await.map_err(fail)?;
        txn.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&i64::from(version)],
        )
        .await
        .map_err(fail)?;
        tracing::info!(store = %name, version, "applied a store migration");
    }
    txn.commit().await.map_err(fail)
}

/// A revision as stored (bigint) to the trait's; never negative unless the table was edited.
fn revision(stored: i64) -> Result<Revision, StoreError> {
    Revision::try_from(stored)
        .map_err(|_| StoreError::Db(format!("the store holds a negative revision {stored}")))
}

/// Where the store is, from its configuration: user, hosts, ports and database, never the
/// password.
fn describe(config: &Config) -> String {
    let ports = config.get_ports();
    let mut hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    if hosts.is_empty() {
        hosts = config
            .get_hostaddrs()
            .iter()
            .map(ToString::to_string)
            .collect();
    }
    let hosts: Vec<String> = hosts
        .into_iter()
        .enumerate()
        .map(|(i, host)| {
            // One port for every host, one port each, or the default.
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let dbname = config.get_dbname().unwrap_or_default();
    format!("postgresql {user}{}/{dbname}", hosts.join(","))
}

/// A connection that could not be opened: the store cannot be reached, whatever the cause
/// (refused, timed out, authentication, no such database).
fn connect_error(name: &str, e: &tokio_postgres::Error) -> StoreError {
    StoreError::Unreachable(format!("{name}: {}", full(e)))
}

/// An error met while using an open connection: a lost connection or a server shutting down
/// means the store cannot be reached; anything else the server said is a database error.
fn query_error(name: &str, e: &tokio_postgres::Error) -> StoreError {
    let lost = match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                ]
                .contains(code)
        }
        None => {
            e.is_closed()
                || std::error::Error::source(e)
                    .is_some_and(<dyn std::error::Error>::is::<std::io::Error>)
        }
    };
    if lost {
        StoreError::Unreachable(format!("{name}: {}", full(e)))
    } else {
        StoreError::Db(format!("{name}: {}", full(e)))
    }
}

/// An error with its causes, which the driver's own message leaves out ("db error").
fn full(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Sesame talks to PostgreSQL without TLS, and the store holds the key every credential
/// secret and link signature is derived from: over a network that would cross in clear. So
/// a server that is not on this machine (loopback or a Unix socket) must be named with
/// `sslmode=disable`, the operator's word that the network in between is private (a
/// container network, a tunnel); anything else is refused, saying why.
fn plain_only_where_it_stays_on_the_machine(config: &Config) -> Result<(), StoreError> {
    use tokio_postgres::config::{Host, SslMode};
    let remote = config.get_hosts().iter().find_map(|host| match host {
        Host::Tcp(name) => {
            let loopback = name == "localhost"
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            (!loopback).then(|| name.clone())
        }
        Host::Unix(_) => None,
    });
    let remote = remote.or_else(|| {
        config
            .get_hostaddrs()
            .iter()
            .find(|ip| !ip.is_loopback())
            .map(ToString::to_string)
    });
    match remote {
        Some(host) if config.get_ssl_mode() != SslMode::Disable => Err(StoreError::Db(format!(
            "the store is on {host}, off this machine, and Sesame speaks to PostgreSQL without \
             TLS: the store's keys and every grant would cross the network in clear. Keep \
             PostgreSQL on loopback, or reach it through a private network or a tunnel and say \
             so with sslmode=disable in the URL"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
/// A throwaway database for tests elsewhere that need a real server (usage across gateways).
#[cfg(test)]
pub(crate) use tests::TestDb;
