//! Recorded before acknowledged: the request desk makes a decision's records durable before
//! it stores the decision, so with a trail that cannot be written nothing is decided; a
//! revocation, which nothing may hold up, goes ahead and keeps its record in the store until
//! the trail can take it.

use std::sync::Arc;

use time::macros::datetime;

use super::{NewRequest, Workflow, WorkflowError};
use crate::audit::{AuditLog, Settings, verify};
use crate::clock::{Clock, ManualClock, SharedClock};
use crate::grant::{Grants, Revoked};
use crate::identity::Users;
use crate::model::request::RequestState;
use crate::model::{Action, GrantState, Principal, Scope};
use crate::record::Kind;
use crate::secret::Key;

fn person(name: &str, group: &str) -> Principal {
    Principal {
        name: name.into(),
        groups: vec![group.into()],
        admin: false,
    }
}

/// The trail's current file replaced by a folder: every write fails until `mend` undoes it.
struct Breakable {
    file: std::path::PathBuf,
    aside: std::path::PathBuf,
}

impl Breakable {
    fn new(audit_dir: &std::path::Path) -> Breakable {
        let file = audit_dir.join(crate::audit::TRAIL_FILE);
        Breakable {
            aside: file.with_extension("aside"),
            file,
        }
    }

    fn will_fail(&self) {
        std::fs::rename(&self.file, &self.aside).unwrap();
        std::fs::create_dir(&self.file).unwrap();
    }

    fn mend(&self) {
        std::fs::remove_dir(&self.file).unwrap();
        std::fs::rename(&self.aside, &self.file).unwrap();
    }
}

fn events(audit_dir: &std::path::Path) -> Vec<String> {
    verify::records(audit_dir)
        .unwrap()
        .iter()
        .filter_map(|r| match &r.body.kind {
            Kind::Lifecycle(event) => Some(event.name().to_owned()),
            Kind::S3(_)
            | Kind::DeniedAfterParse(_)
            | Kind::Completion(_)
            | Kind::Share(_)
            | Kind::Checkpoint(_) => None,
        })
        .collect()
}

#[tokio::test]
async fn a_trail_that_cannot_be_written_stops_decisions_but_not_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(datetime!(2026-11-29 10:00 UTC));
    let shared: SharedClock = Arc::new(clock.clone());
    let audit_dir = dir.path().join("audit");
    let audit = AuditLog::open(&audit_dir, &Settings::default(), shared.clone()).unwrap();
    let store = crate::store::open_file(&dir.path().join("s.redb"))
        .await
        .unwrap();
    let key = Key::from_bytes([6; 32]);
    let grants = Arc::new(
        Grants::open(store.clone(), shared.clone(), key.clone())
            .await
            .unwrap(),
    );
    let users = Arc::new(Users::open(store.clone(), key).await.unwrap());
    let policies = crate::policy::parse_file("p.toml", super::races::POLICY).unwrap();
    let workflow = Workflow::open(
        store.clone(),
        grants.clone(),
        users,
        policies,
        None,
        shared,
        false,
    )
    .await
    .unwrap()
    .with_notifier(crate::notify::Notifier::new(audit));
    let trail = Breakable::new(&audit_dir);

    let request = workflow
        .file(
            &person("alice", "oncall"),
            NewRequest {
                scope: Scope::parse("s3://ops/", vec![Action::Read]).unwrap(),
                duration: time::Duration::hours(1),
                starts_at: None,
                justification: None,
                totp: None,
            },
        )
        .await
        .unwrap();
    let held = grants
        .create(
            "carol",
            Scope::parse("s3://ops/", vec![Action::Read]).unwrap(),
            None,
            time::Duration::hours(1),
        )
        .await
        .unwrap();

    // The trail fails: the approval is refused and changes nothing.
    trail.will_fail();
    let refused = workflow
        .approve(&person("bob", "leads"), &request.id, None)
        .await;
    assert!(
        matches!(refused, Err(WorkflowError::Unrecorded(_))),
        "{refused:?}"
    );
    assert_eq!(
        workflow.get(&request.id).unwrap().state,
        RequestState::Pending
    );
    assert!(grants.list().iter().all(|g| g.principal != "alice"));

    // The revocation goes ahead; its record waits in the store.
    let revocation = workflow
        .revoke(&person("bob", "leads"), &held.id)
        .await
        .unwrap();
    assert!(matches!(revocation.revoked, Revoked::Now(_)));
    assert!(revocation.record_owed.is_some());
    assert_eq!(
        grants.get(&held.id).unwrap().state(clock.now()),
        GrantState::Revoked
    );
    let owed = crate::store::load::<crate::store::OwedRecord>(&*store).await;
    assert_eq!(owed.unwrap().len(), 1);
    assert!(workflow.flush_owed_records().await.is_err());

    // The trail is back: the owed record moves in once, and decisions work again.
    trail.mend();
    assert_eq!(workflow.flush_owed_records().await.unwrap(), 1);
    assert_eq!(workflow.flush_owed_records().await.unwrap(), 0);
    let owed = crate::store::load::<crate::store::OwedRecord>(&*store).await;
    assert!(owed.unwrap().is_empty());
    workflow
        .approve(&person("bob", "leads"), &request.id, None)
        .await
        .unwrap();
    assert_eq!(
        events(&audit_dir),
        ["request.created", "grant.revoked", "request.approved"]
    );
    verify::verify_dir(&audit_dir).unwrap();

    // Revoking again changes nothing and records nothing.
    let again = workflow
        .revoke(&person("bob", "leads"), &held.id)
        .await
        .unwrap();
    assert!(matches!(again.revoked, Revoked::Already(_)));
    assert_eq!(events(&audit_dir).len(), 3);
}
