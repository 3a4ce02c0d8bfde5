//! The trail over the control API: `GET /v1/audit?replica=&principal=&grant=&bucket=&prefix=&
//! op=&decision=&request_id=&since=&until=` answers the records `sesame audit` shows, from
//! every replica's chain under the trail root merged by time, as the trail stores them with
//! the replica in front (JSON lines), so the command works against a remote gateway as it
//! does on the trail root itself. For the admin and the `auditors` group, like reports.

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
    let entries = crate::audit::replicas::read(&state.audit_dir, |chain, record| {
        wanted.matches(chain.name(), &record.body)
    })
    .map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            format!("the audit trail cannot be read: {e}; run `sesame audit verify`"),
        )
    })?;
    let mut lines = String::new();
    for entry in &entries {
        lines.push_str(&entry.line());
        lines.push('\n');
    }
    let mut res = Response::new(Full::new(Bytes::from(lines)));
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(res)
}
