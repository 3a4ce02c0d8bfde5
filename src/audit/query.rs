//! Which records `sesame audit` shows and the columns it shows them in: one filter and one
//! view of a record (with the replica whose chain holds it), the same whether the trail is
//! read from the trail root or through the control API (`GET /v1/audit`).

use time::OffsetDateTime;

use super::replicas::Entry;
use crate::record::{Body, Decision, Kind, Lifecycle, S3, Verdict};

/// Every filter given must match; none given, every record does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// The replica whose chain holds the record (`local`: the trail from before replicas).
    pub replica: Option<String>,
    pub principal: Option<String>,
    pub grant: Option<String>,
    pub bucket: Option<String>,
    /// Keys starting with this.
    pub prefix: Option<String>,
    /// An operation, e.g. `GetObject`.
    pub op: Option<String>,
    /// `allowed`, `denied` or `refused`.
    pub decision: Option<String>,
    /// The `x-amz-request-id` a client was answered with.
    pub request_id: Option<String>,
    /// From this time on.
    pub since: Option<OffsetDateTime>,
    /// Before this time.
    pub until: Option<OffsetDateTime>,
}

impl Query {
    /// The name of each filter, as a flag (`--request-id`, with `-`) and a URL parameter
    /// (`request_id`) call it.
    pub const PARAMS: [&'static str; 10] = [
        "replica",
        "principal",
        "grant",
        "bucket",
        "prefix",
        "op",
        "decision",
        "request_id",
        "since",
        "until",
    ];

    /// The filters named by `value` (a URL query's parameters, a command line's flags);
    /// times are RFC 3339 or a date (midnight UTC).
    pub fn from_params(value: impl Fn(&str) -> Option<String>) -> Result<Query, String> {
        let time = |name: &str| value(name).map(|t| parse_time(name, &t)).transpose();
        Ok(Query {
            replica: value("replica"),
            principal: value("principal"),
            grant: value("grant"),
            bucket: value("bucket"),
            prefix: value("prefix"),
            op: value("op"),
            decision: value("decision"),
            request_id: value("request_id"),
            since: time("since")?,
            until: time("until")?,
        })
    }

    /// The filters given, by name, as [`Query::from_params`] reads them back.
    #[must_use]
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let text = [
            &self.replica,
            &self.principal,
            &self.grant,
            &self.bucket,
            &self.prefix,
            &self.op,
            &self.decision,
            &self.request_id,
        ];
        let times = [self.since, self.until].map(|t| t.map(crate::duration::rfc3339));
        Self::PARAMS
            .into_iter()
            .zip(text.into_iter().cloned().chain(times))
            .filter_map(|(name, value)| value.map(|v| (name, v)))
            .collect()
    }

    /// Whether the record `body`, in the chain of `replica`, is one asked for.
    #[must_use]
    pub fn matches(&self, replica: &str, body: &Body) -> bool {
        let row = Row::of(body);
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        eq(&self.replica, Some(replica))
            && eq(&self.principal, row.principal)
            && eq(&self.grant, row.grant)
            && eq(&self.bucket, row.bucket)
            && eq(&self.op, row.op)
            && eq(&self.decision, row.verdict)
            && eq(&self.request_id, row.request_id)
            && self
                .prefix
                .as_deref()
                .is_none_or(|p| row.key.is_some_and(|k| k.starts_with(p)))
            && self.since.is_none_or(|t| row.at.is_some_and(|at| at >= t))
            && self.until.is_none_or(|t| row.at.is_some_and(|at| at < t))
    }
}

/// A filter's time: RFC 3339 or a date (midnight UTC); the error names the filter.
pub fn parse_time(name: &str, value: &str) -> Result<OffsetDateTime, String> {
    crate::duration::parse_time(value).ok_or_else(|| {
        format!(
            "{name} {value:?} is not an RFC 3339 time (2026-03-01T09:00:00Z) or a date (2026-03-01)"
        )
    })
}

/// The fields of one record that `sesame audit` filters on and shows, where it has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row<'a> {
    pub at: Option<OffsetDateTime>,
    pub kind: &'static str,
    /// A lifecycle record's event.
    pub event: Option<&'static str>,
    pub principal: Option<&'a str>,
    pub grant: Option<&'a str>,
    pub op: Option<&'a str>,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    /// `allowed`, `denied` or `refused`, for a decision.
    pub verdict: Option<&'static str>,
    /// The seq of the decision a completion or a later denial is about.
    pub decision: Option<u64>,
    pub error_code: Option<&'a str>,
    pub status: Option<u16>,
    pub bytes_out: Option<u64>,
    pub bytes_in: Option<u64>,
    pub client: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Allowed => "allowed",
        Verdict::Denied => "denied",
    }
}

impl<'a> Row<'a> {
    #[must_use]
    pub fn of(body: &'a Body) -> Row<'a> {
        let kind = body.kind.name();
        let at = body.kind.at();
        match &body.kind {
            Kind::S3(S3::Allowed(d)) => Row::decided(at, kind, d, "allowed"),
            Kind::S3(S3::Denied(d)) => Row::decided(at, kind, d, "denied"),
            Kind::S3(S3::Refused(r)) => Row {
                at,
                kind,
                verdict: Some("refused"),
                error_code: r.error_code.as_deref(),
                status: Some(r.status),
                client: r.request.client.as_deref(),
                request_id: Some(&r.request.request_id),
                ..Row::default()
            },
            Kind::DeniedAfterParse(d) => Row {
                at,
                kind,
                decision: d.decision,
                error_code: Some(&d.error_code),
                client: d.request.as_ref().and_then(|r| r.client.as_deref()),
                request_id: d.request.as_ref().map(|r| r.request_id.as_str()),
                ..Row::default()
            },
            Kind::Completion(c) => Row {
                at,
                kind,
                decision: c.decision,
                status: Some(c.status),
                bytes_out: Some(c.bytes_out),
                bytes_in: Some(c.bytes_in),
                client: c.request.client.as_deref(),
                request_id: Some(&c.request.request_id),
                ..Row::default()
            },
            Kind::Share(u) => Row {
                at,
                kind,
                principal: u.principal.as_deref(),
                grant: u.grant.as_deref(),
                op: Some(&u.op),
                bucket: u.bucket.as_deref(),
                key: u.key.as_deref(),
                verdict: Some(verdict(u.decision)),
                error_code: u.error_code.as_deref(),
                client: u.request.client.as_deref(),
                request_id: Some(&u.request.request_id),
                ..Row::default()
            },
            Kind::Lifecycle(l) => Row::lifecycle(at, kind, l),
            Kind::Checkpoint(_) => Row {
                at,
                kind,
                ..Row::default()
            },
        }
    }

    fn decided(
        at: Option<OffsetDateTime>,
        kind: &'static str,
        d: &'a Decision,
        verdict: &'static str,
    ) -> Row<'a> {
        Row {
            at,
            kind,
            principal: d.principal.as_deref(),
            grant: d.grant.as_deref(),
            op: Some(&d.op),
            bucket: d.bucket.as_deref(),
            key: d.key.as_deref(),
            verdict: Some(verdict),
            error_code: d.error_code.as_deref(),
            client: d.request.as_ref().and_then(|r| r.client.as_deref()),
            request_id: d.request.as_ref().map(|r| r.request_id.as_str()),
            ..Row::default()
        }
    }

    fn lifecycle(at: Option<OffsetDateTime>, kind: &'static str, l: &'a Lifecycle) -> Row<'a> {
        let facts = l.facts();
        Row {
            at,
            kind,
            event: Some(l.name()),
            principal: facts.principal,
            grant: facts.grant,
            bucket: facts.bucket,
            key: facts.key,
            ..Row::default()
        }
    }
}

/// The columns of `sesame audit`'s table and CSV, in order: a record is named by its
/// replica and its seq in that replica's chain.
pub const COLUMNS: [&str; 16] = [
    "replica",
    "seq",
    "at",
    "kind",
    "event",
    "principal",
    "grant",
    "op",
    "bucket",
    "key",
    "decision",
    "error_code",
    "status",
    "bytes_out",
    "bytes_in",
    "client",
];

/// One record's cells under [`COLUMNS`]; empty where it has no such field.
#[must_use]
pub fn cells(entry: &Entry) -> [String; 16] {
    let record = &entry.record;
    let row = Row::of(&record.body);
    let text = |v: Option<&str>| v.unwrap_or_default().to_owned();
    let number = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let decision = row
        .verdict
        .map_or_else(|| number(row.decision), str::to_owned);
    [
        entry.replica.clone(),
        record.seq.to_string(),
        row.at.map(crate::duration::rfc3339).unwrap_or_default(),
        row.kind.to_owned(),
        text(row.event),
        text(row.principal),
        text(row.grant),
        text(row.op),
        text(row.bucket),
        text(row.key),
        decision,
        text(row.error_code),
        number(row.status.map(u64::from)),
        number(row.bytes_out),
        number(row.bytes_in),
        text(row.client),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_goes_through_its_parameters_and_back() {
        let query = Query {
            replica: Some("r-0a1b2c3d".into()),
            principal: Some("alice".into()),
            request_id: Some("5F0C2A9B7D41E8C3".into()),
            since: crate::duration::parse_time("2026-03-01"),
            ..Query::default()
        };
        let params = query.params();
        assert_eq!(
            params,
            [
                ("replica", "r-0a1b2c3d".to_owned()),
                ("principal", "alice".to_owned()),
                ("request_id", "5F0C2A9B7D41E8C3".to_owned()),
                ("since", "2026-03-01T00:00:00Z".to_owned()),
            ]
        );
        let back = Query::from_params(|name| {
            params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap();
        assert_eq!(back, query);
        let err =
            Query::from_params(|name| (name == "until").then(|| "tuesday".to_owned())).unwrap_err();
        assert!(err.starts_with("until \"tuesday\" is not"), "{err}");
    }
}
