//! Assembles a [`Report`] from stored grants, requests and audit records.

use std::collections::BTreeSet;

use time::OffsetDateTime;

use super::usage::{self, Tally};
use super::{Approval, Approver, GrantReport, Period, Report, UnGranted};
use crate::audit::replicas::Entry;
use crate::model::Grant;
use crate::model::request::{AccessRequest, RequestState};

/// Builds the report for `[from, to)`. `generated_at` is the time the report speaks as of
/// (grant states, whether a window has ended); it is passed in, like every time here, so the
/// same inputs always give the same report. `records` are the audit trail's, every replica's
/// chain merged by time ([`crate::audit::replicas::read`]).
#[must_use]
pub fn build(
    from: OffsetDateTime,
    to: OffsetDateTime,
    generated_at: OffsetDateTime,
    grants: &[Grant],
    requests: &[AccessRequest],
    records: &[Entry],
) -> Report {
    let period = Period { from, to };
    let mut trail = usage::collect(period, records);
    let mut reported: Vec<GrantReport> = grants
        .iter()
        .filter(|g| g.starts_at < to && g.ends_at() > from)
        .map(|g| {
            let tally = trail.tallies.remove(&g.id).unwrap_or_default();
            grant_report(g, requests, tally, generated_at)
        })
        .collect();
    reported.sort_by(|a, b| a.starts_at.cmp(&b.starts_at).then_with(|| a.id.cmp(&b.id)));

    let filed: Vec<&AccessRequest> = requests
        .iter()
        .filter(|r| period.contains(r.created_at))
        .collect();
    let mut totals = std::mem::take(&mut trail.totals);
    totals.grants = reported.len();
    totals.principals = reported
        .iter()
        .map(|g| g.principal.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    totals.requests = filed.len();
    totals.requests_auto_approved = filed
        .iter()
        .filter(|r| matches!(r.state, RequestState::Approved { .. }) && r.approvals.is_empty())
        .count();
    totals.requests_denied = filed
        .iter()
        .filter(|r| matches!(r.state, RequestState::Denied { .. }))
        .count();

    let flags = super::flags::check(period, generated_at, &reported, &filed);
    let mut ungranted: Vec<UnGranted> = filed.iter().filter_map(|r| ungranted(r)).collect();
    ungranted.sort_by_key(|r| r.requested_at);
    Report {
        period,
        generated_at,
        totals,
        flags,
        grants: reported,
        ungranted_requests: ungranted,
        by_principal: trail.by_principal(),
        by_prefix: trail.by_prefix(),
        trail: None,
    }
}

fn grant_report(
    g: &Grant,
    requests: &[AccessRequest],
    tally: Tally,
    generated_at: OffsetDateTime,
) -> GrantReport {
    let mut behind: Vec<&AccessRequest> = requests
        .iter()
        .filter(|r| r.grant_id.as_deref() == Some(g.id.as_str()))
        .collect();
    behind.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    let ended = g.ends_at();
    GrantReport {
        id: g.id.clone(),
        principal: g.principal.clone(),
        scope: g.scope.uri(),
        actions: g.scope.actions.clone(),
        starts_at: g.starts_at,
        expires_at: g.expires_at,
        ended_at: (ended <= generated_at).then_some(ended),
        revoked_at: g.revoked_at,
        revoked_by: g.revoked_by.clone(),
        state: g.state(generated_at),
        requests: behind
            .iter()
            .enumerate()
            .map(|(i, r)| approval(r, i > 0))
            .collect(),
        usage: tally.into_usage(),
    }
}

/// `later` marks a request that merged into or extended a grant an earlier one created.
fn approval(r: &AccessRequest, later: bool) -> Approval {
    let approved_at = match &r.state {
        RequestState::Approved { at } => Some(*at),
        RequestState::Pending
        | RequestState::Denied { .. }
        | RequestState::Withdrawn { .. }
        | RequestState::TimedOut { .. } => None,
    };
    Approval {
        request_id: r.id.clone(),
        rule: r.needs.rule.clone(),
        justification: r.justification.clone(),
        extension: later || r.extends.is_some(),
        requested_at: r.created_at,
        approved_at,
        latency_seconds: approved_at.map(|at| (at - r.created_at).whole_seconds()),
        automatic: approved_at.is_some() && r.approvals.is_empty(),
        approvers: r
            .approvals
            .iter()
            .map(|a| Approver {
                by: a.by.clone(),
                at: a.at,
                mfa: a.mfa,
            })
            .collect(),
    }
}

fn ungranted(r: &AccessRequest) -> Option<UnGranted> {
    let denial = match &r.state {
        RequestState::Approved { .. } => return None,
        RequestState::Denied { by, reason, .. } => Some(format!("{by}: {reason}")),
        RequestState::Pending | RequestState::Withdrawn { .. } | RequestState::TimedOut { .. } => {
            None
        }
    };
    Some(UnGranted {
        request_id: r.id.clone(),
        requester: r.requester.clone(),
        scope: r.scope.uri(),
        actions: r.scope.actions.clone(),
        state: r.state.name(),
        justification: r.justification.clone(),
        requested_at: r.created_at,
        denial,
    })
}
