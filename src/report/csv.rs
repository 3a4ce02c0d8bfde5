//! The report as CSV: one row per grant, for spreadsheets and GRC tools. RFC 4180: CRLF line
//! ends, fields quoted when they hold a comma, quote, CR or LF, quotes doubled. Text that a
//! spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or CR) gets a
//! leading `'`, as OWASP advises, since justifications and keys come from users.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::{GrantReport, Report};
use crate::duration::rfc3339;

const COLUMNS: [&str; 30] = [
    "grant_id",
    "principal",
    "scope",
    "actions",
    "state",
    "starts_at",
    "expires_at",
    "ended_at",
    "revoked_at",
    "revoked_by",
    "request_ids",
    "justification",
    "requested_at",
    "approved_at",
    "approval_latency_seconds",
    "automatic_approval",
    "approvers",
    "requests_allowed",
    "requests_denied",
    "objects_read",
    "bytes_read",
    "objects_written",
    "bytes_written",
    "objects_deleted",
    "first_use",
    "last_use",
    "distinct_keys_read",
    "distinct_keys_written",
    "requests_by_replica",
    "flags",
];

/// One header row, then one row per grant in the report's order.
#[must_use]
pub fn to_csv(report: &Report) -> String {
    let mut out = String::new();
    row(&mut out, COLUMNS.iter().map(|c| (*c).to_owned()));
    for g in &report.grants {
        row(&mut out, cells(report, g));
    }
    out
}

fn time(t: Option<OffsetDateTime>) -> String {
    t.map(rfc3339).unwrap_or_default()
}

fn cells(report: &Report, g: &GrantReport) -> Vec<String> {
    let first = g.requests.first();
    let ids: Vec<&str> = g.requests.iter().map(|r| r.request_id.as_str()).collect();
    let approvers: Vec<String> = g
        .requests
        .iter()
        .flat_map(|r| &r.approvers)
        .map(|a| {
            format!(
                "{} {}{}",
                a.by,
                rfc3339(a.at),
                if a.mfa { " mfa" } else { "" }
            )
        })
        .collect();
    let mut flags: Vec<&str> = report
        .flags
        .iter()
        .filter(|f| f.grant == g.id || f.related.contains(&g.id))
        .map(|f| f.kind.label())
        .collect();
    flags.dedup();
    let u = &g.usage;
    vec![
        g.id.clone(),
        g.principal.clone(),
        g.scope.clone(),
        g.actions_label(),
        g.state.as_str().to_owned(),
        rfc3339(g.starts_at),
        rfc3339(g.expires_at),
        time(g.ended_at),
        time(g.revoked_at),
        g.revoked_by.clone().unwrap_or_default(),
        ids.join(" "),
        g.justification().unwrap_or_default().to_owned(),
        time(first.map(|r| r.requested_at)),
        time(first.and_then(|r| r.approved_at)),
        first
            .and_then(|r| r.latency_seconds)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        first.map(|r| r.automatic.to_string()).unwrap_or_default(),
        approvers.join("; "),
        u.allowed.to_string(),
        u.denied.to_string(),
        u.objects_read.to_string(),
        u.bytes_read.to_string(),
        u.objects_written.to_string(),
        u.bytes_written.to_string(),
        u.objects_deleted.to_string(),
        time(u.first_use),
        time(u.last_use),
        u.keys_read.distinct().to_string(),
        u.keys_written.distinct().to_string(),
        by_replica(u),
        flags.join("; "),
    ]
}

/// `r-1a2b3c4d=3/1; local=1/0`: requests allowed/denied under the grant, per replica.
fn by_replica(u: &super::Usage) -> String {
    let each: Vec<String> = u
        .by_replica
        .iter()
        .map(|(replica, s)| format!("{replica}={}/{}", s.allowed, s.denied))
        .collect();
    each.join("; ")
}

fn row(out: &mut String, cells: impl IntoIterator<Item = String>) {
    let fields: Vec<String> = cells.into_iter().map(|c| field(&c)).collect();
    let _ = write!(out, "{}\r\n", fields.join(","));
}

/// One field, defused and quoted as needed.
#[must_use]
pub(super) fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}
