//! The grant book against a manual clock and a real store.

use super::*;
use crate::clock::ManualClock;
use crate::model::Action;
use std::sync::Arc;
use time::macros::datetime;

fn book(dir: &std::path::Path, clock: &ManualClock) -> Grants {
    let store = Store::open(&dir.join("s.redb")).unwrap();
    Grants::open(store, Arc::new(clock.clone()), Key::from_bytes([1; 32])).unwrap()
}

fn scope() -> Scope {
    Scope::parse("s3://data/a/", vec![Action::Read]).unwrap()
}

#[test]
fn grants_and_credentials_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-01-01 10:00 UTC));
    let (grant, cred) = {
        let book = book(dir.path(), &clock);
        let grant = book
            .create("alice", scope(), None, time::Duration::minutes(30))
            .unwrap();
        let cred = book.issue_credential(&grant.id).unwrap();
        (grant, cred)
    };
    let book = book(dir.path(), &clock);
    assert_eq!(book.get(&grant.id).unwrap(), grant);
    let bound = book
        .bind(&cred.access_key_id, Some(cred.session_token.expose()))
        .unwrap();
    assert_eq!(bound.grant.borrow().id, grant.id);
    assert_eq!(
        book.secret_for(&cred.access_key_id),
        Some(cred.secret_access_key)
    );
}

#[test]
fn revocation_reaches_existing_subscribers_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-01-01 10:00 UTC));
    let book = book(dir.path(), &clock);
    let grant = book
        .create("alice", scope(), None, time::Duration::minutes(30))
        .unwrap();
    let cred = book.issue_credential(&grant.id).unwrap();
    let bound = book
        .bind(&cred.access_key_id, Some(cred.session_token.expose()))
        .unwrap();

    clock.advance(time::Duration::minutes(5));
    let Revoked::Now(revoked) = book.revoke(&grant.id, "admin").unwrap() else {
        panic!("an active grant is revoked by the first call");
    };
    assert_eq!(
        bound.grant.borrow().revoked_at,
        Some(datetime!(2026-01-01 10:05 UTC))
    );

    clock.advance(time::Duration::minutes(5));
    assert_eq!(
        book.revoke(&grant.id, "someone-else").unwrap(),
        Revoked::Already(revoked)
    );
    assert!(matches!(
        book.issue_credential(&grant.id),
        Err(GrantError::Ended { .. })
    ));
}

#[test]
fn credentials_need_their_own_session_token() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-01-01 10:00 UTC));
    let book = book(dir.path(), &clock);
    let g1 = book
        .create("alice", scope(), None, time::Duration::minutes(30))
        .unwrap();
    let g2 = book
        .create("bob", scope(), None, time::Duration::minutes(30))
        .unwrap();
    let c1 = book.issue_credential(&g1.id).unwrap();
    let c2 = book.issue_credential(&g2.id).unwrap();
    assert_eq!(
        book.bind(&c1.access_key_id, None).err(),
        Some(BindError::MissingToken)
    );
    assert_eq!(
        book.bind(&c1.access_key_id, Some(c2.session_token.expose()))
            .err(),
        Some(BindError::BadToken)
    );
    assert_eq!(
        book.bind("SESANOPE", Some("x")).err(),
        Some(BindError::UnknownKey)
    );
}

#[test]
fn extension_moves_the_deadline_for_existing_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-01-01 10:00 UTC));
    let book = book(dir.path(), &clock);
    let grant = book
        .create("alice", scope(), None, time::Duration::minutes(30))
        .unwrap();
    let cred = book.issue_credential(&grant.id).unwrap();
    let bound = book
        .bind(&cred.access_key_id, Some(cred.session_token.expose()))
        .unwrap();
    book.extend(&grant.id, datetime!(2026-01-01 11:00 UTC))
        .unwrap();
    assert_eq!(
        bound.grant.borrow().expires_at,
        datetime!(2026-01-01 11:00 UTC)
    );
    assert!(
        book.extend(&grant.id, datetime!(2026-02-01 11:00 UTC))
            .is_err()
    );
    book.revoke(&grant.id, "admin").unwrap();
    assert!(matches!(
        book.extend(&grant.id, datetime!(2026-01-01 12:00 UTC)),
        Err(GrantError::Ended { .. })
    ));
}

#[test]
fn bad_durations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-01-01 10:00 UTC));
    let book = book(dir.path(), &clock);
    let err = book
        .create("alice", scope(), None, time::Duration::days(30))
        .unwrap_err();
    assert!(err.to_string().contains("duration"), "{err}");
    assert!(
        book.create(" ", scope(), None, time::Duration::minutes(1))
            .is_err()
    );
    assert!(book.list().is_empty());
}
