//! The grant book against a manual clock and a real store.

use super::*;
use crate::clock::ManualClock;
use crate::model::Action;
use std::sync::Arc;
use time::macros::datetime;

async fn book(dir: &std::path::Path, clock: &ManualClock) -> Grants {
    let store = crate::store::open_file(&dir.join("s.redb")).await.unwrap();
    Grants::open(store, Arc::new(clock.clone()), Key::from_bytes([1; 32]))
        .await
        .unwrap()
}

fn scope() -> Scope {
    Scope::parse("s3://data/a/", vec![Action::Read]).unwrap()
}

#[tokio::test]
async fn grants_and_credentials_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-01-01 10:00 UTC));
    let (grant, cred) = {
        let book = book(dir.path(), &clock).await;
        let grant = book
            .create("alice", scope(), None, time::Duration::minutes(30))
            .await
            .unwrap();
        let cred = book.issue_credential(&grant.id).await.unwrap();
        (grant, cred)
    };
    let book = book(dir.path(), &clock).await;
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

#[tokio::test]
async fn revocation_reaches_existing_subscribers_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-01-01 10:00 UTC));
    let book = book(dir.path(), &clock).await;
    let grant = book
        .create("alice", scope(), None, time::Duration::minutes(30))
        .await
        .unwrap();
    let cred = book.issue_credential(&grant.id).await.unwrap();
    let bound = book
        .bind(&cred.access_key_id, Some(cred.session_token.expose()))
        .unwrap();

    clock.advance(time::Duration::minutes(5));
    let Revoked::Now(revoked) = book.revoke(&grant.id, "admin").await.unwrap() else {
        panic!("an active grant is revoked by the first call");
    };
    assert_eq!(
        bound.grant.borrow().revoked_at,
        Some(datetime!(2026-01-01 10:05 UTC))
    );

    clock.advance(time::Duration::minutes(5));
    assert_eq!(
        book.revoke(&grant.id, "someone-else").await.unwrap(),
        Revoked::Already(revoked)
    );
    assert!(matches!(
        book.issue_credential(&grant.id).await,
        Err(GrantError::Ended { .. })
    ));
}

#[tokio::test]
async fn credentials_need_their_own_session_token() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-01-01 10:00 UTC));
    let book = book(dir.path(), &clock).await;
    let g1 = book
        .create("alice", scope(), None, time::Duration::minutes(30))
        .await
        .unwrap();
    let g2 = book
        .create("bob", scope(), None, time::Duration::minutes(30))
        .await
        .unwrap();
    let c1 = book.issue_credential(&g1.id).await.unwrap();
    let c2 = book.issue_credential(&g2.id).await.unwrap();
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

#[tokio::test]
async fn extension_moves_the_deadline_for_existing_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-01-01 10:00 UTC));
    let book = book(dir.path(), &clock).await;
    let grant = book
        .create("alice", scope(), None, time::Duration::minutes(30))
        .await
        .unwrap();
    let cred = book.issue_credential(&grant.id).await.unwrap();
    let bound = book
        .bind(&cred.access_key_id, Some(cred.session_token.expose()))
        .unwrap();
    book.extend(&grant.id, datetime!(2026-01-01 11:00 UTC))
        .await
        .unwrap();
    assert_eq!(
        bound.grant.borrow().expires_at,
        datetime!(2026-01-01 11:00 UTC)
    );
    assert!(
        book.extend(&grant.id, datetime!(2026-02-01 11:00 UTC))
            .await
            .is_err()
    );
    book.revoke(&grant.id, "admin").await.unwrap();
    assert!(matches!(
        book.extend(&grant.id, datetime!(2026-01-01 12:00 UTC))
            .await,
        Err(GrantError::Ended { .. })
    ));
}

#[tokio::test]
async fn bad_durations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-01-01 10:00 UTC));
    let book = book(dir.path(), &clock).await;
    let err = book
        .create("alice", scope(), None, time::Duration::days(30))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("duration"), "{err}");
    assert!(
        book.create(" ", scope(), None, time::Duration::minutes(1))
            .await
            .is_err()
    );
    assert!(book.list().is_empty());
}
