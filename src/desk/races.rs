//! Concurrent writers of grants and requests, released together by a barrier, many rounds
//! each: none may undo another. These pin issue 16: a deadline notice written from a copy read
//! before a revocation put the grant back in force, and the request desk let an approval and
//! a denial of one request both succeed.

use std::sync::{Arc, Barrier};

use time::macros::datetime;

use super::{NewRequest, Workflow};
use crate::clock::{Clock, ManualClock, SharedClock};
use crate::grant::Grants;
use crate::identity::Users;
use crate::model::Principal;
use crate::model::request::RequestState;
use crate::model::{Action, Grant, GrantState, Scope};
use crate::secret::Key;
use crate::store::SharedStore;

const ROUNDS: usize = 40;

fn scope(uri: &str) -> Scope {
    Scope::parse(uri, vec![Action::Read]).unwrap()
}

/// Runs `a` and `b` on two threads, each on a runtime of its own, released by one barrier;
/// returns both results.
fn race<A, B>(a: A, b: B) -> (A::Output, B::Output)
where
    A: std::future::Future + Send,
    B: std::future::Future + Send,
    A::Output: Send,
    B::Output: Send,
{
    let barrier = Barrier::new(2);
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            let runtime = runtime();
            barrier.wait();
            runtime.block_on(a)
        });
        let b = s.spawn(|| {
            let runtime = runtime();
            barrier.wait();
            runtime.block_on(b)
        });
        (a.join().unwrap(), b.join().unwrap())
    })
}

async fn grant_book(dir: &std::path::Path, clock: &ManualClock) -> Grants {
    let store = crate::store::open_file(&dir.join("s.redb")).await.unwrap();
    Grants::open(store, Arc::new(clock.clone()), Key::from_bytes([3; 32]))
        .await
        .unwrap()
}

/// Every writer of a grant other than a revocation.
#[derive(Debug, Clone, Copy)]
enum Writer {
    ExpiringSoonNotice,
    ExpiredNotice,
    Extension,
}

impl Writer {
    const ALL: [Writer; 3] = [
        Writer::ExpiringSoonNotice,
        Writer::ExpiredNotice,
        Writer::Extension,
    ];

    /// Writes the grant; whether the book refuses is not the question here.
    async fn write(self, book: &Grants, grant: &Grant) {
        let _ = match self {
            Writer::ExpiringSoonNotice => book
                .mark_notified(&grant.id, "grant.expiring_soon")
                .await
                .map(|_| ()),
            Writer::ExpiredNotice => book
                .mark_notified(&grant.id, "grant.expired")
                .await
                .map(|_| ()),
            Writer::Extension => book
                .extend(&grant.id, grant.expires_at + time::Duration::minutes(30))
                .await
                .map(|_| ()),
        };
    }
}

/// Every writer of a grant, raced against a revocation of the same grant: the revocation
/// holds in the book, in the live channel transfers follow, and on disk after a restart.
#[tokio::test]
async fn no_writer_racing_a_revocation_undoes_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-11-29 10:00 UTC));
    let book = grant_book(dir.path(), &clock).await;
    let mut revoked = Vec::new();
    for round in 0..ROUNDS {
        let what = Writer::ALL[round % Writer::ALL.len()];
        let grant = book
            .create(
                "alice",
                scope("s3://data/a/"),
                None,
                time::Duration::hours(1),
            )
            .await
            .unwrap();
        let live = book.subscribe(&grant.id).unwrap();
        let ((), result) = race(what.write(&book, &grant), book.revoke(&grant.id, "admin"));
        result.unwrap();
        let now = clock.now();
        assert_eq!(
            book.get(&grant.id).unwrap().state(now),
            GrantState::Revoked,
            "round {round}: the {what:?} undid the revocation in the book"
        );
        assert_eq!(
            live.borrow().state(now),
            GrantState::Revoked,
            "round {round}: the {what:?} undid the revocation for transfers"
        );
        revoked.push(grant.id);
    }
    drop(book);
    let book = grant_book(dir.path(), &clock).await;
    for id in revoked {
        assert_eq!(
            book.get(&id).unwrap().state(clock.now()),
            GrantState::Revoked,
            "{id}: the revocation was lost on disk"
        );
    }
}

/// Every writer, one after the other, against a grant already revoked: each is refused or
/// changes nothing, and the revocation (who and when) stays as it was.
#[tokio::test]
async fn every_writer_leaves_a_revoked_grant_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-11-29 10:00 UTC));
    let book = grant_book(dir.path(), &clock).await;
    let grant = book
        .create(
            "alice",
            scope("s3://data/a/"),
            None,
            time::Duration::hours(1),
        )
        .await
        .unwrap();
    let crate::grant::Revoked::Now(revoked) = book.revoke(&grant.id, "admin").await.unwrap() else {
        panic!("the first revocation revokes");
    };
    clock.advance(time::Duration::minutes(1));
    let later = grant.expires_at + time::Duration::hours(1);
    assert!(
        !book
            .mark_notified(&grant.id, "grant.expiring_soon")
            .await
            .unwrap()
    );
    assert!(
        !book
            .mark_notified(&grant.id, "grant.expired")
            .await
            .unwrap()
    );
    assert!(book.extend(&grant.id, later).await.is_err());
    assert!(
        book.commit(
            crate::grant::Change::Extend {
                id: grant.id.clone(),
                expires_at: later,
            },
            None,
        )
        .await
        .is_err()
    );
    assert!(book.issue_credential(&grant.id).await.is_err());
    assert_eq!(
        book.revoke(&grant.id, "someone-else").await.unwrap(),
        crate::grant::Revoked::Already(revoked.clone())
    );
    assert_eq!(book.get(&grant.id).unwrap(), revoked);
    drop(book);
    assert_eq!(
        grant_book(dir.path(), &clock).await.get(&grant.id).unwrap(),
        revoked
    );
}

/// One rule with one approval on `s3://ops/`, one with two on `s3://finance/`; also the
/// policy of the recorded-before-acknowledged tests.
pub(super) const POLICY: &str = r#"
[[rule]]
name = "one-approval"
groups = ["oncall"]
scopes = ["s3://ops/"]
actions = ["read"]
max_duration = "2h"
approvals = 1
approver_groups = ["leads"]

[[rule]]
name = "two-approvals"
groups = ["oncall"]
scopes = ["s3://finance/"]
actions = ["read"]
max_duration = "2h"
approvals = 2
approver_groups = ["leads"]
"#;

struct Desk {
    workflow: Workflow,
    grants: Arc<Grants>,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

async fn desk() -> Desk {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-11-29 10:00 UTC));
    let shared: SharedClock = Arc::new(clock.clone());
    let store = crate::store::open_file(&dir.path().join("s.redb"))
        .await
        .unwrap();
    let key = Key::from_bytes([4; 32]);
    let grants = Arc::new(
        Grants::open(store.clone(), shared.clone(), key.clone())
            .await
            .unwrap(),
    );
    let users = Arc::new(Users::open(store.clone(), key).await.unwrap());
    let policies = crate::policy::parse_file("p.toml", POLICY).unwrap();
    let workflow = Workflow::open(store, grants.clone(), users, policies, None, shared, false)
        .await
        .unwrap();
    Desk {
        workflow,
        grants,
        clock,
        _dir: dir,
    }
}

fn person(name: &str, group: &str) -> Principal {
    Principal {
        name: name.into(),
        groups: vec![group.into()],
        admin: false,
    }
}

fn ask(uri: &str) -> NewRequest {
    NewRequest {
        scope: scope(uri),
        duration: time::Duration::hours(1),
        starts_at: None,
        justification: None,
        totp: None,
    }
}

/// The request's final state and the grants its requester holds agree: an approved request
/// has exactly its one grant, a denied or timed-out one has none.
fn assert_consistent(d: &Desk, id: &str, round: usize) {
    let request = d.workflow.get(id).unwrap();
    let grants: Vec<String> = d
        .grants
        .list()
        .into_iter()
        .filter(|g| g.principal == request.requester)
        .map(|g| g.id)
        .collect();
    match request.state {
        RequestState::Approved { .. } => assert_eq!(
            grants,
            vec![request.grant_id.clone().unwrap()],
            "round {round}: approved, but its grants are {grants:?}"
        ),
        RequestState::Denied { .. } | RequestState::TimedOut { .. } => assert!(
            grants.is_empty(),
            "round {round}: {} but grants {grants:?} exist",
            request.state.name()
        ),
        RequestState::Pending | RequestState::Withdrawn { .. } => {
            panic!("round {round}: left {}", request.state.name())
        }
    }
}

#[tokio::test]
async fn an_approval_and_a_denial_never_both_succeed() {
    for round in 0..ROUNDS {
        let d = desk().await;
        let r = d
            .workflow
            .file(&person("alice", "oncall"), ask("s3://ops/"))
            .await
            .unwrap();
        let (bob, carol) = (person("bob", "leads"), person("carol", "leads"));
        let (approved, denied) = race(
            d.workflow.approve(&bob, &r.id, None),
            d.workflow.deny(&carol, &r.id, "not now", None),
        );
        assert!(
            approved.is_ok() != denied.is_ok(),
            "round {round}: approve {:?}, deny {:?}",
            approved.map(|r| r.state.name()),
            denied.map(|r| r.state.name())
        );
        assert_consistent(&d, &r.id, round);
    }
}

#[tokio::test]
async fn two_approvals_racing_each_other_both_count() {
    for round in 0..ROUNDS {
        let d = desk().await;
        let r = d
            .workflow
            .file(&person("alice", "oncall"), ask("s3://finance/"))
            .await
            .unwrap();
        let (bob, carol) = (person("bob", "leads"), person("carol", "leads"));
        let (bob, carol) = race(
            d.workflow.approve(&bob, &r.id, None),
            d.workflow.approve(&carol, &r.id, None),
        );
        bob.unwrap();
        carol.unwrap();
        let request = d.workflow.get(&r.id).unwrap();
        assert_eq!(
            (request.approvals.len(), request.state.name()),
            (2, "approved"),
            "round {round}"
        );
        assert_consistent(&d, &r.id, round);
    }
}

#[tokio::test]
async fn an_approval_racing_the_timeout_leaves_one_outcome() {
    for round in 0..ROUNDS {
        let d = desk().await;
        let r = d
            .workflow
            .file(&person("alice", "oncall"), ask("s3://ops/"))
            .await
            .unwrap();
        // The approver acts just before the deadline; the clock reaches it and the timeout
        // runs at the same moment.
        d.clock
            .set(r.pending_until - time::Duration::milliseconds(1));
        let bob = person("bob", "leads");
        let (approved, timed_out) = race(d.workflow.approve(&bob, &r.id, None), async {
            d.clock.set(r.pending_until);
            d.workflow.tick().await
        });
        let timed_out = timed_out.unwrap();
        assert!(
            approved.is_ok() != (timed_out == 1),
            "round {round}: approve {:?}, timed out {timed_out}",
            approved.map(|r| r.state.name()),
        );
        assert_consistent(&d, &r.id, round);
    }
}

/// Two gateways on one store, both timing out requests at the deadline at the same moment:
/// each request times out once, and its notice is in one trail only.
#[tokio::test]
async fn two_gateways_time_a_request_out_once() {
    use crate::audit::verify;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-11-29 10:00 UTC));
    let shared: SharedClock = Arc::new(clock.clone());
    let (store, desks) = two_desks(dir.path(), &shared).await;
    let mut ids = Vec::new();
    for _ in 0..ROUNDS {
        let r = desks[0]
            .file(&person("alice", "oncall"), ask("s3://ops/"))
            .await
            .unwrap();
        ids.push(r.id);
    }
    // The second desk hears of them as the feed would tell it.
    for change in store.changes_since(0, usize::MAX).await.unwrap() {
        if change.table == crate::store::Table::Requests {
            desks[1].apply(&change).unwrap();
        }
    }
    clock.set(desks[0].get(&ids[0]).unwrap().pending_until);
    let (a, b) = race(desks[0].tick(), desks[1].tick());
    let timed_out = |name: &str| {
        verify::records(&dir.path().join(name))
            .unwrap()
            .iter()
            .filter(|r| {
                matches!(
                    &r.body.kind,
                    crate::record::Kind::Lifecycle(l) if l.name() == "request.timed_out"
                )
            })
            .count()
    };
    assert_eq!(
        timed_out("a") + timed_out("b"),
        ROUNDS,
        "ticks timed out {} and {}",
        a.unwrap(),
        b.unwrap()
    );
    for id in &ids {
        let (_, stored) = crate::store::get::<crate::model::request::AccessRequest>(&*store, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.state.name(), "timed_out");
    }
}

/// Two gateways' desks on one store, each with a trail of its own in `dir/<name>`.
async fn two_desks(dir: &std::path::Path, shared: &SharedClock) -> (SharedStore, [Workflow; 2]) {
    let store = crate::store::open_file(&dir.join("s.redb")).await.unwrap();
    let key = Key::from_bytes([4; 32]);
    let open = |name: &'static str| {
        let (store, shared, key) = (store.clone(), shared.clone(), key.clone());
        async move {
            let audit = crate::audit::AuditLog::open(
                &dir.join(name),
                &crate::audit::Settings::default(),
                shared.clone(),
            )
            .unwrap();
            let grants = Arc::new(
                Grants::open(store.clone(), shared.clone(), key.clone())
                    .await
                    .unwrap(),
            );
            let users = Arc::new(Users::open(store.clone(), key).await.unwrap());
            let policies = crate::policy::parse_file("p.toml", POLICY).unwrap();
            Workflow::open(store, grants, users, policies, None, shared, false)
                .await
                .unwrap()
                .with_notifier(crate::notify::Notifier::new(audit))
        }
    };
    let desks = [open("a").await, open("b").await];
    (store, desks)
}

/// Approvers on two gateways at the same moment: a one-approval request becomes exactly one
/// grant, and both approvals of a two-approval request count.
#[tokio::test]
async fn approvals_on_two_gateways_at_once_make_one_grant() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-11-29 10:00 UTC));
    let shared: SharedClock = Arc::new(clock.clone());
    let (store, [a, b]) = two_desks(dir.path(), &shared).await;
    let (bob, carol) = (person("bob", "leads"), person("carol", "leads"));
    for round in 0..ROUNDS {
        let uri = if round % 2 == 0 {
            "s3://ops/"
        } else {
            "s3://finance/"
        };
        let filed = a.file(&person("alice", "oncall"), ask(uri)).await.unwrap();
        let (by_a, by_b) = race(
            a.approve(&bob, &filed.id, None),
            b.approve(&carol, &filed.id, None),
        );
        let (_, stored) =
            crate::store::get::<crate::model::request::AccessRequest>(&*store, &filed.id)
                .await
                .unwrap()
                .unwrap();
        assert_eq!(stored.state.name(), "approved", "round {round}");
        if filed.needs.approvals == 1 {
            assert!(
                by_a.is_ok() != by_b.is_ok(),
                "round {round}: both or neither approved"
            );
            assert_eq!(stored.approvals.len(), 1, "round {round}");
        } else {
            by_a.unwrap();
            by_b.unwrap();
            assert_eq!(stored.approvals.len(), 2, "round {round}");
        }
    }
    // No grant exists that no approved request names: the approval that lost the race made
    // nothing, it was decided again on top of the winner's.
    let named: std::collections::BTreeSet<String> =
        crate::store::load::<crate::model::request::AccessRequest>(&*store)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|(_, r)| r.grant_id)
            .collect();
    let grants: std::collections::BTreeSet<String> = crate::store::load::<Grant>(&*store)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, g)| g.id)
        .collect();
    assert_eq!(grants, named);
}
