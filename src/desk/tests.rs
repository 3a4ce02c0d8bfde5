//! The request desk against a manual clock and a real store.

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::model::{Action, GrantState};
use crate::secret::Key;
use time::macros::datetime;

const POLICY: &str = r#"
[[rule]]
name = "payroll"
groups = ["data-eng"]
scopes = ["s3://hr-data/payroll/"]
actions = ["read", "list"]
max_duration = "2h"
approvals = 2
approver_groups = ["hr-approvers"]
approver_mfa = true
justification = "^INC-[0-9]+"

[[rule]]
name = "analytics"
groups = ["analysts"]
scopes = ["s3://analytics/"]
actions = ["read"]
max_duration = "8h"
limits = { bytes = 1000000, objects = 50, share_ttl = "30m" }
"#;

struct Desk {
    workflow: Workflow,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

async fn desk() -> Desk {
    desk_with(false).await
}

async fn desk_with(mfa_everywhere: bool) -> Desk {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-11-29 10:00 UTC));
    let shared: SharedClock = Arc::new(clock.clone());
    let store = crate::store::open_file(&dir.path().join("s.redb"))
        .await
        .unwrap();
    let key = Key::from_bytes([5; 32]);
    let grants = Arc::new(
        Grants::open(store.clone(), shared.clone(), key.clone())
            .await
            .unwrap(),
    );
    let users = Arc::new(Users::open(store.clone(), key).await.unwrap());
    let policies = crate::policy::parse_file("p.toml", POLICY).unwrap();
    let workflow = Workflow::open(store, grants, users, policies, None, shared, mfa_everywhere)
        .await
        .unwrap();
    Desk {
        workflow,
        clock,
        _dir: dir,
    }
}

fn principal(name: &str, group: &str) -> Principal {
    Principal {
        name: name.into(),
        groups: vec![group.into()],
        admin: false,
    }
}

fn payroll(why: &str) -> NewRequest {
    NewRequest {
        scope: Scope::parse("s3://hr-data/payroll/", vec![Action::Read]).unwrap(),
        duration: time::Duration::hours(1),
        starts_at: None,
        justification: Some(why.into()),
        totp: None,
    }
}

#[tokio::test]
async fn two_approvers_with_mfa_turn_a_request_into_an_active_grant() {
    let d = desk().await;
    let users = d.workflow.users();
    let now = d.clock.now();
    for (name, group) in [
        ("alice", "data-eng"),
        ("bob", "hr-approvers"),
        ("carol", "hr-approvers"),
    ] {
        users.add(name, &[group.into()], now).await.unwrap();
    }
    users.enroll_totp("bob").await.unwrap();
    users.enroll_totp("carol").await.unwrap();
    let alice = principal("alice", "data-eng");
    let r = d.workflow.file(&alice, payroll("INC-4411")).await.unwrap();
    assert_eq!(r.state, RequestState::Pending);

    let code = |who: &str| users.current_code_for_tests(who, d.clock.now()).unwrap();
    let bob = principal("bob", "hr-approvers");
    // without a code: refused, and nothing recorded
    assert!(matches!(
        d.workflow.approve(&bob, &r.id, None).await,
        Err(WorkflowError::Request(RequestError::MfaRequired { .. }))
    ));
    assert!(d.workflow.get(&r.id).unwrap().approvals.is_empty());
    d.workflow
        .approve(&bob, &r.id, Some(&code("bob")))
        .await
        .unwrap();
    let approved = d
        .workflow
        .approve(
            &principal("carol", "hr-approvers"),
            &r.id,
            Some(&code("carol")),
        )
        .await
        .unwrap();
    let grant = d
        .workflow
        .grants
        .get(approved.grant_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(
        (grant.principal.as_str(), grant.state(d.clock.now())),
        ("alice", GrantState::Active)
    );
}

#[tokio::test]
async fn refused_requests_leave_nothing_behind() {
    let d = desk().await;
    let alice = principal("alice", "data-eng");
    let err = d
        .workflow
        .file(&alice, payroll("just because"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("does not match ^INC-[0-9]+"),
        "{err}"
    );
    let mut long = payroll("INC-1");
    long.duration = time::Duration::hours(3);
    assert!(
        d.workflow
            .file(&alice, long)
            .await
            .unwrap_err()
            .to_string()
            .contains("exceeds the maximum of 2h")
    );
    assert!(d.workflow.list(&Principal::admin(), false).is_empty());
    assert!(matches!(
        d.workflow.file(&Principal::admin(), payroll("INC-1")).await,
        Err(WorkflowError::Forbidden(_))
    ));
}

#[tokio::test]
async fn overlapping_requests_merge_and_extensions_move_the_end() {
    let d = desk().await;
    let ann = principal("ann", "analysts");
    let ask = |hours: i64| NewRequest {
        scope: Scope::parse("s3://analytics/", vec![Action::Read]).unwrap(),
        duration: time::Duration::hours(hours),
        starts_at: None,
        justification: None,
        totp: None,
    };
    let first = d.workflow.file(&ann, ask(2)).await.unwrap();
    d.clock.advance(time::Duration::hours(1));
    // A second request for the same scope extends the first grant instead of adding one.
    let second = d.workflow.file(&ann, ask(4)).await.unwrap();
    assert_eq!(first.grant_id, second.grant_id);
    let grant = d
        .workflow
        .grants
        .get(first.grant_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(grant.expires_at, d.clock.now() + time::Duration::hours(4));
    assert_eq!(d.workflow.grants.list().len(), 1);

    // An extension is a request too: the whole remaining window must fit the rule (8h).
    let id = grant.id.clone();
    let err = d
        .workflow
        .extend(&ann, &id, time::Duration::hours(5), None, None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("exceeds the maximum of 8h"),
        "{err}"
    );
    let ext = d
        .workflow
        .extend(&ann, &id, time::Duration::hours(3), None, None)
        .await
        .unwrap();
    assert_eq!(
        (ext.extends.as_deref(), ext.grant_id.as_deref()),
        (Some(id.as_str()), Some(id.as_str()))
    );
    assert_eq!(
        d.workflow.grants.get(&id).unwrap().expires_at,
        d.clock.now() + time::Duration::hours(7)
    );
    // Only the holder extends.
    let bob = principal("bob", "analysts");
    assert!(matches!(
        d.workflow
            .extend(&bob, &id, time::Duration::hours(1), None, None)
            .await,
        Err(WorkflowError::Forbidden(_))
    ));
}

#[tokio::test]
async fn automatic_approval_and_timeouts() {
    let d = desk().await;
    let ann = principal("ann", "analysts");
    let auto = NewRequest {
        scope: Scope::parse("s3://analytics/", vec![Action::Read]).unwrap(),
        duration: time::Duration::hours(8),
        starts_at: None,
        justification: None,
        totp: None,
    };
    let r = d.workflow.file(&ann, auto).await.unwrap();
    assert_eq!(r.state.name(), "approved");
    // The grant carries the rule's limits.
    let grant = d.workflow.grants.get(r.grant_id.as_ref().unwrap()).unwrap();
    assert_eq!(
        grant.limits,
        crate::model::Limits {
            bytes: Some(1_000_000),
            objects: Some(50),
            share_ttl_seconds: Some(1800),
        }
    );

    let pending = d
        .workflow
        .file(&principal("alice", "data-eng"), payroll("INC-2"))
        .await
        .unwrap();
    assert_eq!(d.workflow.next_deadline(), Some(pending.pending_until));
    d.clock.advance(DEFAULT_PENDING_TIMEOUT);
    assert_eq!(d.workflow.tick().await.unwrap(), 1);
    assert_eq!(
        d.workflow.get(&pending.id).unwrap().state.name(),
        "timed_out"
    );
    assert_eq!(d.workflow.next_deadline(), None);
}

#[tokio::test]
async fn mfa_everywhere_asks_requesters_and_approvers_for_codes() {
    let d = desk_with(true).await;
    let users = d.workflow.users();
    users
        .add("ann", &["analysts".into()], d.clock.now())
        .await
        .unwrap();
    let ann = principal("ann", "analysts");
    let ask = |totp: Option<String>| NewRequest {
        scope: Scope::parse("s3://analytics/", vec![Action::Read]).unwrap(),
        duration: time::Duration::hours(1),
        starts_at: None,
        justification: None,
        totp,
    };
    // The analytics rule needs no MFA, but the setting does.
    assert!(matches!(
        d.workflow.file(&ann, ask(None)).await,
        Err(WorkflowError::RequesterMfa)
    ));
    assert!(d.workflow.list(&Principal::admin(), false).is_empty());
    users.enroll_totp("ann").await.unwrap();
    let code = users.current_code_for_tests("ann", d.clock.now()).unwrap();
    assert_eq!(
        d.workflow
            .file(&ann, ask(Some(code)))
            .await
            .unwrap()
            .state
            .name(),
        "approved"
    );
    // A request that needs approvals asks the approvers for MFA too.
    let alice = principal("alice", "data-eng");
    let r = d.workflow.file(&alice, payroll("INC-1")).await;
    assert!(matches!(r, Err(WorkflowError::RequesterMfa)));
}

#[tokio::test]
async fn a_later_start_gives_a_scheduled_grant() {
    let d = desk().await;
    let ann = principal("ann", "analysts");
    let starts = d.clock.now() + time::Duration::hours(2);
    let r = d
        .workflow
        .file(
            &ann,
            NewRequest {
                scope: Scope::parse("s3://analytics/", vec![Action::Read]).unwrap(),
                duration: time::Duration::hours(1),
                starts_at: Some(starts),
                justification: None,
                totp: None,
            },
        )
        .await
        .unwrap();
    let grant = d
        .workflow
        .grants
        .get(r.grant_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(
        (grant.starts_at, grant.state(d.clock.now())),
        (starts, GrantState::Scheduled)
    );
    d.clock.advance(time::Duration::hours(2));
    assert_eq!(grant.state(d.clock.now()), GrantState::Active);
}
