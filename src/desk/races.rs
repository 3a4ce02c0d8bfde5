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
use crate::store::Store;

const ROUNDS: usize = 40;

fn scope(uri: &str) -> Scope {
    Scope::parse(uri, vec![Action::Read]).unwrap()
}

/// Runs `a` and `b` on two threads released by one barrier; returns both results.
fn race<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            barrier.wait();
            a()
        });
        let b = s.spawn(|| {
            barrier.wait();
            b()
        });
        (a.join().unwrap(), b.join().unwrap())
    })
}

fn grant_book(dir: &std::path::Path, clock: &ManualClock) -> Grants {
    let store = Store::open(&dir.join("s.redb")).unwrap();
    Grants::open(store, Arc::new(clock.clone()), Key::from_bytes([3; 32])).unwrap()
}

/// A named writer of a grant.
type Writer<'a> = (&'a str, &'a (dyn Fn(&Grants, &Grant) + Sync));

/// Every writer of a grant, raced against a revocation of the same grant: the revocation
/// holds in the book, in the live channel transfers follow, and on disk after a restart.
#[test]
fn no_writer_racing_a_revocation_undoes_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-11-29 10:00 UTC));
    let book = grant_book(dir.path(), &clock);
    let writers: [Writer; 3] = [
        ("expiring-soon notice", &|b, g| {
            let _ = b.mark_notified(&g.id, "grant.expiring_soon");
        }),
        ("expired notice", &|b, g| {
            let _ = b.mark_notified(&g.id, "grant.expired");
        }),
        ("extension", &|b, g| {
            let _ = b.extend(&g.id, g.expires_at + time::Duration::minutes(30));
        }),
    ];
    let mut revoked = Vec::new();
    for round in 0..ROUNDS {
        let (what, writer) = writers[round % writers.len()];
        let grant = book
            .create(
                "alice",
                scope("s3://data/a/"),
                None,
                time::Duration::hours(1),
            )
            .unwrap();
        let live = book.subscribe(&grant.id).unwrap();
        let ((), result) = race(|| writer(&book, &grant), || book.revoke(&grant.id, "admin"));
        result.unwrap();
        let now = clock.now();
        assert_eq!(
            book.get(&grant.id).unwrap().state(now),
            GrantState::Revoked,
            "round {round}: the {what} undid the revocation in the book"
        );
        assert_eq!(
            live.borrow().state(now),
            GrantState::Revoked,
            "round {round}: the {what} undid the revocation for transfers"
        );
        revoked.push(grant.id);
    }
    drop(book);
    let book = grant_book(dir.path(), &clock);
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
#[test]
fn every_writer_leaves_a_revoked_grant_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-11-29 10:00 UTC));
    let book = grant_book(dir.path(), &clock);
    let grant = book
        .create(
            "alice",
            scope("s3://data/a/"),
            None,
            time::Duration::hours(1),
        )
        .unwrap();
    let crate::grant::Revoked::Now(revoked) = book.revoke(&grant.id, "admin").unwrap() else {
        panic!("the first revocation revokes");
    };
    clock.advance(time::Duration::minutes(1));
    let later = grant.expires_at + time::Duration::hours(1);
    assert!(
        !book
            .mark_notified(&grant.id, "grant.expiring_soon")
            .unwrap()
    );
    assert!(!book.mark_notified(&grant.id, "grant.expired").unwrap());
    assert!(book.extend(&grant.id, later).is_err());
    assert!(
        book.commit(
            crate::grant::Change::Extend {
                id: grant.id.clone(),
                expires_at: later,
            },
            None,
        )
        .is_err()
    );
    assert!(book.issue_credential(&grant.id).is_err());
    assert_eq!(
        book.revoke(&grant.id, "someone-else").unwrap(),
        crate::grant::Revoked::Already(revoked.clone())
    );
    assert_eq!(book.get(&grant.id).unwrap(), revoked);
    drop(book);
    assert_eq!(
        grant_book(dir.path(), &clock).get(&grant.id).unwrap(),
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

fn desk() -> Desk {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-11-29 10:00 UTC));
    let shared: SharedClock = Arc::new(clock.clone());
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let key = Key::from_bytes([4; 32]);
    let grants = Arc::new(Grants::open(store.clone(), shared.clone(), key.clone()).unwrap());
    let users = Arc::new(Users::open(store.clone(), key).unwrap());
    let policies = crate::policy::parse_file("p.toml", POLICY).unwrap();
    let workflow =
        Workflow::open(store, grants.clone(), users, policies, None, shared, false).unwrap();
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

#[test]
fn an_approval_and_a_denial_never_both_succeed() {
    for round in 0..ROUNDS {
        let d = desk();
        let r = d
            .workflow
            .file(&person("alice", "oncall"), ask("s3://ops/"))
            .unwrap();
        let (approved, denied) = race(
            || d.workflow.approve(&person("bob", "leads"), &r.id, None),
            || {
                d.workflow
                    .deny(&person("carol", "leads"), &r.id, "not now", None)
            },
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

#[test]
fn two_approvals_racing_each_other_both_count() {
    for round in 0..ROUNDS {
        let d = desk();
        let r = d
            .workflow
            .file(&person("alice", "oncall"), ask("s3://finance/"))
            .unwrap();
        let (bob, carol) = race(
            || d.workflow.approve(&person("bob", "leads"), &r.id, None),
            || d.workflow.approve(&person("carol", "leads"), &r.id, None),
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

#[test]
fn an_approval_racing_the_timeout_leaves_one_outcome() {
    for round in 0..ROUNDS {
        let d = desk();
        let r = d
            .workflow
            .file(&person("alice", "oncall"), ask("s3://ops/"))
            .unwrap();
        // The approver acts just before the deadline; the clock reaches it and the timeout
        // runs at the same moment.
        d.clock
            .set(r.pending_until - time::Duration::milliseconds(1));
        let (approved, timed_out) = race(
            || d.workflow.approve(&person("bob", "leads"), &r.id, None),
            || {
                d.clock.set(r.pending_until);
                d.workflow.tick()
            },
        );
        let timed_out = timed_out.unwrap();
        assert!(
            approved.is_ok() != (timed_out == 1),
            "round {round}: approve {:?}, timed out {timed_out}",
            approved.map(|r| r.state.name()),
        );
        assert_consistent(&d, &r.id, round);
    }
}
