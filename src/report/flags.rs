//! The checks behind the report's flags: access that went unused, reached wider or lasted
//! longer than what was done with it, and requests so routine that the policy may want to
//! change. Each flag carries a sentence a reviewer can act on without reading the tables.
//! Thresholds are deliberately conservative: a flag a reviewer learns to ignore is worse than
//! one that is missing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use time::{Duration, OffsetDateTime};

use super::{Flag, FlagKind, GrantReport, Period, minutes, when};
use crate::model::Action;
use crate::model::request::{AccessRequest, RequestState};

/// Folder levels between the granted prefix and the one every used key lies under before
/// the grant counts as much wider than needed.
const NARROWER_LEVELS: usize = 2;
/// A window shorter than this is never "longer than needed": short grants are the point.
const LONG_WINDOW: Duration = Duration::hours(2);
/// "Longer than needed" when the last use came within this share of the window.
const USED_SHARE: f64 = 0.25;
/// The same request, or the same approver for the same requester, this often in one period
/// is a pattern.
const REPEATS: usize = 3;

/// Every flag for the grants and the requests filed in the period, grouped by kind.
pub(super) fn check(
    period: Period,
    generated_at: OffsetDateTime,
    grants: &[GrantReport],
    filed: &[&AccessRequest],
) -> Vec<Flag> {
    // The same finding on the same principal's grants of one scope is one flag, named by the
    // latest grant: six identical sentences would bury the other flags.
    let mut per_scope: BTreeMap<(FlagKind, &str, &str), Vec<Flag>> = BTreeMap::new();
    for g in grants {
        let found = [
            unused(g, period, generated_at),
            unused_actions(g),
            narrower_prefix(g),
            longer_than_needed(g, period),
        ];
        for f in found.into_iter().flatten() {
            per_scope
                .entry((f.kind, g.principal.as_str(), g.scope.as_str()))
                .or_default()
                .push(f);
        }
    }
    let mut flags: Vec<Flag> = per_scope.into_values().filter_map(merged).collect();
    flags.extend(repeated_requests(filed));
    flags.extend(repeated_approvers(filed));
    flags.sort_by(|a, b| a.kind.cmp(&b.kind).then_with(|| a.grant.cmp(&b.grant)));
    flags
}

/// One flag for a run of grants (in start order) with the same finding.
fn merged(mut same: Vec<Flag>) -> Option<Flag> {
    let mut last = same.pop()?;
    if !same.is_empty() {
        let _ = write!(
            last.message,
            " The same holds for {} earlier grant{} on this scope.",
            same.len(),
            if same.len() == 1 { "" } else { "s" }
        );
        last.related = same.into_iter().map(|f| f.grant).collect();
    }
    Some(last)
}

fn flag(g: &GrantReport, kind: FlagKind, message: String) -> Flag {
    Flag {
        grant: g.id.clone(),
        kind,
        message,
        related: Vec::new(),
    }
}

fn unused(g: &GrantReport, period: Period, generated_at: OffsetDateTime) -> Option<Flag> {
    // A grant that has not started yet has had no chance to be used.
    if g.usage.allowed > 0 || g.starts_at >= generated_at {
        return None;
    }
    let from = g.starts_at.max(period.from);
    let until = g
        .ended_at
        .unwrap_or(g.expires_at)
        .min(period.to)
        .min(generated_at);
    Some(flag(
        g,
        FlagKind::Unused,
        format!(
            "{} held {} on {} from {} to {} and made no request under it: the access was granted but never needed.",
            g.principal,
            g.actions_label(),
            g.scope,
            when(from),
            when(until),
        ),
    ))
}

fn unused_actions(g: &GrantReport) -> Option<Flag> {
    if g.usage.allowed == 0 {
        return None;
    }
    let idle: Vec<&str> = [Action::Write, Action::Delete]
        .into_iter()
        .filter(|a| g.actions.contains(a) && !g.usage.actions_used.contains(a))
        .map(Action::as_str)
        .collect();
    if idle.is_empty() {
        return None;
    }
    let used: Vec<&str> = g.usage.actions_used.iter().map(|a| a.as_str()).collect();
    Some(flag(
        g,
        FlagKind::UnusedActions,
        format!(
            "{} was granted {} on {} but only used {}: {} was never used, so a grant without it would have done.",
            g.principal,
            g.actions_label(),
            g.scope,
            used.join(","),
            idle.join(" and "),
        ),
    ))
}

fn narrower_prefix(g: &GrantReport) -> Option<Flag> {
    let (bucket, granted) = g.scope.strip_prefix("s3://")?.split_once('/')?;
    // An exact-object grant is as narrow as it gets.
    if !(granted.is_empty() || granted.ends_with('/')) {
        return None;
    }
    let used = g.usage.used_under.as_deref()?;
    let keys = g.usage.keys_read.distinct() + g.usage.keys_written.distinct();
    let deeper = used
        .strip_prefix(granted)
        .map_or(0, |rest| rest.matches('/').count());
    // One key always lies in some folder; and one level down (`payroll/` used as
    // `payroll/2026/`) is ordinary. Two levels, or anything below a whole-bucket grant, is not.
    let needed = if granted.is_empty() {
        1
    } else {
        NARROWER_LEVELS
    };
    if keys < 2 || deeper < needed {
        return None;
    }
    Some(flag(
        g,
        FlagKind::NarrowerPrefix,
        format!(
            "{} was granted {} but every key used ({keys} distinct) lies under s3://{bucket}/{used}: a grant on that prefix would have been enough.",
            g.principal, g.scope,
        ),
    ))
}

fn longer_than_needed(g: &GrantReport, period: Period) -> Option<Flag> {
    // Only a window that ended inside the period shows every use it had.
    let ended = g.ended_at.filter(|e| *e <= period.to)?;
    let last = g.usage.last_use?;
    let window = ended - g.starts_at;
    let used = last - g.starts_at;
    if window < LONG_WINDOW || used.as_seconds_f64() > window.as_seconds_f64() * USED_SHARE {
        return None;
    }
    Some(flag(
        g,
        FlagKind::LongerThanNeeded,
        format!(
            "{} last used {} {} after it started, in a window of {}: the remaining {} was open access nobody needed.",
            g.principal,
            g.id,
            minutes(used),
            minutes(window),
            minutes(window - used),
        ),
    ))
}

/// An approved request and the grant it led to.
type Led<'a> = (&'a AccessRequest, &'a str);

/// Approved requests with the grant they led to.
fn approved<'a>(filed: &[&'a AccessRequest]) -> impl Iterator<Item = (&'a AccessRequest, &'a str)> {
    filed.iter().filter_map(|r| match r.state {
        RequestState::Approved { .. } => Some((*r, r.grant_id.as_deref()?)),
        RequestState::Pending
        | RequestState::Denied { .. }
        | RequestState::Withdrawn { .. }
        | RequestState::TimedOut { .. } => None,
    })
}

/// The latest grant names the flag; the others are related (each once).
fn pattern(kind: FlagKind, mut group: Vec<Led>, message: String) -> Flag {
    group.sort_by_key(|(r, _)| r.created_at);
    let grant = group
        .last()
        .map(|(_, g)| (*g).to_owned())
        .unwrap_or_default();
    let mut related: Vec<String> = group
        .iter()
        .map(|(_, g)| (*g).to_owned())
        .filter(|g| *g != grant)
        .collect();
    related.sort();
    related.dedup();
    Flag {
        grant,
        kind,
        message,
        related,
    }
}

fn repeated_requests(filed: &[&AccessRequest]) -> Vec<Flag> {
    let mut groups: BTreeMap<(String, String, String), Vec<Led>> = BTreeMap::new();
    for (r, grant) in approved(filed) {
        let key = (r.requester.clone(), r.scope.uri(), r.scope.actions_label());
        groups.entry(key).or_default().push((r, grant));
    }
    groups
        .into_iter()
        .filter(|(_, group)| group.len() >= REPEATS)
        .map(|((requester, scope, actions), group)| {
            let n = group.len();
            let automatic = group.iter().filter(|(r, _)| r.approvals.is_empty()).count();
            let how = if automatic == n {
                let mut rules: Vec<&str> = group.iter().map(|(r, _)| r.needs.rule.as_str()).collect();
                rules.sort_unstable();
                rules.dedup();
                format!(
                    "each approved automatically by policy rule {}: the policy already treats this as routine; check that the data should be this easy to reach",
                    rules.join(", ")
                )
            } else {
                format!(
                    "approved by {}: a recurring need that a scheduled or longer-lived rule could serve without asking an approver each time",
                    approver_counts(group.iter().map(|(r, _)| *r))
                )
            };
            pattern(
                FlagKind::RepeatedRequest,
                group,
                format!("{requester} requested {actions} on {scope} {n} times in the period, {how}."),
            )
        })
        .collect()
}

/// `bob (3), policy (1)`: who approved these requests and how often.
fn approver_counts<'a>(requests: impl Iterator<Item = &'a AccessRequest>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in requests {
        if r.approvals.is_empty() {
            *counts.entry("policy").or_default() += 1;
        }
        for a in &r.approvals {
            *counts.entry(a.by.as_str()).or_default() += 1;
        }
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(who, n)| format!("{who} ({n})"))
        .collect();
    parts.join(", ")
}

fn repeated_approvers(filed: &[&AccessRequest]) -> Vec<Flag> {
    let mut groups: BTreeMap<(String, String), Vec<Led>> = BTreeMap::new();
    for (r, grant) in approved(filed) {
        for a in &r.approvals {
            let key = (a.by.clone(), r.requester.clone());
            groups.entry(key).or_default().push((r, grant));
        }
    }
    groups
        .into_iter()
        .filter(|(_, group)| group.len() >= REPEATS)
        .map(|((approver, requester), group)| {
            let n = group.len();
            let fast = group
                .iter()
                .filter(|(r, _)| {
                    r.approvals
                        .iter()
                        .any(|a| a.by == approver && a.at - r.created_at < Duration::minutes(2))
                })
                .count();
            let speed = if fast == 0 {
                String::new()
            } else {
                format!(", {fast} of them within two minutes")
            };
            pattern(
                FlagKind::RepeatedApprover,
                group,
                format!(
                    "{approver} approved {n} of {requester}'s requests in the period{speed}: one approver for one requester this often is close to self-service; consider a second approver or writing the access into policy."
                ),
            )
        })
        .collect()
}
