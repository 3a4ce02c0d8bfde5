//! Bodies for tests elsewhere (the chain, the writer, the meter, the report), built the way
//! the writers build them, with only what a test cares about to say.

use time::OffsetDateTime;

use super::{
    Body, Completion, Decision, Denial, GrantName, Kind, Lifecycle, Note, Outcome, Refusal,
    RequestFacts, S3, ShareUse, Verdict,
};
use crate::model::Action;

/// A policy reload saying `summary`: the smallest real body.
#[must_use]
pub fn note(summary: impl Into<String>) -> Body {
    Body::new(Lifecycle::PolicyReloaded(Note {
        at: time::macros::datetime!(2026-11-29 10:00 UTC),
        summary: summary.into(),
    }))
}

#[must_use]
pub fn facts() -> RequestFacts {
    RequestFacts {
        request_id: "5F0C2A9B7D41E8C3".into(),
        client: Some("127.0.0.1".into()),
        user_agent: "aws-cli/1.38".into(),
        range: None,
    }
}

/// Who did what to which key, under which grant.
#[derive(Debug, Clone, Copy)]
pub struct Use<'a> {
    pub at: OffsetDateTime,
    pub op: &'a str,
    pub principal: &'a str,
    pub grant: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
}

/// An S3 decision record.
#[must_use]
pub fn decision(u: Use<'_>, allowed: bool) -> Body {
    let d = Decision {
        at: u.at,
        request: Some(facts()),
        op: u.op.into(),
        access_key: Some("SESAABCDEFGHIJKLMNOP".into()),
        principal: Some(u.principal.into()),
        grant: Some(u.grant.into()),
        bucket: Some(u.bucket.into()),
        key: (!u.key.is_empty()).then(|| u.key.into()),
        error_code: (!allowed).then(|| "AccessDenied".into()),
        error: (!allowed).then(|| "not covered".into()),
        denial: (!allowed).then(|| Denial::OutsideScope {
            grant: GrantName {
                id: u.grant.into(),
                scope: format!("s3://{}/elsewhere/", u.bucket),
                actions: "read".into(),
            },
            bucket: u.bucket.into(),
            key: u.key.into(),
            action: Action::Read,
        }),
    };
    Body::new(if allowed {
        S3::Allowed(d)
    } else {
        S3::Denied(d)
    })
}

/// A share-link use.
#[must_use]
pub fn share_use(u: Use<'_>, allowed: bool) -> Body {
    Body::new(Kind::Share(ShareUse {
        at: u.at,
        request: facts(),
        op: u.op.into(),
        share: Some("s-0123456789abcdef".into()),
        downloads: Some(1),
        max_downloads: None,
        principal: Some(u.principal.into()),
        grant: Some(u.grant.into()),
        bucket: Some(u.bucket.into()),
        key: Some(u.key.into()),
        decision: if allowed {
            Verdict::Allowed
        } else {
            Verdict::Denied
        },
        error_code: (!allowed).then(|| "AccessDenied".into()),
        error: (!allowed).then(|| "link ended".into()),
        denial: (!allowed).then(|| Denial::LinkEnded {
            share: "s-0123456789abcdef".into(),
            message: "link ended".into(),
        }),
    }))
}

/// The completion of decision `decision`.
#[must_use]
pub fn completion(
    at: OffsetDateTime,
    decision: u64,
    status: u16,
    bytes_out: u64,
    bytes_in: u64,
) -> Completion {
    Completion {
        at,
        request: facts(),
        decision: Some(decision),
        status,
        bytes_out,
        bytes_in,
        latency_ms: 3,
        outcome: Outcome::Complete,
        stopped: None,
        stop_kind: None,
        error_code: None,
        error: None,
    }
}

/// A request refused before any decision.
#[must_use]
pub fn refused(at: OffsetDateTime, status: u16) -> Body {
    Body::new(S3::Refused(Refusal {
        at,
        request: facts(),
        method: "GET".into(),
        path: "/b/k".into(),
        status,
        error_code: Some("InvalidAccessKeyId".into()),
        error: None,
        denial: None,
    }))
}
