//! Notifications: webhooks for request and grant events, JSON signed with HMAC-SHA256 (or a
//! Slack-compatible text payload), retried with backoff. Sending never blocks the caller: a
//! notice goes into a bounded queue and a background task delivers it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::http::HttpClient;
use crate::record::{self, Body, Lifecycle};
use crate::secret::{Secret, signature};

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
#[derive(Debug, Clone, Serialize)]
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

/// Where notices go.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// Key for the `X-Sesame-Signature` HMAC; from a file or inline.
    pub secret: Option<Secret>,
    pub secret_file: Option<std::path::PathBuf>,
    /// `json` (default) or `slack`.
    #[serde(default)]
    pub format: Format,
    /// Retry delays start here and double, for up to `attempts` tries.
    #[serde(default = "default_first_retry_ms")]
    pub first_retry_ms: u64,
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Slack,
}

fn default_first_retry_ms() -> u64 {
    1000
}

fn default_attempts() -> u32 {
    6
}

const QUEUE: usize = 1024;

/// The sending side; cheap to clone. Every notice is also a lifecycle record in the audit
/// trail, when one is attached; with no webhooks, nothing is sent anywhere else.
#[derive(Clone, Default)]
pub struct Notifier {
    tx: Option<mpsc::Sender<Notice>>,
    audit: Option<crate::audit::AuditLog>,
}

impl Notifier {
    /// Starts the delivery task for `hooks` (none: a notifier that sends nowhere).
    pub fn start(hooks: Vec<Webhook>) -> Result<Notifier, String> {
        if hooks.is_empty() {
            return Ok(Notifier::default());
        }
        let mut resolved = Vec::new();
        for hook in hooks {
            if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
                return Err(format!(
                    "webhook url {:?} must be http:// or https://",
                    hook.url
                ));
            }
            let secret = match (&hook.secret, &hook.secret_file) {
                (Some(s), _) => Some(s.clone()),
                (None, Some(path)) => {
                    Some(Secret::from_file(path).map_err(|e| format!("webhook secret {e}"))?)
                }
                (None, None) => None,
            };
            resolved.push((hook, secret));
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver_all(rx, resolved));
        Ok(Notifier {
            tx: Some(tx),
            audit: None,
        })
    }

    /// Also writes every notice, and other lifecycle events, to the audit trail.
    #[must_use]
    pub fn with_audit(mut self, audit: crate::audit::AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// A lifecycle event for the trail only (policy reloads, a change not stored).
    pub fn record(&self, event: Lifecycle) {
        if let Some(audit) = &self.audit {
            audit.append_later(event);
        }
    }

    /// A notifier whose notices arrive on the returned receiver (for embedding and tests).
    #[must_use]
    pub fn channel() -> (Notifier, mpsc::Receiver<Notice>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Notifier {
                tx: Some(tx),
                audit: None,
            },
            rx,
        )
    }

    /// Records a notice in the trail (without waiting) and queues it for the webhooks.
    pub fn send(&self, notice: Notice) {
        if let Some(audit) = &self.audit {
            audit.append_later(record_of(&notice));
        }
        self.deliver(notice);
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

    /// Queues a notice for the webhooks only (the trail has it already); if the queue is
    /// full the notice is dropped and logged, never waited on.
    pub fn deliver(&self, notice: Notice) {
        let Some(tx) = &self.tx else { return };
        if let Err(e) = tx.try_send(notice) {
            tracing::error!(error = %e, "notification queue full: notice dropped");
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

async fn deliver_all(mut rx: mpsc::Receiver<Notice>, hooks: Vec<(Webhook, Option<Secret>)>) {
    let client = match crate::http::client() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhooks cannot be reached; notices will not be delivered");
            return;
        }
    };
    let hooks = std::sync::Arc::new(hooks);
    while let Some(notice) = rx.recv().await {
        for i in 0..hooks.len() {
            let (client, hooks, notice) = (client.clone(), hooks.clone(), notice.clone());
            tokio::spawn(async move {
                let (hook, secret) = &hooks[i];
                deliver(&client, hook, secret.as_ref(), &notice).await;
            });
        }
    }
}

/// The body for a hook's format.
#[must_use]
pub fn payload(format: Format, notice: &Notice) -> Vec<u8> {
    let value = match format {
        Format::Json => serde_json::to_value(notice).expect("notices serialise"),
        Format::Slack => {
            serde_json::json!({"text": format!("Sesame {}: {}", notice.event.name(), notice.summary)})
        }
    };
    serde_json::to_vec(&value).expect("json")
}

async fn deliver(client: &HttpClient, hook: &Webhook, secret: Option<&Secret>, notice: &Notice) {
    let body = payload(hook.format, notice);
    let mut delay = Duration::from_millis(hook.first_retry_ms);
    for attempt in 1..=hook.attempts.max(1) {
        let mut req = hyper::Request::post(&hook.url)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("x-sesame-event", notice.event.name());
        if let Some(secret) = secret {
            req = req.header("x-sesame-signature", signature(secret.expose(), &body));
        }
        let req = match req.body(Full::new(Bytes::from(body.clone()))) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(url = %hook.url, error = %e, "webhook request cannot be built");
                return;
            }
        };
        match client.request(req).await {
            Ok(res) if res.status().is_success() => return,
            Ok(res) => {
                tracing::warn!(url = %hook.url, status = %res.status(), attempt, "webhook refused the notice");
            }
            Err(e) => tracing::warn!(url = %hook.url, error = %e, attempt, "webhook unreachable"),
        }
        if attempt < hook.attempts {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    tracing::error!(url = %hook.url, event = notice.event.name(), "webhook gave up after {} attempts", hook.attempts);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> Notice {
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
}
