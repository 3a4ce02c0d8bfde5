//! The one suite every [`Store`] implementation passes: revisions, compare-and-set commits
//! that write all or nothing, the change feed, exact counters, and serialised updates under
//! concurrent callers released together by a barrier. `redb.rs`'s tests and `postgres.rs`'s
//! tests run it against their engine.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    Change, Expect, SharedStore, Step, Store, StoreError, Stored, Table, Write, get, update,
};

/// A value for the suite: a named tally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub id: String,
    pub n: u64,
}

impl Stored for Tally {
    const TABLE: Table = Table::Keys;
    const WHAT: &'static str = "tally";
    fn row_id(&self) -> String {
        self.id.clone()
    }
}

fn tally(id: &str, n: u64) -> Tally {
    Tally { id: id.into(), n }
}

/// Runs every check on a store that starts empty. `reopen` opens the same store again (a
/// restart), to check that commits are durable.
pub async fn suite<F, Fut>(store: SharedStore, reopen: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = SharedStore>,
{
    commits_carry_increasing_revisions(&*store).await;
    a_failed_expectation_writes_nothing(&*store).await;
    deletes_are_changes_too(&*store).await;
    the_feed_is_ordered_deduplicated_and_bounded(&*store).await;
    counters_are_exact(&store).await;
    concurrent_updates_never_undo_each_other(&store).await;
    a_wakeup_follows_every_commit(&*store).await;
    let head = store.changes_since(0, usize::MAX).await.unwrap();
    drop(store);
    let again = reopen().await;
    assert_eq!(
        again.changes_since(0, usize::MAX).await.unwrap(),
        head,
        "every commit survives reopening"
    );
    let (_, value) = get::<Tally>(&*again, "a").await.unwrap().unwrap();
    assert_eq!(value, tally("a", 2));
}

async fn commits_carry_increasing_revisions(store: &dyn Store) {
    let first = store
        .commit(vec![Write::put(&tally("a", 1), Expect::Absent)])
        .await
        .unwrap();
    let second = store
        .commit(vec![Write::put(&tally("a", 2), Expect::At(first))])
        .await
        .unwrap();
    assert!(second > first, "{second} after {first}");
    let row = store.read(Table::Keys, "a").await.unwrap().unwrap();
    assert_eq!(row.revision, second);
    assert_eq!(
        super::decode::<Tally>("a", &row.value).unwrap(),
        tally("a", 2)
    );
    assert!(store.read(Table::Keys, "missing").await.unwrap().is_none());
    assert!(
        store.read(Table::Grants, "a").await.unwrap().is_none(),
        "tables do not share ids"
    );
}

async fn a_failed_expectation_writes_nothing(store: &dyn Store) {
    let before = store.changes_since(0, usize::MAX).await.unwrap();
    let at = store
        .read(Table::Keys, "a")
        .await
        .unwrap()
        .unwrap()
        .revision;
    for stale in [
        // A new row beside a row that should have been absent.
        vec![
            Write::put(&tally("b", 1), Expect::Absent),
            Write::put(&tally("a", 9), Expect::Absent),
        ],
        // A write from a stale copy.
        vec![
            Write::put(&tally("b", 1), Expect::Absent),
            Write::put(&tally("a", 9), Expect::At(at - 1)),
        ],
        // An update of a row that is not there.
        vec![Write::put(&tally("c", 1), Expect::At(at))],
        vec![Write::delete::<Tally>("c", Expect::At(at))],
    ] {
        let err = store.commit(stale).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    }
    assert_eq!(store.changes_since(0, usize::MAX).await.unwrap(), before);
    assert!(store.read(Table::Keys, "b").await.unwrap().is_none());
}

async fn deletes_are_changes_too(store: &dyn Store) {
    let made = store
        .commit(vec![Write::put(&tally("gone", 1), Expect::Absent)])
        .await
        .unwrap();
    let deleted = store
        .commit(vec![Write::delete::<Tally>("gone", Expect::At(made))])
        .await
        .unwrap();
    assert!(store.read(Table::Keys, "gone").await.unwrap().is_none());
    assert!(
        store
            .scan(Table::Keys)
            .await
            .unwrap()
            .iter()
            .all(|r| r.id != "gone")
    );
    let changes = store.changes_since(made, usize::MAX).await.unwrap();
    assert_eq!(
        changes,
        vec![Change {
            table: Table::Keys,
            id: "gone".into(),
            revision: deleted,
            value: None
        }]
    );
    // A deleted row is absent again: it can be made anew, and deleting it twice is no error
    // when nothing was expected of it.
    store
        .commit(vec![Write::delete::<Tally>("gone", Expect::Anything)])
        .await
        .unwrap();
    store
        .commit(vec![Write::delete::<Tally>("never-was", Expect::Anything)])
        .await
        .unwrap();
    let again = store
        .commit(vec![Write::put(&tally("gone", 5), Expect::Absent)])
        .await
        .unwrap();
    store
        .commit(vec![Write::delete::<Tally>("gone", Expect::At(again))])
        .await
        .unwrap();
}

async fn the_feed_is_ordered_deduplicated_and_bounded(store: &dyn Store) {
    let start = store.changes_since(0, usize::MAX).await.unwrap();
    let from = start.last().map_or(0, |c| c.revision);
    let one = store
        .commit(vec![
            Write::put(&tally("f1", 1), Expect::Absent),
            Write::put(&tally("f2", 1), Expect::Absent),
        ])
        .await
        .unwrap();
    let two = store
        .commit(vec![Write::put(&tally("f1", 2), Expect::At(one))])
        .await
        .unwrap();
    let changes = store.changes_since(from, usize::MAX).await.unwrap();
    let seen: Vec<(&str, u64)> = changes
        .iter()
        .map(|c| (c.id.as_str(), c.revision))
        .collect();
    // f1 appears once, at its latest revision, after f2 which has not changed since.
    assert_eq!(seen, vec![("f2", one), ("f1", two)]);
    let f1: Tally = super::decode("f1", changes[1].value.as_deref().unwrap()).unwrap();
    assert_eq!(f1.n, 2);
    assert_eq!(store.changes_since(from, 1).await.unwrap().len(), 1);
    assert!(store.changes_since(two, 10).await.unwrap().is_empty());
    let revisions: Vec<u64> = store
        .changes_since(0, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|c| c.revision)
        .collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
}

async fn counters_are_exact(store: &SharedStore) {
    assert_eq!(store.add("suite/a", 3, None).await.unwrap(), Some(3));
    assert_eq!(store.add("suite/a", -1, None).await.unwrap(), Some(2));
    assert_eq!(store.add("suite/a", 5, Some(6)).await.unwrap(), None);
    assert_eq!(store.add("suite/a", 4, Some(6)).await.unwrap(), Some(6));
    assert_eq!(store.add("other", 1, None).await.unwrap(), Some(1));
    // 16 callers at once race for 5 places: exactly 5 get one.
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.add("suite/limited", 1, Some(5)).await.unwrap()
            })
        })
        .collect();
    let mut taken = 0;
    for racer in racers {
        if racer.await.unwrap().is_some() {
            taken += 1;
        }
    }
    assert_eq!(taken, 5);
    assert_eq!(
        store.counters("suite/").await.unwrap(),
        vec![("suite/a".to_owned(), 6), ("suite/limited".to_owned(), 5)]
    );
}

/// Many tasks each add one to the same row through [`update`]: the total is exact.
async fn concurrent_updates_never_undo_each_other(store: &SharedStore) {
    const TASKS: usize = 8;
    const EACH: u64 = 5;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                for _ in 0..EACH {
                    update::<Tally, (), StoreError>(&*store, "shared", |current| {
                        Ok(Step::Write {
                            next: tally("shared", current.map_or(0, |t| t.n) + 1),
                            also: vec![],
                            answer: (),
                        })
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let (_, shared) = get::<Tally>(&**store, "shared").await.unwrap().unwrap();
    assert_eq!(shared.n, TASKS as u64 * EACH);
    // A decision to keep writes nothing.
    let before = store.changes_since(0, usize::MAX).await.unwrap();
    let kept = update::<Tally, &str, StoreError>(&**store, "shared", |_| Ok(Step::Keep("no")))
        .await
        .unwrap();
    assert!(!kept.wrote);
    assert_eq!(kept.answer, "no");
    assert_eq!(store.changes_since(0, usize::MAX).await.unwrap(), before);
}

async fn a_wakeup_follows_every_commit(store: &dyn Store) {
    let wakeups = store.wakeups();
    // A wake-up left over from earlier commits is taken first, so this one is new.
    let _ = futures::FutureExt::now_or_never(wakeups.notified());
    store
        .commit(vec![Write::put(&tally("w", 1), Expect::Anything)])
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), wakeups.notified())
        .await
        .expect("a commit wakes the feed's follower");
}
