//! The auditor's access report: who held which grant over a period, who approved it and why,
//! and what was actually read and written under it, with flags for access that looks wider,
//! longer or more routine than it needed to be. Pure: it reads grants, requests and audit
//! records handed to it and returns a [`Report`], which serialises as the JSON format and
//! renders as one self-contained HTML file ([`to_html`]) or CSV ([`to_csv`]).
//!
//! - `usage`: joins decision records with their completion records (in the same replica's
//!   chain) into per-grant usage, counted per replica too.
//! - `flags`: the checks that turn usage and approvals into flags for a reviewer.
//! - `html` and `charts`: the printable page and its inline SVG charts.
//! - `csv`: one row per grant for spreadsheets.

mod build;
mod charts;
mod csv;
mod flags;
mod html;
mod usage;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use crate::model::{Action, GrantState};

pub use self::build::build;
pub use self::charts::palette;
pub use self::csv::to_csv;
pub use self::html::{escape, to_html};

/// Distinct keys listed per grant and direction; the rest are counted, not named, so a grant
/// that touched a million objects still gives a readable report.
pub const KEYS_LISTED: usize = 50;

/// Everything the report says, in the order the HTML shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `[from, to)`: grants overlapping it and records inside it are reported.
    pub period: Period,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    pub totals: Totals,
    pub flags: Vec<Flag>,
    /// Grants whose window overlaps the period, earliest start first.
    pub grants: Vec<GrantReport>,
    /// Requests filed in the period that did not become a grant (denied, withdrawn, timed
    /// out, still pending): who asked for what and was not given it.
    pub ungranted_requests: Vec<UnGranted>,
    /// Bytes moved in the period per principal, most first.
    pub by_principal: Vec<Volume>,
    /// Bytes moved in the period per bucket and first key segment, most first.
    pub by_prefix: Vec<Volume>,
    /// What `sesame audit verify` said of the trail the report was built from, when the
    /// caller checked it (the control API always does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trail: Option<TrailCheck>,
}

/// The integrity of the trail behind the report, so the reader knows the usage it shows
/// comes from records nobody altered.
#[derive(Debug, Clone, Serialize)]
pub struct TrailCheck {
    pub intact: bool,
    /// "intact: 1234 records in 3 file(s) ..." or where the chain breaks.
    pub summary: String,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Period {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
}

impl Period {
    /// Whether `t` lies in `[from, to)`.
    #[must_use]
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        self.from <= t && t < self.to
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Grants whose window overlaps the period.
    pub grants: usize,
    /// Distinct principals holding those grants.
    pub principals: usize,
    /// Access requests filed in the period.
    pub requests: usize,
    /// Of those, approved without any person approving (by policy).
    pub requests_auto_approved: usize,
    /// Of those, denied by an approver.
    pub requests_denied: usize,
    /// S3 and share-link requests allowed in the period.
    pub s3_allowed: u64,
    /// S3 and share-link requests denied in the period (a grant's scope, window or
    /// credentials did not allow them).
    pub s3_denied: u64,
    /// Those denials by the reason their records carry (`outside_scope`, `expired`, ...);
    /// denials recorded before records carried one (version 1) are in `s3_denied` only.
    pub denied_by_reason: BTreeMap<&'static str, u64>,
    /// Requests refused before any grant was looked at (bad signature, unknown key).
    pub s3_refused: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// The requests allowed and denied in the period, by the replica that served them.
    pub by_replica: BTreeMap<String, Served>,
}

/// What one replica served: the requests whose records its chain holds (`local`: the trail
/// written before replicas had ids), and the bytes they moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Served {
    pub allowed: u64,
    pub denied: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// One grant over the period.
#[derive(Debug, Clone, Serialize)]
pub struct GrantReport {
    pub id: String,
    pub principal: String,
    /// `s3://bucket/prefix/` or `s3://bucket/key`.
    pub scope: String,
    pub actions: Vec<Action>,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When access actually ended (revocation or expiry), if it had by `generated_at`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<String>,
    /// As of `generated_at`.
    pub state: GrantState,
    /// The requests that produced or extended this grant, oldest first. Empty for grants an
    /// operator created directly (`sesame grant`).
    pub requests: Vec<Approval>,
    pub usage: Usage,
}

impl GrantReport {
    /// The first request's justification, which is why the grant exists.
    #[must_use]
    pub fn justification(&self) -> Option<&str> {
        self.requests
            .iter()
            .find_map(|r| r.justification.as_deref())
    }

    /// `read,write` as the CLI prints it.
    #[must_use]
    pub fn actions_label(&self) -> String {
        let names: Vec<&str> = self.actions.iter().map(|a| a.as_str()).collect();
        names.join(",")
    }
}

/// How one request behind a grant was approved.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub request_id: String,
    /// The policy rule that decided what the request needed.
    pub rule: String,
    pub justification: Option<String>,
    /// This request extended an existing grant rather than creating it.
    pub extension: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub approved_at: Option<OffsetDateTime>,
    /// From filing to approval.
    pub latency_seconds: Option<i64>,
    /// Approved by policy with no person approving.
    pub automatic: bool,
    pub approvers: Vec<Approver>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Approver {
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub mfa: bool,
}

/// What was done under a grant inside the period.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    pub allowed: u64,
    pub denied: u64,
    /// The denials by reason, as [`Totals::denied_by_reason`] counts them.
    pub denied_by_reason: BTreeMap<&'static str, u64>,
    /// Object downloads allowed (`GetObject`, also through share links), counted as the
    /// grant's object limit counts them: at admission, whatever the answer
    /// ([`crate::grant::usage::Effect`]).
    pub objects_read: u64,
    /// Object bytes sent by successful downloads.
    pub bytes_read: u64,
    /// Objects created or replaced (`PutObject`, `CopyObject`, `CompleteMultipartUpload`),
    /// at admission.
    pub objects_written: u64,
    /// Request bytes uploaded (`PutObject` and `UploadPart` bodies).
    pub bytes_written: u64,
    /// Objects deleted (`DeleteObject`), at admission.
    pub objects_deleted: u64,
    /// The actions that allowed requests needed.
    pub actions_used: Vec<Action>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_use: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_use: Option<OffsetDateTime>,
    /// The deepest folder holding every key used (empty: the bucket root), to set beside
    /// the granted prefix.
    pub used_under: Option<String>,
    pub keys_read: Keys,
    /// Keys written or deleted.
    pub keys_written: Keys,
    /// The requests under the grant, by the replica that served them.
    pub by_replica: BTreeMap<String, Served>,
}

/// Distinct keys in key order, the first [`KEYS_LISTED`] named.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Keys {
    pub listed: Vec<KeyUse>,
    /// Distinct keys beyond those listed.
    pub more: usize,
}

impl Keys {
    #[must_use]
    pub fn distinct(&self) -> usize {
        self.listed.len() + self.more
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyUse {
    pub key: String,
    /// Allowed requests on this key.
    pub times: u64,
    pub bytes: u64,
}

/// A request filed in the period that gave no access.
#[derive(Debug, Clone, Serialize)]
pub struct UnGranted {
    pub request_id: String,
    pub requester: String,
    pub scope: String,
    pub actions: Vec<Action>,
    /// `denied`, `withdrawn`, `timed_out` or `pending`.
    pub state: &'static str,
    pub justification: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// Who denied it and why, for denials.
    pub denial: Option<String>,
}

/// Bytes moved under one name (a principal or a prefix).
#[derive(Debug, Clone, Serialize)]
pub struct Volume {
    pub name: String,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// Something a reviewer should look at, with the sentence that says why.
#[derive(Debug, Clone, Serialize)]
pub struct Flag {
    /// The grant it is about; for patterns across grants, the latest of them.
    pub grant: String,
    pub kind: FlagKind,
    pub message: String,
    /// Other grants in the same pattern.
    pub related: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// No request was allowed under the grant in the period.
    Unused,
    /// Write or delete was granted but never used.
    UnusedActions,
    /// Every key used lies under a prefix deeper than the one granted.
    NarrowerPrefix,
    /// The last use came early in a long window.
    LongerThanNeeded,
    /// The same principal asked for the same scope again and again.
    RepeatedRequest,
    /// The same approver approved the same requester again and again.
    RepeatedApprover,
}

impl FlagKind {
    /// A short label for tables and badges.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            FlagKind::Unused => "never used",
            FlagKind::UnusedActions => "unused actions",
            FlagKind::NarrowerPrefix => "scope wider than used",
            FlagKind::LongerThanNeeded => "longer than needed",
            FlagKind::RepeatedRequest => "repeated request",
            FlagKind::RepeatedApprover => "same approver",
        }
    }
}

/// `2026-03-04 09:15 UTC`: to the minute, as people read times in sentences and tables.
#[must_use]
pub(crate) fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `1h30m`, or seconds under a minute: durations in sentences.
#[must_use]
pub(crate) fn minutes(d: time::Duration) -> String {
    if d < time::Duration::MINUTE {
        return crate::duration::human(d);
    }
    crate::duration::human(time::Duration::minutes(d.whole_minutes()))
}

/// `1.5 MiB`: byte counts for people (the JSON and CSV keep exact numbers).
#[must_use]
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss)] // one decimal is shown
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
