//! Usage with a store and a trail, put together as `server::start` does: what a gateway
//! counted survives a restart after retention deleted the trail it was counted from, a crash
//! between two writes of the row loses nothing, two gateways on one store (redb, and
//! PostgreSQL through `SESAME_TEST_POSTGRES`) count each other's use against the limits, and
//! the ledger's task writes the row as the trail moves (every `FLUSH_EVERY`), only then, and
//! when asked.

use std::path::Path;
use std::sync::Arc;

use time::Duration;

use super::{T0, effect_of, limited};
use crate::audit::verify::records;
use crate::audit::{AuditLog, Settings};
use crate::clock::{Clock as _, ManualClock};
use crate::grant::usage::{
    Direction, Effect, Flushed, Ledger, Meter, Replay, ReplicaUsage, Resumed,
};
use crate::model::Grant;
use crate::record::examples::{Use, completion, decision, note};
use crate::store::{SharedStore, Table};

/// One gateway's trail and meter.
struct Gateway {
    audit: AuditLog,
    meter: Arc<Meter>,
    clock: ManualClock,
}

/// Starts gateway `replica` on `store` with its trail in `dir`: its row loaded, the trail
/// opened holding what the row does not cover and replayed after it.
async fn start(
    store: &SharedStore,
    dir: &Path,
    replica: &str,
    clock: &ManualClock,
    settings: &Settings,
) -> (Gateway, Ledger) {
    let mut usage = Resumed::load(store.clone(), replica, effect_of)
        .await
        .unwrap();
    let audit = AuditLog::open_holding(
        dir,
        settings,
        Arc::new(clock.clone()),
        usage.hold(),
        |record| usage.add(record),
    )
    .unwrap();
    let (meter, ledger) = usage.finish(&audit);
    let gateway = Gateway {
        audit,
        meter,
        clock: clock.clone(),
    };
    (gateway, ledger)
}

impl Gateway {
    /// A download under `grant` as the data path serves it: admitted, its decision recorded,
    /// its bytes counted as they stream, and its completion recorded when `answered`. The
    /// decision's seq.
    async fn download(&self, grant: &Grant, bytes: u64, answered: bool) -> u64 {
        let at = self.clock.now();
        self.meter.admit(grant, Effect::Download, at).unwrap();
        let by = Use {
            at,
            op: "GetObject",
            principal: "alice",
            grant: &grant.id,
            bucket: "hr-data",
            key: "payroll/a.csv",
        };
        let seq = self.audit.append(decision(by, true)).await.unwrap();
        self.meter
            .of(&grant.id)
            .add_bytes(&grant.limits, Direction::Read, bytes)
            .unwrap();
        if answered {
            self.answer(seq, bytes).await;
        }
        seq
    }

    /// The completion of download `seq`, which moved `bytes`.
    async fn answer(&self, seq: u64, bytes: u64) {
        let done = completion(self.clock.now(), seq, 200, bytes, 0);
        self.audit.append(done).await.unwrap();
    }

    /// A note in the trail; with a one-byte rotation, each starts a file and the pruning
    /// after it runs before the next note is taken.
    async fn note(&self) {
        self.audit.append(note("time passes")).await.unwrap();
    }
}

/// The ledger counts what the trail committed and writes the row.
async fn flush(ledger: &mut Ledger, gateway: &Gateway) -> Flushed {
    assert!(ledger.catch_up(gateway.audit.committed()).await);
    ledger.flush().await.unwrap()
}

/// What the change feed hands `meter`: every change in the store.
async fn feed(store: &SharedStore, meter: &Meter) {
    for change in store.changes_since(0, 1000).await.unwrap() {
        meter.apply(&change).unwrap();
    }
}

/// One file per batch, and files older than a day deleted.
fn pruning() -> Settings {
    Settings {
        rotate_bytes: 1,
        retain_days: Some(1),
        forward: None,
        root: None,
    }
}

async fn redb(root: &Path) -> SharedStore {
    crate::store::open_file(&root.join("sesame.redb"))
        .await
        .unwrap()
}

#[tokio::test]
async fn usage_survives_a_restart_with_the_trail_pruned_by_retention() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let store = redb(root.path()).await;
    let clock = ManualClock::new(T0);
    let grant = limited(None, Some(2));
    let (gateway, mut ledger) = start(&store, &dir, "r-1", &clock, &pruning()).await;
    gateway.download(&grant, 10, true).await;
    gateway.download(&grant, 10, true).await;
    assert_eq!(flush(&mut ledger, &gateway).await.through_seq, 4);

    // Three days on, every file holding those records is past retention and goes.
    clock.advance(Duration::days(3));
    gateway.note().await;
    gateway.note().await;
    let left = records(&dir).unwrap();
    assert!(left.iter().all(|r| r.seq > 4), "{left:?}");
    drop((gateway, ledger));

    // The trail alone no longer knows the grant was used...
    let mut bare = Replay::new(effect_of);
    for record in &left {
        bare.add(record.seq, &record.body);
    }
    assert!(!bare.totals().grants.contains_key("g-1"));
    // ...the restarted gateway does, from its row, and the limit still refuses.
    let (gateway, _ledger) = start(&store, &dir, "r-1", &clock, &pruning()).await;
    let usage = gateway.meter.get("g-1");
    assert_eq!(
        (usage.requests, usage.objects_read, usage.bytes_read),
        (2, 2, 20)
    );
    assert_eq!(
        gateway
            .meter
            .admit(&grant, Effect::Download, clock.now())
            .unwrap_err(),
        "grant g-1 reached its limit of 2 objects read and written"
    );
}

#[tokio::test]
async fn a_crash_between_flushes_loses_nothing_the_trail_holds() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let store = redb(root.path()).await;
    let clock = ManualClock::new(T0);
    let grant = limited(None, None);
    let (gateway, mut ledger) = start(&store, &dir, "r-1", &clock, &pruning()).await;
    // A download (records 1 and 2), and one still streaming (3) when the row is written.
    gateway.download(&grant, 10, true).await;
    let streaming = gateway.download(&grant, 7, false).await;
    let row = flush(&mut ledger, &gateway).await;
    assert_eq!(row.through_seq, 3);
    // After the row: that download's completion (4), and another download (5 and 6).
    gateway.answer(streaming, 7).await;
    gateway.download(&grant, 5, true).await;
    let counted = gateway.meter.get("g-1");
    assert_eq!(
        (counted.requests, counted.objects_read, counted.bytes_read),
        (3, 3, 22)
    );

    // Days later retention deletes what the row holds, and keeps what it does not.
    clock.advance(Duration::days(3));
    gateway.note().await;
    gateway.note().await;
    let left: Vec<u64> = records(&dir).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(left[..3], [4, 5, 6], "{left:?}");

    // A crash: the row was not written again. The restart counts the rest from the trail.
    drop((gateway, ledger));
    let (gateway, _ledger) = start(&store, &dir, "r-1", &clock, &pruning()).await;
    assert_eq!(gateway.meter.get("g-1"), counted);
}

/// Gateways `a` and `b`, each with its own trail, on the store that `a` and `b` reach (one
/// store; for PostgreSQL, two connections to one database, as two processes would hold).
async fn two_gateways_sum_each_other(a_store: SharedStore, b_store: SharedStore) {
    let root = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let grant = limited(Some(100), Some(3));
    let plain = Settings::default();
    let a_dir = root.path().join("a");
    let b_dir = root.path().join("b");
    let (a, mut a_ledger) = start(&a_store, &a_dir, "r-a", &clock, &plain).await;
    let (b, mut b_ledger) = start(&b_store, &b_dir, "r-b", &clock, &plain).await;

    // A serves a download, and is streaming another's bytes when it writes its row.
    a.download(&grant, 30, true).await;
    a.meter
        .of("g-1")
        .add_bytes(&grant.limits, Direction::Read, 40)
        .unwrap();
    flush(&mut a_ledger, &a).await;
    feed(&b_store, &b.meter).await;
    let seen = b.meter.get("g-1");
    assert_eq!(
        (seen.requests, seen.objects_read, seen.bytes_read),
        (1, 1, 70)
    );

    // B counts on top of what A did: 30 bytes more reach the limit, one more is cut.
    b.download(&grant, 30, true).await;
    let cut = b
        .meter
        .of("g-1")
        .add_bytes(&grant.limits, Direction::Read, 1)
        .unwrap_err();
    assert_eq!(
        cut,
        "grant g-1 reached its limit of 100 bytes read and written"
    );
    flush(&mut b_ledger, &b).await;

    // A, fed B's row (and its own, which it does not count twice), refuses too.
    feed(&a_store, &a.meter).await;
    let summed = a.meter.get("g-1");
    assert_eq!(
        (summed.requests, summed.objects_read, summed.bytes_read),
        (2, 2, 100)
    );
    assert_eq!(
        a.meter
            .admit(&grant, Effect::None, clock.now())
            .unwrap_err(),
        "grant g-1 reached its limit of 100 bytes read and written"
    );
    let rows: Vec<String> = a_store
        .scan(Table::Usage)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(rows, ["r-a", "r-b"]);
}

#[tokio::test]
async fn two_meters_on_one_redb_store_sum_each_other() {
    let root = tempfile::tempdir().unwrap();
    let store = redb(root.path()).await;
    two_gateways_sum_each_other(store.clone(), store).await;
}

#[tokio::test]
async fn two_meters_on_one_postgres_store_sum_each_other() {
    let db = crate::store::TestDb::create().await;
    let a: SharedStore = Arc::new(db.connect().await);
    let b: SharedStore = Arc::new(db.connect().await);
    two_gateways_sum_each_other(a, b).await;
}

#[tokio::test]
async fn the_ledger_writes_its_row_as_the_trail_moves_only_then_and_when_asked() {
    let root = tempfile::tempdir().unwrap();
    let store = redb(root.path()).await;
    let clock = ManualClock::new(T0);
    let grant = limited(None, None);
    let (gateway, ledger) = start(
        &store,
        &root.path().join("audit"),
        "r-1",
        &clock,
        &pruning(),
    )
    .await;
    let (task, asked) = ledger.spawn(&gateway.audit);
    let row = || async {
        crate::store::get::<ReplicaUsage>(&*store, "r-1")
            .await
            .unwrap()
            .unwrap()
    };
    // Written at once, before anything is served.
    let mut flushed = asked.flushed();
    flushed.wait_for(|f| f.revision > 0).await.unwrap();

    // A download: its two records reach the row within a flush period (the task's own
    // timer: the test waits for the row, not for a time).
    let seq = gateway.download(&grant, 10, true).await;
    let written = *flushed.wait_for(|f| f.through_seq > seq).await.unwrap();
    let (revision, stored) = row().await;
    assert_eq!(revision, written.revision);
    assert_eq!(stored.totals.grants["g-1"].bytes_read, 10);
    assert!(stored.ahead.is_empty(), "{stored:?}");

    // Nothing new: nothing written, asked or not.
    assert_eq!(asked.flush_now().await.unwrap(), written);
    assert_eq!(row().await.0, revision);

    // Asked (at shutdown): bytes still streaming go in, as counted beyond the trail.
    gateway
        .meter
        .of("g-1")
        .add_bytes(&grant.limits, Direction::Read, 25)
        .unwrap();
    let now = asked.flush_now().await.unwrap();
    let (revision, stored) = row().await;
    assert_eq!(revision, now.revision);
    assert_eq!(stored.ahead["g-1"].bytes_read, 25);
    task.abort();
}
