//! The one parse of a request's authentication, read by every front-door check: query names
//! and values decoded exactly as s3s 0.14 decodes them, the `Authorization` header and the
//! presigned-URL parameters read with s3s's grammar, and duplicates, conflicts and anything
//! s3s would read differently from Sesame refused.
//!
//! s3s decodes the query with `serde_urlencoded` (that is, `form_urlencoded::parse`: pieces
//! split on `&`, empty ones skipped, split on the first `=`, `+` as space, percent-decoded,
//! invalid UTF-8 replaced) and then looks names up exactly, case-sensitively. Each piece here
//! goes through the same `form_urlencoded::parse`, so a name sent as `X-Amz-Signed%48eaders`
//! is `X-Amz-SignedHeaders` to every check, as it is to s3s's signature check.
//!
//! The copy source of a copy is read here too ([`copy`]), as s3s reads it.

use hyper::HeaderMap;
use s3s::{S3Error, S3ErrorCode, S3Result};

/// The only algorithm s3s verifies. s3s reads the `Authorization` header's algorithm and then
/// ignores it, so anything else (`aws4-hmac-sha256` too) is refused here.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Query parameters of a SigV4 presigned URL, as s3s names them (case-sensitive).
const QUERY_AUTH: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// Query parameters of a SigV2 presigned URL; s3s checks SigV2 whenever `Signature` is present.
const QUERY_SIGV2: [&str; 2] = ["Signature", "AWSAccessKeyId"];

/// Headers that say who signed a request; each may appear once.
const AUTH_HEADERS: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
];

pub const SIGV2_HINT: &str = "Signature Version 2 is not accepted; sign requests with SigV4 (AWS4-HMAC-SHA256). \
Clients choose SigV2 for older AWS regions such as us-east-1: use the region Sesame gave with the credentials, \
or aws-cli v1: `aws configure set default.s3.signature_version s3v4`; \
boto3: `Config(signature_version='s3v4')`; s3fs: `config_kwargs={'signature_version': 's3v4'}`";

/// A request as every check sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// Decoded query pairs, in the order sent.
    pub query: Vec<(String, String)>,
    pub signer: Signer,
    /// `x-amz-security-token` (header) or `X-Amz-Security-Token` (query), never both.
    pub session_token: Option<String>,
    /// `x-amz-copy-source`, as s3s reads it for the access check and the backend.
    pub copy_source: Option<s3s::dto::CopySource>,
}

/// How the request says it was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// No signature: refused later as anonymous, by the access check.
    Anonymous,
    /// `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
    Header(Signed),
    /// A presigned URL (`X-Amz-Signature` and its companions in the query).
    Query { signed: Signed, expires: u64 },
}

/// What a SigV4 signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub credential: Credential,
    /// As sent, not trimmed: s3s looks each name up exactly, so ` x-amz-acl` signs nothing.
    pub signed_headers: Vec<String>,
}

/// `KEY/DATE/REGION/SERVICE/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

/// Parses a request's query and auth headers once, refusing what s3s could read otherwise.
pub fn parse(headers: &HeaderMap, query: Option<&str>) -> S3Result<Parsed> {
    let query = decode_query(query.unwrap_or(""))?;
    for name in AUTH_HEADERS {
        if headers.get_all(name).iter().nth(1).is_some() {
            return Err(invalid_argument(format!(
                "header {name} appears more than once"
            )));
        }
    }
    let header = |name: &str| -> S3Result<Option<String>> {
        headers
            .get(name)
            .map(|v| {
                v.to_str().map(str::to_owned).map_err(|_| {
                    invalid_argument(format!("header {name} is not visible ASCII text"))
                })
            })
            .transpose()
    };
    let authorization = header("authorization")?;
    let query_auth: Vec<&str> = QUERY_AUTH
        .into_iter()
        .filter(|name| query.iter().any(|(k, _)| k == name))
        .collect();

    let session_token = match (
        header("x-amz-security-token")?,
        value(&query, "X-Amz-Security-Token"),
    ) {
        (Some(_), Some(_)) => {
            return Err(invalid_argument(
                "the session token was sent both as header x-amz-security-token and as query parameter X-Amz-Security-Token".into(),
            ));
        }
        (Some(token), None) => Some(token),
        (None, token) => token.map(str::to_owned),
    };

    let signer = match (authorization, query_auth.first()) {
        (Some(_), Some(param)) => {
            return Err(invalid_argument(format!(
                "only one auth mechanism is allowed: both the Authorization header and query parameter {param} were sent"
            )));
        }
        (Some(authorization), None) => Signer::Header(parse_authorization(&authorization)?),
        (None, Some(_)) if query_auth == ["X-Amz-Security-Token"] => Signer::Anonymous,
        (None, Some(_)) => presigned(&query)?,
        (None, None) => Signer::Anonymous,
    };
    Ok(Parsed {
        query,
        signer,
        session_token,
        copy_source: copy::parse(headers)?,
    })
}

/// Decodes every piece as s3s does, and refuses auth parameters that are repeated (however
/// they were encoded), that differ from their name only by case, or that belong to SigV2.
fn decode_query(raw: &str) -> S3Result<Vec<(String, String)>> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut raw_names: Vec<&str> = Vec::new();
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        let Some((name, value)) = form_urlencoded::parse(piece.as_bytes()).next() else {
            continue;
        };
        let raw_name = piece.split_once('=').map_or(piece, |(n, _)| n);
        let sent_as = if raw_name == name {
            String::new()
        } else {
            format!(" (sent as {raw_name})")
        };
        if let Some(v2) = QUERY_SIGV2.iter().find(|n| n.eq_ignore_ascii_case(&name)) {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                format!("query parameter {v2}{sent_as} is SigV2: {SIGV2_HINT}"),
            ));
        }
        if let Some(known) = QUERY_AUTH.iter().find(|n| n.eq_ignore_ascii_case(&name)) {
            if *known != name {
                return Err(query_error(format!(
                    "query parameter {name}{sent_as} is not {known}: auth parameter names are case-sensitive"
                )));
            }
            if let Some(i) = pairs.iter().position(|(k, _)| k == known) {
                return Err(query_error(format!(
                    "query parameter {known} appears more than once (as {} and {raw_name})",
                    raw_names[i]
                )));
            }
        }
        pairs.push((name.into_owned(), value.into_owned()));
        raw_names.push(raw_name);
    }
    Ok(pairs)
}

fn value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The presigned-URL parameters s3s requires, each once, read as s3s reads them.
fn presigned(query: &[(String, String)]) -> S3Result<Signer> {
    let required = |name: &str| {
        value(query, name).ok_or_else(|| {
            query_error(format!(
                "query parameter {name} is missing: a presigned URL needs X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature"
            ))
        })
    };
    let algorithm = required("X-Amz-Algorithm")?;
    if algorithm != ALGORITHM {
        return Err(query_error(format!(
            "X-Amz-Algorithm {algorithm:?} is not accepted: only {ALGORITHM} is"
        )));
    }
    let credential = required("X-Amz-Credential")?;
    let credential = parse_credential(credential)
        .filter(|(_, rest)| rest.is_empty())
        .map(|(c, _)| c)
        .ok_or_else(|| {
            query_error(format!(
                "X-Amz-Credential {credential:?} is not KEY/DATE/REGION/SERVICE/aws4_request"
            ))
        })?;
    required("X-Amz-Date")?;
    required("X-Amz-Signature")?;
    let expires = required("X-Amz-Expires")?;
    let expires = expires.parse::<u64>().map_err(|_| {
        query_error(format!(
            "X-Amz-Expires {expires:?} is not a number of seconds"
        ))
    })?;
    let signed_headers = required("X-Amz-SignedHeaders")?;
    if !signed_headers.is_ascii() {
        return Err(query_error(format!(
            "X-Amz-SignedHeaders {signed_headers:?} is not ASCII"
        )));
    }
    Ok(Signer::Query {
        signed: Signed {
            credential,
            signed_headers: signed_headers.split(';').map(str::to_owned).collect(),
        },
        expires,
    })
}

/// s3s's grammar for the header: `ALG<ws>Credential=C,<ws*>SignedHeaders=H;H,<ws*>Signature=S<ws*>`,
/// where ALG runs to the first whitespace and `<ws>` is space, tab, CR or LF.
fn parse_authorization(value: &str) -> S3Result<Signed> {
    if value.starts_with("AWS ") {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            SIGV2_HINT.to_owned(),
        ));
    }
    let malformed = || {
        header_error(format!(
            "the Authorization header {:?} is not {ALGORITHM} Credential=..., SignedHeaders=..., Signature=...",
            cut(value)
        ))
    };
    let end = value
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(value.len());
    let algorithm = &value[..end];
    if algorithm != ALGORITHM {
        return Err(header_error(format!(
            "the Authorization header's algorithm {:?} is not accepted: only {ALGORITHM} is",
            cut(algorithm)
        )));
    }
    let rest = &value[end..];
    let after = skip_space(rest);
    if after.len() == rest.len() {
        return Err(malformed());
    }
    let rest = after.strip_prefix("Credential=").ok_or_else(malformed)?;
    let (credential, rest) = parse_credential(rest).ok_or_else(malformed)?;
    let rest = skip_space(rest.strip_prefix(',').ok_or_else(malformed)?);
    let rest = rest.strip_prefix("SignedHeaders=").ok_or_else(malformed)?;
    let (list, rest) = rest.split_once(',').ok_or_else(malformed)?;
    let rest = skip_space(rest)
        .strip_prefix("Signature=")
        .ok_or_else(malformed)?;
    let end = rest
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(rest.len());
    if !skip_space(&rest[end..]).is_empty() {
        return Err(malformed());
    }
    Ok(Signed {
        credential,
        signed_headers: list.split(';').map(str::to_owned).collect(),
    })
}

/// nom's `multispace0`: spaces, tabs, CR and LF.
fn skip_space(s: &str) -> &str {
    s.trim_start_matches([' ', '\t', '\r', '\n'])
}

/// `KEY/DATE/REGION/SERVICE/aws4_request` at the start of `s`, and what follows it. The key
/// and region may be empty; the date is eight digits and the service is not empty.
fn parse_credential(s: &str) -> Option<(Credential, &str)> {
    let (access_key, s) = s.split_once('/')?;
    let (date, s) = s.split_once('/')?;
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (region, s) = s.split_once('/')?;
    let (service, s) = s.split_once('/')?;
    if service.is_empty() {
        return None;
    }
    let rest = s.strip_prefix("aws4_request")?;
    Some((
        Credential {
            access_key: access_key.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        },
        rest,
    ))
}

/// At most 64 characters of a client's value, for an error message.
fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

fn query_error(message: String) -> S3Error {
    S3Error::with_message(S3ErrorCode::AuthorizationQueryParametersError, message)
}

fn header_error(message: String) -> S3Error {
    S3Error::with_message(S3ErrorCode::AuthorizationHeaderMalformed, message)
}

fn invalid_argument(message: String) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, message)
}

mod copy;
#[cfg(test)]
mod tests;
