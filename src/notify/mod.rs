//! Notifications: request and grant events are written once, as lifecycle records, into the
//! audit trail ([`Notifier`]); everything that tells anyone about them reads them back from
//! the committed trail. The webhooks (`webhook.rs`) are a sink of the committed trail, as
//! the forwarder is, so a webhook is never sent for something the trail does not hold;
//! [`Notices`] is the in-process one, for embedding and tests.

use std::collections::VecDeque;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::audit::AuditLog;
use crate::audit::chain::Record;
use crate::audit::sink::Committed;
use crate::record::{self, Body, Kind as RecordKind, Lifecycle};

pub mod webhook;

pub use self::webhook::{Format, Webhook, payload};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    #[serde(rename = "request.created")]
    RequestCreated,
    #[serde(rename = "request.approved")]
    RequestApproved,
    #[serde(rename = "request.denied")]
    RequestDenied,
    #[serde(rename = "request.withdrawn")]
    RequestWithdrawn,
    #[serde(rename = "request.timed_out")]
    RequestTimedOut,
    /// A grant approved for a later window became active.
    #[serde(rename = "grant.started")]
    GrantStarted,
    #[serde(rename = "grant.expiring_soon")]
    GrantExpiringSoon,
    #[serde(rename = "grant.expired")]
    GrantExpired,
    #[serde(rename = "grant.revoked")]
    GrantRevoked,
}

impl Kind {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::RequestCreated => "request.created",
            Kind::RequestApproved => "request.approved",
            Kind::RequestDenied => "request.denied",
            Kind::RequestWithdrawn => "request.withdrawn",
            Kind::RequestTimedOut => "request.timed_out",
            Kind::GrantStarted => "grant.started",
            Kind::GrantExpiringSoon => "grant.expiring_soon",
            Kind::GrantExpired => "grant.expired",
            Kind::GrantRevoked => "grant.revoked",
        }
    }
}

/// One event, as sent in the JSON payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub event: Kind,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub principal: String,
    pub scope: String,
    pub request_id: Option<String>,
    pub grant_id: Option<String>,
    /// A sentence for people: who did what, and why.
    pub summary: String,
}

/// Writes notices and other lifecycle events into the audit trail; cheap to clone. Without a
/// trail (`Notifier::default()`, in tests of other modules), nothing is written anywhere.
#[derive(Clone, Default)]
pub struct Notifier {
    audit: Option<AuditLog>,
}

impl Notifier {
    /// A notifier writing to `audit`.
    #[must_use]
    pub fn new(audit: AuditLog) -> Notifier {
        Notifier { audit: Some(audit) }
    }

    /// A lifecycle event for the trail, without waiting (policy reloads, a change not stored).
    pub fn record(&self, event: Lifecycle) {
        if let Some(audit) = &self.audit {
            audit.append_later(event);
        }
    }

    /// Records a notice in the trail without waiting; the webhooks get it once it is
    /// committed.
    pub fn send(&self, notice: &Notice) {
        self.record(record_of(notice));
    }

    /// Makes the trail records of `notices` durable, all or none, before returning: what the
    /// request desk does before it stores a decision, so a decision the trail cannot hold is
    /// never taken. Nothing to do without a trail.
    pub fn record_durably(&self, notices: &[Notice]) -> Result<(), crate::audit::AuditError> {
        let bodies: Vec<Body> = notices.iter().map(|n| record_of(n).into()).collect();
        self.record_all_durably(&bodies)
    }

    /// Makes trail records durable, all or none, before returning; nothing to do without a
    /// trail.
    pub fn record_all_durably(&self, bodies: &[Body]) -> Result<(), crate::audit::AuditError> {
        match &self.audit {
            Some(audit) => audit.append_all_blocking(bodies),
            None => Ok(()),
        }
    }
}

/// The lifecycle record a notice becomes in the trail.
#[must_use]
pub fn record_of(notice: &Notice) -> Lifecycle {
    let fields = record::Notice {
        at: notice.at,
        principal: notice.principal.clone(),
        scope: notice.scope.clone(),
        request_id: notice.request_id.clone(),
        grant_id: notice.grant_id.clone(),
        summary: notice.summary.clone(),
    };
    match notice.event {
        Kind::RequestCreated => Lifecycle::RequestCreated(fields),
        Kind::RequestApproved => Lifecycle::RequestApproved(fields),
        Kind::RequestDenied => Lifecycle::RequestDenied(fields),
        Kind::RequestWithdrawn => Lifecycle::RequestWithdrawn(fields),
        Kind::RequestTimedOut => Lifecycle::RequestTimedOut(fields),
        Kind::GrantStarted => Lifecycle::GrantStarted(fields),
        Kind::GrantExpiringSoon => Lifecycle::GrantExpiringSoon(fields),
        Kind::GrantExpired => Lifecycle::GrantExpired(fields),
        Kind::GrantRevoked => Lifecycle::GrantRevoked(fields),
    }
}

/// The notice a lifecycle record is, if it is one (the request and grant events webhooks
/// carry); the other events are for the trail only.
#[must_use]
pub fn notice_of(event: &Lifecycle) -> Option<Notice> {
    let (kind, fields) = match event {
        Lifecycle::RequestCreated(n) => (Kind::RequestCreated, n),
        Lifecycle::RequestApproved(n) => (Kind::RequestApproved, n),
        Lifecycle::RequestDenied(n) => (Kind::RequestDenied, n),
        Lifecycle::RequestWithdrawn(n) => (Kind::RequestWithdrawn, n),
        Lifecycle::RequestTimedOut(n) => (Kind::RequestTimedOut, n),
        Lifecycle::GrantStarted(n) => (Kind::GrantStarted, n),
        Lifecycle::GrantExpiringSoon(n) => (Kind::GrantExpiringSoon, n),
        Lifecycle::GrantExpired(n) => (Kind::GrantExpired, n),
        Lifecycle::GrantRevoked(n) => (Kind::GrantRevoked, n),
        Lifecycle::RequestNotStored(_)
        | Lifecycle::GrantCreated(_)
        | Lifecycle::CredentialsIssued(_)
        | Lifecycle::UserAdded(_)
        | Lifecycle::MfaEnrolled(_)
        | Lifecycle::MfaReset(_)
        | Lifecycle::ShareCreated(_)
        | Lifecycle::ShareRevoked(_)
        | Lifecycle::ActionUndone(_)
        | Lifecycle::PolicyReloaded(_)
        | Lifecycle::AuditRepaired(_)
        | Lifecycle::AuditPruned(_) => return None,
    };
    Some(Notice {
        event: kind,
        at: fields.at,
        principal: fields.principal.clone(),
        scope: fields.scope.clone(),
        request_id: fields.request_id.clone(),
        grant_id: fields.grant_id.clone(),
        summary: fields.summary.clone(),
    })
}

/// The notice a trail record holds, if it holds one.
#[must_use]
pub fn notice_in(record: &Record) -> Option<Notice> {
    match &record.body.kind {
        RecordKind::Lifecycle(event) => notice_of(event),
        RecordKind::S3(_)
        | RecordKind::DeniedAfterParse(_)
        | RecordKind::Completion(_)
        | RecordKind::Share(_)
        | RecordKind::Checkpoint(_) => None,
    }
}

/// Committed batches a receiver of notices may fall behind by before batches are dropped.
const QUEUE: usize = 1024;

/// Notices as the trail commits them, in order, for embedding and tests: nothing arrives that
/// the trail does not hold. Live only, from when it is made; a reader more than a thousand
/// batches behind loses batches (logged).
pub struct Notices {
    batches: mpsc::Receiver<Committed>,
    ready: VecDeque<Notice>,
}

impl Notices {
    #[must_use]
    pub fn new(audit: &AuditLog) -> Notices {
        let (tx, batches) = mpsc::channel(QUEUE);
        audit.tap(move |batch| match tx.try_send(batch.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::error!(
                    first_seq = batch.first,
                    last_seq = batch.last,
                    "a reader of notices is behind: a batch of the trail was not handed to it"
                );
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        Notices {
            batches,
            ready: VecDeque::new(),
        }
    }

    fn take(&mut self, batch: &Committed) {
        self.ready.extend(
            batch
                .records_of_kind("lifecycle")
                .iter()
                .filter_map(notice_in),
        );
    }

    /// The next notice, waiting for the trail to commit one; `None` once the trail is gone.
    pub async fn recv(&mut self) -> Option<Notice> {
        loop {
            if let Some(notice) = self.ready.pop_front() {
                return Some(notice);
            }
            let batch = self.batches.recv().await?;
            self.take(&batch);
        }
    }

    /// The next notice committed so far, without waiting.
    pub fn try_recv(&mut self) -> Option<Notice> {
        while self.ready.is_empty() {
            let batch = self.batches.try_recv().ok()?;
            self.take(&batch);
        }
        self.ready.pop_front()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn notice() -> Notice {
        Notice {
            event: Kind::RequestCreated,
            at: time::macros::datetime!(2026-11-29 10:00 UTC),
            principal: "alice".into(),
            scope: "s3://hr-data/payroll/".into(),
            request_id: Some("r-1".into()),
            grant_id: None,
            summary: "alice asks for read on s3://hr-data/payroll/ for 1h: INC-4411".into(),
        }
    }

    #[test]
    fn payloads() {
        let body = payload(Format::Json, &notice());
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (v["event"].as_str(), v["request_id"].as_str()),
            (Some("request.created"), Some("r-1"))
        );
        let slack: serde_json::Value =
            serde_json::from_slice(&payload(Format::Slack, &notice())).unwrap();
        assert!(
            slack["text"]
                .as_str()
                .unwrap()
                .starts_with("Sesame request.created: alice asks")
        );
    }

    #[test]
    fn every_notice_reads_back_from_its_record_and_nothing_else_is_a_notice() {
        let kinds = [
            Kind::RequestCreated,
            Kind::RequestApproved,
            Kind::RequestDenied,
            Kind::RequestWithdrawn,
            Kind::RequestTimedOut,
            Kind::GrantStarted,
            Kind::GrantExpiringSoon,
            Kind::GrantExpired,
            Kind::GrantRevoked,
        ];
        for event in kinds {
            let notice = Notice { event, ..notice() };
            let record = record_of(&notice);
            assert_eq!(record.name(), event.name());
            assert_eq!(notice_of(&record), Some(notice));
        }
        let reload = Lifecycle::PolicyReloaded(crate::record::Note {
            at: notice().at,
            summary: "policies reloaded".into(),
        });
        assert_eq!(notice_of(&reload), None);
    }

    #[tokio::test]
    async fn notices_arrive_once_the_trail_has_committed_them() {
        let dir = tempfile::tempdir().unwrap();
        let audit = crate::audit::AuditLog::open(
            &dir.path().join("audit"),
            &crate::audit::Settings::default(),
            std::sync::Arc::new(crate::clock::SystemClock),
        )
        .unwrap();
        let mut notices = Notices::new(&audit);
        let notifier = Notifier::new(audit.clone());
        audit.append_later(crate::record::note("not a notice"));
        notifier.send(&notice());
        audit.flushed().await.unwrap();
        assert_eq!(notices.try_recv(), Some(notice()));
        assert_eq!(notices.try_recv(), None);
    }
}
