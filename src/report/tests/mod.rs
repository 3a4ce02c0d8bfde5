//! The report from small, hand-built trails, and the fixtures that build them.
//!
//! - `usage`: decision and completion records joined, the period's edges, approvals.
//! - `flags`: each flag, and none for a grant that fits its use.
//! - `output`: HTML and CSV that stay inert whatever users typed.

mod flags;
mod output;
mod usage;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::{FlagKind, Report, build, to_csv, to_html};
use crate::audit::chain::Record;
use crate::audit::replicas::Entry;
use crate::model::request::{AccessRequest, Approval, Needs, RequestState};
use crate::model::scope::parse_actions;
use crate::model::{Action, Grant, Scope};
use crate::record::Body;
use crate::record::examples::{Use, completion, decision};

const FROM: OffsetDateTime = datetime!(2026-03-01 00:00 UTC);
const TO: OffsetDateTime = datetime!(2026-04-01 00:00 UTC);
const NOW: OffsetDateTime = datetime!(2026-04-02 08:00 UTC);

fn grant(
    id: &str,
    who: &str,
    uri: &str,
    actions: &str,
    start: OffsetDateTime,
    hours: i64,
) -> Grant {
    Grant {
        id: id.into(),
        principal: who.into(),
        scope: Scope::parse(uri, parse_actions(actions).unwrap()).unwrap(),
        created_at: start,
        starts_at: start,
        expires_at: start + Duration::hours(hours),
        revoked_at: None,
        revoked_by: None,
        notices: Vec::new(),
        limits: crate::model::Limits::default(),
    }
}

/// Alice's grant `g-1` on `s3://hr-data/payroll/` for four hours from March 10th, 09:00.
fn alice_on_payroll(actions: &str) -> Grant {
    grant(
        "g-1",
        "alice",
        "s3://hr-data/payroll/",
        actions,
        datetime!(2026-03-10 09:00 UTC),
        4,
    )
}

/// An approved request for `g`, filed `wait` before it started, approved by `by` (none:
/// automatically).
fn request(id: &str, g: &Grant, wait: Duration, by: &[&str], why: &str) -> AccessRequest {
    let filed = g.starts_at - wait;
    AccessRequest {
        id: id.into(),
        requester: g.principal.clone(),
        scope: g.scope.clone(),
        duration_seconds: (g.expires_at - g.starts_at).whole_seconds(),
        starts_at: None,
        justification: Some(why.into()),
        needs: Needs {
            rule: if by.is_empty() {
                "self-service"
            } else {
                "payroll"
            }
            .into(),
            approvals: u32::try_from(by.len()).unwrap(),
            approver_groups: vec!["hr-leads".into()],
            approver_mfa: true,
            limits: crate::model::Limits::default(),
        },
        created_at: filed,
        pending_until: filed + Duration::hours(24),
        approvals: by
            .iter()
            .map(|b| Approval {
                by: (*b).into(),
                at: g.starts_at,
                mfa: true,
            })
            .collect(),
        state: RequestState::Approved { at: g.starts_at },
        extends: None,
        grant_id: Some(g.id.clone()),
    }
}

/// The replica a [`Trail`] records on until told otherwise.
const REPLICA: &str = "r-0a1b2c3d";

/// Builds a trail as `audit::replicas::read` returns it, one record per call, in the chain
/// of the replica it is on ([`REPLICA`] until [`Trail::on`] says another).
struct Trail {
    entries: Vec<Entry>,
    replica: String,
}

impl Default for Trail {
    fn default() -> Trail {
        Trail {
            entries: Vec::new(),
            replica: REPLICA.into(),
        }
    }
}

impl Trail {
    /// Records from now on go into `replica`'s chain.
    fn on(&mut self, replica: &str) -> &mut Trail {
        replica.clone_into(&mut self.replica);
        self
    }

    /// Appends to the current replica's chain; the record's seq in that chain.
    fn push(&mut self, body: impl Into<Body>) -> u64 {
        let seq = self
            .entries
            .iter()
            .filter(|e| e.replica == self.replica)
            .count() as u64
            + 1;
        self.entries.push(Entry {
            replica: self.replica.clone(),
            record: Record {
                seq,
                prev: "x".into(),
                body: body.into(),
                hash: "y".into(),
            },
        });
        seq
    }

    /// A decision by `g`'s holder on `key`; returns its seq.
    fn decide(&mut self, g: &Grant, at: OffsetDateTime, op: &str, key: &str, allowed: bool) -> u64 {
        self.push(decision(
            Use {
                at,
                op,
                principal: &g.principal,
                grant: &g.id,
                bucket: &g.scope.bucket,
                key,
            },
            allowed,
        ))
    }

    fn complete(
        &mut self,
        decision: u64,
        at: OffsetDateTime,
        status: u16,
        out: u64,
        inn: Option<u64>,
    ) {
        self.push(completion(at, decision, status, out, inn.unwrap_or(0)));
    }

    /// An allowed request with a 200 completion a second later.
    fn used(&mut self, g: &Grant, at: OffsetDateTime, op: &str, key: &str, out: u64, inn: u64) {
        let seq = self.decide(g, at, op, key, true);
        self.complete(seq, at + Duration::seconds(1), 200, out, Some(inn));
    }
}

fn report(grants: &[Grant], requests: &[AccessRequest], trail: &Trail) -> Report {
    build(FROM, TO, NOW, grants, requests, &trail.entries)
}

fn kinds(r: &Report, grant: &str) -> Vec<FlagKind> {
    r.flags
        .iter()
        .filter(|f| f.grant == grant)
        .map(|f| f.kind)
        .collect()
}
