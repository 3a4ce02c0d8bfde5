//! The auditor's report over the control API: `GET /v1/report?from=&to=&format=html|json|csv`.
//! It reads the stored grants and requests and the audit trail for the period, so it needs
//! the running gateway (the store is locked while it runs); the admin and members of the
//! `auditors` group may read it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use time::OffsetDateTime;

use super::{ApiError, ApiResult, ApiState};
use crate::audit::chain::Record;
use crate::audit::replicas::{Chain, Checked, Entry};
use crate::model::Principal;

/// Members of this group read reports (besides the admin).
pub const AUDITORS_GROUP: &str = "auditors";
/// Default length of a report period ending now.
const DEFAULT_PERIOD: time::Duration = time::Duration::days(30);
/// Completion records can arrive after the period's end for transfers decided inside it.
const LATE_COMPLETIONS: time::Duration = time::Duration::days(1);

/// The admin and members of [`AUDITORS_GROUP`] may read `what` (reports, the trail); anyone
/// else is told who may.
pub(super) fn require_auditor(who: &Principal, what: &str) -> Result<(), ApiError> {
    if who.admin || who.groups.iter().any(|g| g == AUDITORS_GROUP) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "{} may not read {what}: they are for the admin and the {AUDITORS_GROUP:?} group",
        who.name
    )))
}

pub(super) fn report(state: &ApiState, who: &Principal, query: Option<&str>) -> ApiResult {
    require_auditor(who, "reports")?;
    let param = |name: &str| super::query_value(query, name);
    let now = state.grants.clock().now();
    let to = param("to")
        .map(|t| instant("to", &t))
        .transpose()?
        .unwrap_or(now);
    let from = param("from")
        .map(|f| instant("from", &f))
        .transpose()?
        .unwrap_or(to - DEFAULT_PERIOD);
    if from >= to {
        return Err(ApiError::invalid(format!(
            "from ({}) must be before to ({})",
            crate::duration::rfc3339(from),
            crate::duration::rfc3339(to)
        )));
    }
    let format = param("format").unwrap_or_else(|| "json".into());
    let (trail, records) = trail_for(state, from, to)?;
    let mut report = crate::report::build(
        from,
        to,
        now,
        &state.grants.list(),
        &state.workflow.all_requests(),
        &records,
    );
    report.trail = Some(trail);
    let (content_type, body) = match format.as_str() {
        "json" => (
            "application/json",
            serde_json::to_vec_pretty(&report).expect("reports serialise"),
        ),
        "html" => (
            "text/html; charset=utf-8",
            crate::report::to_html(&report).into_bytes(),
        ),
        "csv" => (
            "text/csv; charset=utf-8",
            crate::report::to_csv(&report).into_bytes(),
        ),
        other => {
            return Err(ApiError::invalid(format!(
                "format {other:?} is not one of html, json, csv"
            )));
        }
    };
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    Ok(res)
}

/// `2026-03-01` (midnight UTC) or an RFC 3339 time.
fn instant(name: &str, value: &str) -> Result<OffsetDateTime, ApiError> {
    crate::duration::parse_time(value).ok_or_else(|| {
        ApiError::invalid(format!(
            "{name} {value:?} is not a date (2026-03-01) or an RFC 3339 time (2026-03-01T09:00:00Z)"
        ))
    })
}

/// Verifies the whole trail (every replica's hash chain and signed checkpoints) as `sesame
/// audit verify` does, keeping the records from `from` until a day after `to` on the way,
/// merged by time. A broken chain still gives a report, which says so at the top; its
/// records are then read again without the checks, so the report shows everything the files
/// hold.
fn trail_for(
    state: &ApiState,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<(crate::report::TrailCheck, Vec<Entry>), ApiError> {
    let until = to + LATE_COMPLETIONS;
    let kept = |_: &Chain, record: &Record| {
        record
            .body
            .kind
            .at()
            .is_some_and(|at| from <= at && at < until)
    };
    let (checked, records) =
        crate::audit::replicas::read_checked(&state.audit_dir, kept).map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                format!(
                    "the audit trail cannot be read for the report: {e}; run `sesame audit verify`"
                ),
            )
        })?;
    Ok((check(&checked), records))
}

/// What verification said of each chain, in one sentence for the top of the report.
fn check(checked: &[Checked]) -> crate::report::TrailCheck {
    let mut broken = Vec::new();
    let (mut records, mut files) = (0, 0);
    let mut pruned = Vec::new();
    for c in checked {
        match &c.outcome {
            Ok(summary) => {
                records += summary.records;
                files += summary.files;
                if let Some(seq) = summary.pruned_through {
                    pruned.push(format!("{} up to {seq}", c.chain.name()));
                }
            }
            Err(e) => broken.push(format!("{}: {e}", c.chain.name())),
        }
    }
    let names: Vec<&str> = checked.iter().map(|c| c.chain.name()).collect();
    if checked.is_empty() {
        return crate::report::TrailCheck {
            intact: true,
            summary: "no records yet".into(),
        };
    }
    if broken.is_empty() {
        let pruned = if pruned.is_empty() {
            String::new()
        } else {
            format!(
                "; records deleted by retention behind a signed anchor ({})",
                pruned.join(", ")
            )
        };
        crate::report::TrailCheck {
            intact: true,
            summary: format!(
                "{records} records in {files} file(s) of {} chain(s) ({}), hash chains and signed checkpoints intact{pruned}",
                checked.len(),
                names.join(", ")
            ),
        }
    } else {
        crate::report::TrailCheck {
            intact: false,
            summary: format!(
                "{}; run `sesame audit verify` and find out why before relying on this report",
                broken.join("; ")
            ),
        }
    }
}
