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

/// Verifies the whole trail (hash chain and signed checkpoints) as `sesame audit verify`
/// does, keeping the records from `from` until a day after `to` on the way. A broken trail
/// still gives a report, which says so at the top; its records are then read again without
/// the checks, so the report shows everything the files hold.
fn trail_for(
    state: &ApiState,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<(crate::report::TrailCheck, Vec<Record>), ApiError> {
    let until = to + LATE_COMPLETIONS;
    let kept = |record: &Record| {
        let at = record.body.kind.at();
        at.is_some_and(|at| from <= at && at < until)
            .then(|| record.clone())
    };
    let mut records = Vec::new();
    let verified = crate::audit::verify::verify_each(&state.audit_dir, |r| records.extend(kept(r)));
    let check = match verified {
        Ok(summary) => crate::report::TrailCheck {
            intact: true,
            summary: format!(
                "{} records in {} file(s), hash chain and signed checkpoints intact{}",
                summary.records,
                summary.files,
                summary
                    .pruned_through
                    .map_or_else(String::new, |seq| format!(
                        "; records up to {seq} deleted by retention behind a signed anchor"
                    ))
            ),
        },
        Err(e) => {
            records.clear();
            crate::audit::verify::for_each(&state.audit_dir, |r| records.extend(kept(&r))).map_err(
                |e| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "audit_unavailable",
                        format!(
                            "the audit trail cannot be read for the report: {e}; run `sesame audit verify`"
                        ),
                    )
                },
            )?;
            crate::report::TrailCheck {
                intact: false,
                summary: format!(
                    "{e}; run `sesame audit verify` and find out why before relying on this report"
                ),
            }
        }
    };
    Ok((check, records))
}
