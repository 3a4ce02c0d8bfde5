//! The PostgreSQL store against a real server: the shared conformance suite, two stores on one
//! database, the feed under concurrent writers, migrations, the listener's reconnect, and
//! failures to connect. Each test that needs the server makes a database of its own on the
//! server named by `SESAME_TEST_POSTGRES` and drops it when done, passed or failed.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use tokio_postgres::NoTls;

use super::{PostgresStore, SCHEMA, plain_only_where_it_stays_on_the_machine};
use crate::store::conformance::{self, Tally};
use crate::store::{Expect, SharedStore, Store, StoreError, Table, Write};

const ENV: &str = "SESAME_TEST_POSTGRES";

/// How long a test waits for something the server does at once (a wake-up, a reconnect).
const PATIENCE: Duration = Duration::from_secs(10);

/// The admin URL of the test server. Unset is a failure, never a silent skip.
fn admin_url() -> String {
    match std::env::var(ENV) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            panic!(
                "{ENV} is not set: the PostgreSQL store tests need a server to make throwaway \
                 databases on.{} Start one with `source scripts/pg-test-server.sh` (as root: it \
                 installs PostgreSQL if missing, starts a private server on a free loopback port \
                 and exports {ENV}) and run cargo test in the same shell, or set {ENV} to an \
                 admin URL such as postgres://sesame@127.0.0.1:5432/postgres (a role that may \
                 create databases).",
                if ci {
                    " CI=true: the test command must start that server before cargo test."
                } else {
                    ""
                }
            )
        }
    }
}

async fn admin_client(admin: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(admin, NoTls)
        .await
        .unwrap_or_else(|e| panic!("the test server at {ENV} cannot be reached: {e}"));
    tokio::spawn(connection);
    client
}

/// `admin` with its database replaced by `dbname`, in URL or `key=value` form.
fn with_dbname(admin: &str, dbname: &str) -> String {
    let Some(scheme) = admin.find("://") else {
        return format!("{admin} dbname={dbname}");
    };
    let start = scheme + 3;
    let authority_end = admin[start..]
        .find(['/', '?'])
        .map_or(admin.len(), |i| start + i);
    let query = admin[authority_end..]
        .find('?')
        .map_or("", |i| &admin[authority_end + i..]);
    format!("{}/{dbname}{query}", &admin[..authority_end])
}

/// A database of its own for one test, dropped (with any connection still open to it) when
/// the test ends, whether it passed or not.
pub(crate) struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    pub(crate) async fn create() -> TestDb {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let admin = admin_url();
        let salt =
            RandomState::new().hash_one((std::process::id(), MADE.fetch_add(1, Ordering::Relaxed)));
        let name = format!("sesame_test_{salt:016x}");
        admin_client(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        TestDb {
            url: with_dbname(&admin, &name),
            admin,
            name,
        }
    }

    pub(crate) async fn connect(&self) -> PostgresStore {
        PostgresStore::connect(&self.url).await.unwrap()
    }

    /// Sessions open on this database, as the server counts them.
    async fn sessions(&self) -> i64 {
        admin_client(&self.admin)
            .await
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&self.name],
            )
            .await
            .unwrap()
            .get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the one unwinding: a runtime of
        // its own on a thread of its own.
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&admin, NoTls).await?;
                tokio::spawn(connection);
                client.batch_execute(&sql).await
            })?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("test database {} was not dropped: {dropped:?}", self.name);
        }
    }
}

fn put(id: &str, n: u64, expect: Expect) -> Write {
    Write::put(&Tally { id: id.into(), n }, expect)
}

/// Takes a wake-up left over from earlier, so that the next one waited for is new.
fn drain(wakeups: &tokio::sync::Notify) {
    let _ = wakeups.notified().now_or_never();
}

#[tokio::test]
async fn the_conformance_suite_passes() {
    let db = TestDb::create().await;
    let store: SharedStore = Arc::new(db.connect().await);
    let url = db.url.clone();
    conformance::suite(store, || async move {
        Arc::new(PostgresStore::connect(&url).await.unwrap()) as SharedStore
    })
    .await;
}

#[tokio::test]
async fn two_stores_see_and_wake_each_other() {
    let db = TestDb::create().await;
    let one = db.connect().await;
    let two = db.connect().await;

    // `two` has committed nothing, so only `one`'s NOTIFY can wake it.
    drain(&two.wakeups());
    let first = one
        .commit(vec![put("from-one", 1, Expect::Absent)])
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, two.wakeups().notified())
        .await
        .expect("a commit by one store wakes the other");
    let seen = two.changes_since(0, usize::MAX).await.unwrap();
    assert_eq!(
        seen.iter()
            .map(|c| (c.id.as_str(), c.revision))
            .collect::<Vec<_>>(),
        vec![("from-one", first)]
    );

    // The other way round. `one`'s own NOTIFY may still be on its way to it, so a handle on
    // the same database that has committed nothing stands in for it.
    drop(one);
    let one = db.connect().await;
    drain(&one.wakeups());
    let second = two
        .commit(vec![put("from-one", 2, Expect::At(first))])
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, one.wakeups().notified())
        .await
        .expect("a commit by the other store wakes this one");
    let row = one.read(Table::Keys, "from-one").await.unwrap().unwrap();
    assert_eq!(row.revision, second);
    // Each one's stale copy now loses to the other's write.
    let err = one
        .commit(vec![put("from-one", 3, Expect::At(first))])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
}

/// Writers on two stores commit at once while a follower reads the feed as it goes: it sees
/// every commit, each once, and never one below a revision it has already passed.
#[tokio::test]
async fn the_feed_misses_no_commit_under_concurrent_writers() {
    const WRITERS: usize = 4;
    const EACH: usize = 15;
    let db = TestDb::create().await;
    let stores: [SharedStore; 2] = [Arc::new(db.connect().await), Arc::new(db.connect().await)];
    let follower = db.connect().await;
    let wakeups = follower.wakeups();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = stores[w % 2].clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    // A row of its own per commit, so every revision stays in the feed.
                    store
                        .commit(vec![put(&format!("w{w}-{i}"), 1, Expect::Absent)])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let mut last = 0;
    let mut seen = Vec::new();
    loop {
        let done = writers.iter().all(tokio::task::JoinHandle::is_finished);
        for change in follower.changes_since(last, 7).await.unwrap() {
            assert!(change.revision > last, "{} after {last}", change.revision);
            last = change.revision;
            seen.push(change.revision);
        }
        if done && follower.changes_since(last, 1).await.unwrap().is_empty() {
            break;
        }
        // Woken by the writers' NOTIFY; the timeout is the follower's polling safety net.
        let _ = tokio::time::timeout(Duration::from_millis(50), wakeups.notified()).await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let expected: Vec<u64> = (1..=(WRITERS * EACH) as u64).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn migrations_applied_twice_are_fine() {
    let db = TestDb::create().await;
    let first = db.connect().await;
    first
        .commit(vec![put("kept", 1, Expect::Absent)])
        .await
        .unwrap();
    let second = db.connect().await;
    assert!(second.read(Table::Keys, "kept").await.unwrap().is_some());
    let versions: Vec<i64> = admin_client(&db.url)
        .await
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, (1..=i64::from(SCHEMA)).collect::<Vec<_>>());
}

#[tokio::test]
async fn replicas_starting_together_migrate_once() {
    let db = TestDb::create().await;
    let opened = futures::future::join_all((0..4).map(|_| PostgresStore::connect(&db.url))).await;
    for store in &opened {
        assert!(store.is_ok(), "{:?}", store.as_ref().err());
    }
    let applied: i64 = admin_client(&db.url)
        .await
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, i64::from(SCHEMA));
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let db = TestDb::create().await;
    drop(db.connect().await);
    admin_client(&db.url)
        .await
        .execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&i64::from(SCHEMA + 1)],
        )
        .await
        .unwrap();
    let err = PostgresStore::connect(&db.url).await.err().unwrap();
    assert!(
        matches!(err, StoreError::TooNew { found, known } if found == SCHEMA + 1 && known == SCHEMA),
        "{err}"
    );
}

/// Notifications sent while the listening connection is down are lost; the store wakes its
/// follower once it listens again, and hears other commits from then on.
#[tokio::test]
async fn the_listener_reconnects_and_wakes_after_a_drop() {
    let db = TestDb::create().await;
    let store = db.connect().await;
    let other = db.connect().await;
    let wakeups = store.wakeups();
    drain(&wakeups);
    let cut: Vec<bool> = admin_client(&db.admin)
        .await
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'sesame listener'",
            &[&db.name],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(cut, vec![true, true], "both stores' listeners were cut");
    tokio::time::timeout(PATIENCE, wakeups.notified())
        .await
        .expect("a wake-up once listening again");
    other
        .commit(vec![put("after", 1, Expect::Absent)])
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, wakeups.notified())
        .await
        .expect("other commits are heard after the reconnect");
}

/// A server that cuts the store's connections (a restart, a failover) costs at most the
/// calls in flight, which fail as unreachable; the pool then opens fresh connections.
#[tokio::test]
async fn cut_connections_are_replaced() {
    let db = TestDb::create().await;
    let store = db.connect().await;
    store
        .commit(vec![put("a", 1, Expect::Absent)])
        .await
        .unwrap();
    let cut: i64 = admin_client(&db.admin)
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'sesame'",
            &[&db.name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(cut >= 1);
    let mut answered = false;
    for _ in 0..10 {
        match store.read(Table::Keys, "a").await {
            Ok(row) => {
                assert!(row.is_some());
                answered = true;
                break;
            }
            Err(StoreError::Unreachable(_)) => {}
            Err(e) => panic!("a cut connection is unreachable, not {e}"),
        }
    }
    assert!(answered, "the store answers again on a fresh connection");
}

#[tokio::test]
async fn a_dropped_store_closes_its_connections() {
    let db = TestDb::create().await;
    let store = db.connect().await;
    store
        .commit(vec![put("a", 1, Expect::Absent)])
        .await
        .unwrap();
    assert!(
        db.sessions().await >= 2,
        "a pooled and a listening connection"
    );
    drop(store);
    let closed = async {
        while db.sessions().await > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, closed)
        .await
        .expect("every connection of a dropped store closes");
}

/// Input the trait allows but the engine cannot hold is an error, not a panic; values past
/// the engine's ranges behave as the trait says.
#[tokio::test]
async fn odd_input_is_answered_not_panicked_on() {
    let db = TestDb::create().await;
    let store = db.connect().await;
    // PostgreSQL text cannot hold NUL (redb can): refused, and nothing is written.
    let err = store
        .commit(vec![put("nul\0id", 1, Expect::Absent)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "{err}");
    assert!(store.changes_since(0, usize::MAX).await.unwrap().is_empty());
    // A revision no commit can have.
    let err = store
        .commit(vec![put("a", 1, Expect::At(u64::MAX))])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let at = store
        .commit(vec![put("a", 1, Expect::Absent)])
        .await
        .unwrap();
    assert!(
        store
            .changes_since(u64::MAX, usize::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.changes_since(0, 0).await.unwrap(), vec![]);
    // An empty commit still takes a revision, as redb's does.
    assert_eq!(store.commit(vec![]).await.unwrap(), at + 1);
    // Counters saturate instead of failing, as i64::saturating_add does.
    assert_eq!(
        store.add("big", i64::MAX, None).await.unwrap(),
        Some(i64::MAX)
    );
    assert_eq!(store.add("big", 1, None).await.unwrap(), Some(i64::MAX));
    assert_eq!(
        store.add("small", i64::MIN, None).await.unwrap(),
        Some(i64::MIN)
    );
    assert_eq!(store.add("small", -1, None).await.unwrap(), Some(i64::MIN));
    // A refused add leaves no counter behind, and a negative one can still grow to the limit.
    assert_eq!(store.add("refused", 5, Some(4)).await.unwrap(), None);
    assert_eq!(store.add("neg", -10, None).await.unwrap(), Some(-10));
    assert_eq!(store.add("neg", 5, Some(0)).await.unwrap(), Some(-5));
    // LIKE's wildcards in a prefix are plain characters.
    assert_eq!(store.add("a%b", 1, None).await.unwrap(), Some(1));
    assert_eq!(store.add("axb", 1, None).await.unwrap(), Some(1));
    assert_eq!(
        store.counters("a%").await.unwrap(),
        vec![("a%b".to_owned(), 1)]
    );
    assert!(store.counters("refused").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_closed_port_is_unreachable_quickly() {
    // A port that was free a moment ago and that nothing listens on now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://sesame@127.0.0.1:{port}/sesame");
    let err = tokio::time::timeout(Duration::from_secs(3), PostgresStore::connect(&url))
        .await
        .expect("a refused connection is reported at once")
        .err()
        .unwrap();
    let StoreError::Unreachable(message) = &err else {
        panic!("{err}");
    };
    assert!(
        message.starts_with(&format!("postgresql sesame@127.0.0.1:{port}/sesame: ")),
        "{message}"
    );
}

#[tokio::test]
async fn a_malformed_url_is_refused_without_showing_the_password() {
    for url in [
        "postgres://sesame:hunter2@127.0.0.1:notaport/sesame",
        "postgres://sesame:hunter2@/sesame",
        "host=127.0.0.1 password=hunter2 port=",
    ] {
        let err = PostgresStore::connect(url).await.err().unwrap();
        let StoreError::Db(message) = &err else {
            panic!("{url}: {err}");
        };
        assert!(message.contains("postgresql url"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn a_server_off_this_machine_needs_the_operator_to_say_the_network_is_private() {
    let check = |url: &str| plain_only_where_it_stays_on_the_machine(&url.parse().unwrap());
    for url in [
        "postgres://sesame:hunter2@127.0.0.1:5432/sesame",
        "postgres://sesame@localhost/sesame",
        "postgres://sesame@[::1]:5432/sesame",
        "host=/run/postgresql dbname=sesame",
        "postgres://sesame:hunter2@db.internal:5432/sesame?sslmode=disable",
    ] {
        assert!(check(url).is_ok(), "{url}");
    }
    for url in [
        "postgres://sesame:hunter2@db.internal:5432/sesame",
        "postgres://sesame@10.0.0.5/sesame?sslmode=prefer",
        "postgres://sesame@127.0.0.1,db.internal/sesame",
    ] {
        let Err(StoreError::Db(message)) = check(url) else {
            panic!("{url} was accepted");
        };
        assert!(message.contains("sslmode=disable"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn describe_names_the_store_without_the_password() {
    let config = "postgres://sesame:hunter2@db.internal:6432/gateway"
        .parse()
        .unwrap();
    assert_eq!(
        super::describe(&config),
        "postgresql sesame@db.internal:6432/gateway"
    );
    // Several hosts: a port each, or one port for all of them.
    let config = "postgres://a:1,b:2/x".parse().unwrap();
    assert_eq!(super::describe(&config), "postgresql a:1,b:2/x");
    let config = "host=a,b port=5433 dbname=x password=hunter2"
        .parse()
        .unwrap();
    assert_eq!(super::describe(&config), "postgresql a:5433,b:5433/x");
}

#[test]
fn with_dbname_replaces_only_the_database() {
    assert_eq!(
        with_dbname("postgres://sesame@127.0.0.1:5432/postgres", "t1"),
        "postgres://sesame@127.0.0.1:5432/t1"
    );
    assert_eq!(
        with_dbname("postgres://sesame@127.0.0.1:5432?sslmode=disable", "t1"),
        "postgres://sesame@127.0.0.1:5432/t1?sslmode=disable"
    );
    assert_eq!(
        with_dbname("host=/tmp user=sesame", "t1"),
        "host=/tmp user=sesame dbname=t1"
    );
}

/// A session holding the head row (a hung client, an operator's open transaction) makes a
/// commit fail with the lock timeout's error, not hang; once it lets go, commits go through.
#[tokio::test]
async fn a_commit_behind_a_stuck_session_fails_with_the_lock_timeout_instead_of_hanging() {
    let db = TestDb::create().await;
    let store = db.connect().await;
    let (holder, connection) = tokio_postgres::connect(&db.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    holder
        .batch_execute("BEGIN; SELECT revision FROM head FOR UPDATE")
        .await
        .unwrap();
    let stuck = tokio::time::timeout(
        Duration::from_secs(30),
        store.commit(vec![Write::put(
            &Tally {
                id: "t".into(),
                n: 1,
            },
            Expect::Absent,
        )]),
    )
    .await
    .expect("the commit returned instead of waiting for ever");
    let Err(StoreError::Db(message)) = stuck else {
        panic!("expected the lock timeout's error, got {stuck:?}");
    };
    assert!(message.contains("lock timeout"), "{message}");
    holder.batch_execute("ROLLBACK").await.unwrap();
    store
        .commit(vec![Write::put(
            &Tally {
                id: "t".into(),
                n: 1,
            },
            Expect::Absent,
        )])
        .await
        .unwrap();
}
