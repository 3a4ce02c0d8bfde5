//! The trail over the control API: `GET /v1/audit?principal=&grant=&bucket=&prefix=&op=&
//! decision=&request_id=&since=&until=` answers the records `sesame audit` shows, as the
//! trail stores them (JSON lines), so the command works against a remote gateway as it does
//! on the gateway's own data directory. For the admin and the `auditors` group, like reports.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::{ApiError, ApiResult, ApiState};
use crate::audit::query::Query;
use crate::model::Principal;

pub(super) fn query(state: &ApiState, who: &Principal, query: Option<&str>) -> ApiResult {
    super::report::require_auditor(who, "the audit trail")?;
    let wanted =
        Query::from_params(|name| super::query_value(query, name)).map_err(ApiError::invalid)?;
    let mut lines = String::new();
    crate::audit::verify::for_each(&state.audit_dir, |record| {
        if wanted.matches(&record.body) {
            lines.push_str(&record.line());
            lines.push('\n');
        }
    })
    .map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            format!("the audit trail cannot be read: {e}; run `sesame audit verify`"),
        )
    })?;
    let mut res = Response::new(Full::new(Bytes::from(lines)));
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(res)
}
