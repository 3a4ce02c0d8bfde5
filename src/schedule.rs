//! Background tasks whose deadlines are data: pending requests time out at the deadline
//! stored with them (re-armed from the store at start, so one that passed while the gateway
//! was down fires at once), and the policy folder is watched for changes.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::desk::Workflow;

/// Times out pending requests at their deadlines; deadlines are data, so a restart re-arms
/// them from the store and a deadline passed while down fires at once.
pub async fn run_timeouts(
    workflow: Arc<Workflow>,
    clock: SharedClock,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        if let Err(e) = workflow.tick().await {
            tracing::error!(error = %e, "timing out requests failed; retrying");
        }
        let next = workflow.next_deadline();
        let sleep = async {
            match next {
                Some(deadline) => clock.sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = wake.notified() => {}
        }
    }
}

/// Moves records owed to the trail (revocations made while it could not be written, or
/// just before a crash) into it: once at start, then every second until none is left.
pub async fn run_owed_records(workflow: Arc<Workflow>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut failing = false;
    loop {
        every.tick().await;
        match workflow.flush_owed_records().await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(records = n, "owed audit records written to the trail");
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::error!(error = %e, "owed audit records wait for the trail");
                }
                failing = true;
            }
        }
    }
}

/// Reloads the policies whenever a file in their folder changes (checked every two seconds).
pub async fn watch_policies(workflow: Arc<Workflow>) {
    let Some(dir) = workflow.policy_dir().map(std::path::Path::to_owned) else {
        return;
    };
    let mut seen = fingerprint(&dir);
    let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        every.tick().await;
        let now = fingerprint(&dir);
        if now != seen {
            seen = now;
            let _ = workflow.reload_policies().await;
        }
    }
}

/// Paths, sizes and modification times of the policy files: what a change would move.
fn fingerprint(
    dir: &std::path::Path,
) -> Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)> {
    fn walk(
        dir: &std::path::Path,
        out: &mut Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)>,
    ) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if let Ok(meta) = entry.metadata() {
                out.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// How long before a grant's end its holder hears that it is about to expire.
pub const EXPIRING_SOON: time::Duration = time::Duration::minutes(10);

/// Sends `grant.expiring_soon` and `grant.expired` once per grant, at their deadlines. Sent
/// notices are recorded on the grant, so a restart neither repeats nor forgets them.
pub async fn run_grant_notices(
    grants: Arc<crate::grant::Grants>,
    notifier: crate::notify::Notifier,
    clock: SharedClock,
) {
    let changed = grants.changed();
    loop {
        let next = send_due_notices(&grants, &notifier, clock.now());
        let sleep = async {
            match next.await {
                Some(deadline) => clock.sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = changed.notified() => {}
        }
    }
}

/// Sends what is due at `now`; returns when the next notice falls due.
async fn send_due_notices(
    grants: &crate::grant::Grants,
    notifier: &crate::notify::Notifier,
    now: time::OffsetDateTime,
) -> Option<time::OffsetDateTime> {
    use crate::notify::{Kind, Notice};
    let mut next: Option<time::OffsetDateTime> = None;
    for grant in grants.list() {
        if grant.revoked_at.is_some() {
            continue;
        }
        // A grant active from its creation started then (its approval says so); one approved
        // for a later window gets its own notice when the window opens.
        let started =
            (grant.starts_at > grant.created_at).then_some((Kind::GrantStarted, grant.starts_at));
        let due = [
            (Kind::GrantExpiringSoon, grant.expires_at - EXPIRING_SOON),
            (Kind::GrantExpired, grant.expires_at),
        ];
        for (kind, at) in started.into_iter().chain(due) {
            if grant.notices.iter().any(|n| n == kind.name()) {
                continue;
            }
            if now < at {
                next = Some(next.map_or(at, |n| n.min(at)));
                continue;
            }
            // An expiry notice makes the "soon" and "started" ones moot.
            if matches!(kind, Kind::GrantExpiringSoon | Kind::GrantStarted)
                && now >= grant.expires_at
            {
                let _ = grants.mark_notified(&grant.id, kind.name()).await;
                continue;
            }
            let summary = match kind {
                Kind::GrantExpired => format!(
                    "grant {} of {} on {} expired",
                    grant.id,
                    grant.principal,
                    grant.scope.uri()
                ),
                Kind::GrantStarted => format!(
                    "grant {} of {} on {} started; it ends at {}",
                    grant.id,
                    grant.principal,
                    grant.scope.uri(),
                    crate::duration::rfc3339(grant.expires_at)
                ),
                _ => format!(
                    "grant {} of {} on {} expires at {}",
                    grant.id,
                    grant.principal,
                    grant.scope.uri(),
                    crate::duration::rfc3339(grant.expires_at)
                ),
            };
            // Marked on the grant as stored, in one serialised update: a grant revoked since
            // `list` was read is not told it expires soon.
            match grants.mark_notified(&grant.id, kind.name()).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(grant = %grant.id, error = %e, "cannot record a notice; it will be sent again");
                }
            }
            notifier.send(&Notice {
                event: kind,
                at: now,
                principal: grant.principal.clone(),
                scope: grant.scope.uri(),
                request_id: None,
                grant_id: Some(grant.id.clone()),
                summary,
            });
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::grant::Grants;
    use crate::model::{Action, Scope};
    use crate::secret::Key;
    use time::macros::datetime;

    /// A notifier writing to a trail in `dir`, the notices as that trail commits them, and
    /// the trail.
    fn trail(
        dir: &std::path::Path,
        clock: &SharedClock,
    ) -> (
        crate::notify::Notifier,
        crate::notify::Notices,
        crate::audit::AuditLog,
    ) {
        let audit = crate::audit::AuditLog::open(
            &dir.join("audit"),
            &crate::audit::Settings::default(),
            clock.clone(),
        )
        .unwrap();
        let notices = crate::notify::Notices::new(&audit);
        (crate::notify::Notifier::new(audit.clone()), notices, audit)
    }

    /// A grant book on a manual clock at 2026-11-29 10:00, and a scope to grant.
    async fn book(dir: &std::path::Path) -> (Arc<Grants>, ManualClock, SharedClock, Scope) {
        let clock = ManualClock::new(datetime!(2026-11-29 10:00 UTC));
        let shared: SharedClock = Arc::new(clock.clone());
        let store = crate::store::open_file(&dir.join("s.redb")).await.unwrap();
        let grants = Arc::new(
            Grants::open(store, shared.clone(), Key::from_bytes([9; 32]))
                .await
                .unwrap(),
        );
        let scope = Scope::parse("s3://data/a/", vec![Action::Read]).unwrap();
        (grants, clock, shared, scope)
    }

    #[tokio::test]
    async fn deadline_notices_are_sent_once_each_at_their_time() {
        let dir = tempfile::tempdir().unwrap();
        let (grants, clock, shared, scope) = book(dir.path()).await;
        let grant = grants
            .create("alice", scope, None, time::Duration::minutes(30))
            .await
            .unwrap();
        let (notifier, mut rx, audit) = trail(dir.path(), &shared);
        let task = tokio::spawn(run_grant_notices(grants.clone(), notifier, shared));

        // 19 minutes in: nothing yet; 20 minutes in: "expiring soon".
        clock.advance(time::Duration::minutes(19));
        tokio::task::yield_now().await;
        audit.flushed().await.unwrap();
        assert!(rx.try_recv().is_none());
        clock.advance(time::Duration::minutes(1));
        let soon = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (soon.event, soon.grant_id.as_deref()),
            (
                crate::notify::Kind::GrantExpiringSoon,
                Some(grant.id.as_str())
            )
        );
        // At the end: "expired"; and never again after that.
        clock.advance(time::Duration::minutes(10));
        let expired = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(expired.event, crate::notify::Kind::GrantExpired);
        clock.advance(time::Duration::hours(1));
        tokio::task::yield_now().await;
        audit.flushed().await.unwrap();
        assert!(rx.try_recv().is_none());
        assert_eq!(
            grants.get(&grant.id).unwrap().notices,
            ["grant.expiring_soon", "grant.expired"]
        );
        task.abort();
    }

    /// Issue 16: a revocation landing as the expiring-soon notice falls due was undone by the
    /// notice. Each round the manual clock reaches the deadline while a revocation runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revocation_at_the_notice_deadline_holds_and_silences_the_notice() {
        let dir = tempfile::tempdir().unwrap();
        let (grants, clock, shared, scope) = book(dir.path()).await;
        let (notifier, mut rx, audit) = trail(dir.path(), &shared);
        let task = tokio::spawn(run_grant_notices(grants.clone(), notifier, shared));
        for round in 0..30 {
            let grant = grants
                .create("alice", scope.clone(), None, time::Duration::minutes(30))
                .await
                .unwrap();
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let deadline = grant.expires_at - EXPIRING_SOON;
            let tick = std::thread::spawn({
                let (clock, barrier) = (clock.clone(), barrier.clone());
                move || {
                    barrier.wait();
                    clock.set(deadline);
                }
            });
            barrier.wait();
            grants.revoke(&grant.id, "admin").await.unwrap();
            tick.join().unwrap();
            // Give the notice task (on the other worker) its turn at the deadline, then look;
            // the checks hold whenever it runs.
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            audit.flushed().await.unwrap();
            assert!(
                grants.get(&grant.id).unwrap().revoked_at.is_some(),
                "round {round}: the notice undid the revocation"
            );
            while let Some(notice) = rx.try_recv() {
                // A notice may precede the revocation, never follow it.
                assert!(
                    notice.grant_id.as_deref() == Some(grant.id.as_str()),
                    "round {round}: {notice:?}"
                );
            }
            assert!(
                grants
                    .mark_notified(&grant.id, crate::notify::Kind::GrantExpiringSoon.name())
                    .await
                    .is_ok_and(|marked| !marked),
                "round {round}: a revoked grant can still be marked"
            );
            clock.set(grant.expires_at + time::Duration::minutes(1));
        }
        task.abort();
    }

    #[tokio::test]
    async fn a_grant_for_a_later_window_announces_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let (grants, clock, shared, scope) = book(dir.path()).await;
        let later = datetime!(2026-11-29 14:00 UTC);
        let grant = grants
            .create("alice", scope, Some(later), time::Duration::hours(1))
            .await
            .unwrap();
        let (notifier, mut rx, audit) = trail(dir.path(), &shared);
        let task = tokio::spawn(run_grant_notices(grants.clone(), notifier, shared));
        tokio::task::yield_now().await;
        audit.flushed().await.unwrap();
        assert!(rx.try_recv().is_none());
        clock.set(later);
        let started = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(started.event, crate::notify::Kind::GrantStarted);
        assert!(started.summary.contains(&grant.id), "{}", started.summary);
        task.abort();
    }
}
