//! The share book: what a link may be made for, how long it lives, its token, and its
//! download count under concurrency.

use std::sync::Arc;

use time::OffsetDateTime;
use time::macros::datetime;

use super::*;
use crate::clock::ManualClock;
use crate::model::ShareState;
use crate::model::example_grant;

const T0: OffsetDateTime = datetime!(2026-11-29 10:00 UTC);

async fn book(dir: &std::path::Path, clock: &ManualClock) -> Shares {
    let store = crate::store::open_file(&dir.join("s.redb")).await.unwrap();
    Shares::open(store, Arc::new(clock.clone()), &Key::from_bytes([7; 32]))
        .await
        .unwrap()
}

/// Alice's read grant on `s3://data/a/`, active for two hours from T0.
fn grant() -> Grant {
    example_grant("g-1", T0, T0 + time::Duration::hours(2))
}

fn ask(key: &str) -> NewShare {
    NewShare {
        bucket: "data".into(),
        key: key.into(),
        ..NewShare::default()
    }
}

#[tokio::test]
async fn a_link_lives_fifteen_minutes_unless_asked_and_never_past_its_grant() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let shares = book(dir.path(), &clock).await;
    let (share, _) = shares.create(&grant(), ask("a/report.csv")).await.unwrap();
    assert_eq!(share.expires_at, T0 + DEFAULT_TTL);

    // The grant ends in 10 minutes: a 30-minute link ends with it.
    clock.advance(time::Duration::minutes(110));
    let link = NewShare {
        ttl: Some(time::Duration::minutes(30)),
        ..ask("a/report.csv")
    };
    let (share, _) = shares.create(&grant(), link).await.unwrap();
    assert_eq!(share.expires_at, T0 + time::Duration::hours(2));
}

#[tokio::test]
async fn the_rule_caps_the_life_of_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let shares = book(dir.path(), &ManualClock::new(T0)).await;
    let two_hours = NewShare {
        ttl: Some(time::Duration::hours(2)),
        ..ask("a/x")
    };
    let err = shares
        .create(&grant(), two_hours.clone())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "links under grant g-1 last at most 1h (asked for 2h); ask for a shorter --ttl"
    );

    let mut generous = grant();
    generous.limits.share_ttl_seconds = Some(3 * 3600);
    assert!(shares.create(&generous, two_hours).await.is_ok());

    let mut strict = grant();
    strict.limits.share_ttl_seconds = Some(300);
    let (share, _) = shares.create(&strict, ask("a/x")).await.unwrap();
    assert_eq!(share.expires_at, T0 + time::Duration::minutes(5));
}

#[tokio::test]
async fn links_need_an_active_grant_that_reads_one_object() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let shares = book(dir.path(), &clock).await;
    let outside = shares.create(&grant(), ask("b/x")).await.unwrap_err();
    assert_eq!(
        outside.to_string(),
        "grant g-1 (s3://data/a/ read) does not let you read s3://data/b/x"
    );
    let folder = shares.create(&grant(), ask("a/sub/")).await.unwrap_err();
    assert!(folder.to_string().contains("is not an object"), "{folder}");
    let dots = shares.create(&grant(), ask("a/../b/x")).await.unwrap_err();
    assert!(matches!(dots, ShareError::Invalid(_)), "{dots}");

    let mut write_only = grant();
    write_only.scope.actions = vec![Action::Write];
    assert!(matches!(
        shares.create(&write_only, ask("a/x")).await,
        Err(ShareError::Forbidden(_))
    ));

    clock.advance(time::Duration::hours(3));
    let ended = shares.create(&grant(), ask("a/x")).await.unwrap_err();
    assert_eq!(
        ended.to_string(),
        "grant g-1 is expired: links can only be made under an active grant"
    );
}

#[tokio::test]
async fn tampered_and_truncated_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shares = book(dir.path(), &ManualClock::new(T0)).await;
    let (share, token) = shares.create(&grant(), ask("a/x")).await.unwrap();
    assert_eq!(shares.verify_token(&token), Ok(share.id.clone()));

    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        flipped.as_str(),
        &token[..token.len() - 1],
        &share.id,
        "",
        "s-.x",
        &token.replace("s-", "s-0"),
    ] {
        assert_eq!(shares.verify_token(bad), Err(BadToken), "{bad:?}");
    }
    // Another gateway's key signs differently.
    let other = Shares::open(
        crate::store::open_file(&dir.path().join("other.redb"))
            .await
            .unwrap(),
        Arc::new(ManualClock::new(T0)),
        &Key::from_bytes([8; 32]),
    )
    .await
    .unwrap();
    assert_eq!(other.verify_token(&token), Err(BadToken));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_one_download_link_lets_exactly_one_of_many_parallel_fetches_through() {
    let dir = tempfile::tempdir().unwrap();
    let shares = Arc::new(book(dir.path(), &ManualClock::new(T0)).await);
    let link = NewShare {
        max_downloads: Some(1),
        ..ask("a/x")
    };
    let (share, _) = shares.create(&grant(), link).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let fetches: Vec<_> = (0..16)
        .map(|_| {
            let (shares, barrier, id) = (shares.clone(), barrier.clone(), share.id.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                shares.admit(&id, true).await.is_ok()
            })
        })
        .collect();
    let mut admitted = 0;
    for fetch in fetches {
        admitted += usize::from(fetch.await.unwrap());
    }
    assert_eq!(admitted, 1);
    match shares.admit(&share.id, true).await {
        Err(Refused::Ended(_, reason)) => assert_eq!(
            reason,
            format!(
                "share link {} has been downloaded its 1 allowed time(s)",
                share.id
            )
        ),
        other => panic!("expected a refusal, got {:?}", other.map(|a| a.share)),
    }
    // HEAD does not count, but a used-up link answers nothing at all.
    assert!(shares.admit(&share.id, false).await.is_err());
    // A download the backend never delivered is given back.
    shares.give_back(&share.id).await;
    assert!(shares.admit(&share.id, true).await.is_ok());
}

#[tokio::test]
async fn counts_revocations_and_expiry_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let (counted, revoked) = {
        let shares = book(dir.path(), &clock).await;
        let limited = NewShare {
            max_downloads: Some(3),
            ..ask("a/x")
        };
        let (counted, _) = shares.create(&grant(), limited).await.unwrap();
        shares.admit(&counted.id, true).await.unwrap();
        let (revoked, _) = shares.create(&grant(), ask("a/y")).await.unwrap();
        shares.revoke(&revoked.id, "bob").await.unwrap();
        (counted.id, revoked.id)
    };
    let shares = book(dir.path(), &clock).await;
    assert_eq!(shares.get(&counted).unwrap().downloads, 1);
    let revoked = shares.get(&revoked).unwrap();
    assert_eq!(revoked.state(T0), ShareState::Revoked);
    assert_eq!(revoked.revoked_by.as_deref(), Some("bob"));
    // Revoking again changes nothing.
    assert_eq!(shares.revoke(&revoked.id, "carol").await.unwrap(), revoked);

    clock.advance(DEFAULT_TTL);
    assert!(matches!(
        shares.admit(&counted, true).await,
        Err(Refused::Ended(_, reason)) if reason.contains("expired at 2026-11-29T10:15:00Z")
    ));
}

#[tokio::test]
async fn a_download_in_progress_ends_when_its_link_is_revoked_or_expires() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let shares = book(dir.path(), &clock).await;
    let (share, _) = shares.create(&grant(), ask("a/x")).await.unwrap();
    let admitted = shares.admit(&share.id, true).await.unwrap();
    let ended = tokio::spawn(share_end(admitted.live, Arc::new(clock.clone())));
    tokio::task::yield_now().await;
    assert!(!ended.is_finished());
    shares.revoke(&share.id, "alice").await.unwrap();
    let stop = ended.await.unwrap();
    assert_eq!(
        stop.to_string(),
        format!("share link {} was revoked during the download", share.id)
    );

    let (share, _) = shares.create(&grant(), ask("a/x")).await.unwrap();
    let admitted = shares.admit(&share.id, true).await.unwrap();
    let ended = tokio::spawn(share_end(admitted.live, Arc::new(clock.clone())));
    clock.advance(DEFAULT_TTL);
    let stop = ended.await.unwrap();
    assert!(stop.to_string().contains("expired during the download"));
}
