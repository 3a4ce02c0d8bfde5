//! The one parse: decoding as s3s decodes, s3s's header grammar, and every refusal, by name.

use std::fmt::Write as _;

use super::*;
use proptest::prelude::*;

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=SESA/20261129/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

/// The parameters of a presigned URL, plainly named.
const PRESIGNED: [(&str, &str); 6] = [
    ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
    (
        "X-Amz-Credential",
        "SESA%2F20261129%2Fus-east-1%2Fs3%2Faws4_request",
    ),
    ("X-Amz-Date", "20261129T000000Z"),
    ("X-Amz-Expires", "900"),
    ("X-Amz-SignedHeaders", "host"),
    ("X-Amz-Signature", "abc"),
];

fn join(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn plain() -> Vec<(String, String)> {
    PRESIGNED
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn refused(h: &HeaderMap, q: Option<&str>) -> (S3ErrorCode, String) {
    let err = parse(h, q).unwrap_err();
    (err.code().clone(), err.message().unwrap_or("").to_owned())
}

#[test]
fn names_and_values_are_decoded_as_s3s_decodes_them() {
    let p = parse(
        &HeaderMap::new(),
        Some("pre%66ix=a+b%2Fc&&list-type=2&flag"),
    )
    .unwrap();
    assert_eq!(
        p.query,
        [
            ("prefix".to_owned(), "a b/c".to_owned()),
            ("list-type".to_owned(), "2".to_owned()),
            ("flag".to_owned(), String::new()),
        ]
    );
    assert_eq!(p.signer, Signer::Anonymous);
}

#[test]
fn an_encoded_presign_name_is_read_under_its_decoded_name() {
    let mut q = plain();
    q[4].0 = "X-Amz-Signed%48eaders".into();
    q[4].1 = "host%3Bx-amz-date".into();
    let p = parse(&HeaderMap::new(), Some(&join(&q))).unwrap();
    let Signer::Query { signed, expires } = p.signer else {
        panic!("query auth expected: {p:?}")
    };
    assert_eq!(expires, 900);
    assert_eq!(signed.signed_headers, ["host", "x-amz-date"]);
    assert_eq!(signed.credential.region, "us-east-1");
}

#[test]
fn repeated_auth_parameters_are_refused_however_encoded() {
    let mut q = plain();
    q.push(("X-Amz-Signed%48eaders".into(), "host%3Bx-amz-acl".into()));
    let (code, message) = refused(&HeaderMap::new(), Some(&join(&q)));
    assert_eq!(code, S3ErrorCode::AuthorizationQueryParametersError);
    assert_eq!(
        message,
        "query parameter X-Amz-SignedHeaders appears more than once (as X-Amz-SignedHeaders and X-Amz-Signed%48eaders)"
    );
    let (_, message) = refused(
        &HeaderMap::new(),
        Some("X-Amz-Security-Token=a&X-Amz-Security-Token=b"),
    );
    assert!(message.contains("X-Amz-Security-Token appears more than once"));
}

#[test]
fn auth_names_in_another_case_are_refused() {
    let mut q = plain();
    q.push(("x-amz-signedheaders".into(), "host".into()));
    let (code, message) = refused(&HeaderMap::new(), Some(&join(&q)));
    assert_eq!(code, S3ErrorCode::AuthorizationQueryParametersError);
    assert!(
        message.contains("x-amz-signedheaders is not X-Amz-SignedHeaders"),
        "{message}"
    );
}

#[test]
fn sigv2_is_refused_under_any_encoding() {
    for q in [
        "AWSAccessKeyId=A&Signature=x&Expires=1",
        "AWS%41ccessKeyId=A&Expires=4070908800",
        "Sign%61ture=x",
        "awsaccesskeyid=A",
    ] {
        let (code, message) = refused(&HeaderMap::new(), Some(q));
        assert_eq!(code, S3ErrorCode::InvalidRequest, "{q}");
        assert!(message.contains("Signature Version 2"), "{q}: {message}");
    }
    let (_, message) = refused(&HeaderMap::new(), Some("AWS%41ccessKeyId=A"));
    assert!(message.contains("AWSAccessKeyId (sent as AWS%41ccessKeyId)"));
    let (_, message) = refused(&headers(&[("authorization", "AWS AKID:sig")]), None);
    assert!(message.contains("s3v4"));
}

#[test]
fn header_and_query_auth_together_are_refused() {
    let q = "X-Amz-Cred%65ntial=SESA%2F20261129%2Feu-west-1%2Fs3%2Faws4_request";
    let (code, message) = refused(&headers(&[("authorization", AUTH)]), Some(q));
    assert_eq!(code, S3ErrorCode::InvalidArgument);
    assert!(
        message.contains("both the Authorization header and query parameter X-Amz-Credential"),
        "{message}"
    );
    let (_, message) = refused(
        &headers(&[("x-amz-security-token", "t")]),
        Some("X-Amz-Security-Token=t"),
    );
    assert!(message.contains("both as header x-amz-security-token and as query parameter"));
}

#[test]
fn repeated_auth_headers_are_refused() {
    for name in [
        "authorization",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
    ] {
        let h = headers(&[("authorization", AUTH), (name, "a"), (name, "b")]);
        let (code, message) = refused(&h, None);
        assert_eq!(code, S3ErrorCode::InvalidArgument);
        assert_eq!(message, format!("header {name} appears more than once"));
    }
}

#[test]
fn only_the_exact_algorithm_is_accepted() {
    let lower = AUTH.replace("AWS4-HMAC-SHA256", "aws4-hmac-sha256");
    let (code, message) = refused(&headers(&[("authorization", &lower)]), None);
    assert_eq!(code, S3ErrorCode::AuthorizationHeaderMalformed);
    assert!(message.contains("algorithm \"aws4-hmac-sha256\" is not accepted"));
    let mut q = plain();
    q[0].1 = "AWS4-HMAC-SHA512".into();
    let (code, message) = refused(&HeaderMap::new(), Some(&join(&q)));
    assert_eq!(code, S3ErrorCode::AuthorizationQueryParametersError);
    assert!(message.contains("X-Amz-Algorithm \"AWS4-HMAC-SHA512\" is not accepted"));
}

#[test]
fn the_header_is_read_with_s3s_grammar() {
    // s3s's own examples: newlines between fields, no space after commas, an empty key.
    let multiline = "AWS4-HMAC-SHA256 \n    Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \n    SignedHeaders=host;range;x-amz-date,\n    Signature=fe5f\n";
    // (HeaderValue refuses newlines, so the grammar is checked on the function directly.)
    let signed = parse_authorization(multiline).unwrap();
    assert_eq!(signed.signed_headers, ["host", "range", "x-amz-date"]);
    assert_eq!(signed.credential.access_key, "AKIAIOSFODNN7EXAMPLE");
    let tight = "AWS4-HMAC-SHA256 Credential=/20230204/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-date,Signature=d2";
    let signed = parse_authorization(tight).unwrap();
    assert_eq!(signed.credential.access_key, "");
    assert_eq!(signed.credential.service, "s3");
    // Names are kept as sent: s3s would look up " x-amz-acl" and sign nothing for it.
    let spaced = AUTH.replace("host;x-amz-date", "host; x-amz-acl");
    assert_eq!(
        parse_authorization(&spaced).unwrap().signed_headers,
        ["host", " x-amz-acl"]
    );
    for bad in [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=SESA/2026112/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=a",
        "AWS4-HMAC-SHA256 Credential=SESA/20261129/us-east-1//aws4_request, SignedHeaders=host, Signature=a",
        "AWS4-HMAC-SHA256 Credential=SESA/20261129/us-east-1/s3/aws4_request SignedHeaders=host, Signature=a",
        "AWS4-HMAC-SHA256 Credential=SESA/20261129/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=a b",
        "AWS4-HMAC-SHA256\x0cCredential=SESA/20261129/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=a",
    ] {
        let err = parse_authorization(bad).unwrap_err();
        assert_eq!(
            err.code(),
            &S3ErrorCode::AuthorizationHeaderMalformed,
            "{bad}"
        );
    }
}

#[test]
fn a_presigned_url_needs_every_parameter_once() {
    let mut q = plain();
    q.remove(3);
    let (code, message) = refused(&HeaderMap::new(), Some(&join(&q)));
    assert_eq!(code, S3ErrorCode::AuthorizationQueryParametersError);
    assert!(message.contains("X-Amz-Expires is missing"), "{message}");
    let mut q = plain();
    q[3].1 = "soon".into();
    let (_, message) = refused(&HeaderMap::new(), Some(&join(&q)));
    assert!(message.contains("X-Amz-Expires \"soon\" is not a number"));
    let mut q = plain();
    q[1].1 = "SESA%2F20261129%2Fus-east-1%2Fs3%2Faws4_request%2Fmore".into();
    let (_, message) = refused(&HeaderMap::new(), Some(&join(&q)));
    assert!(message.contains("is not KEY/DATE/REGION/SERVICE/aws4_request"));
    // A session token alone signs nothing: the request is anonymous, refused later.
    let p = parse(&HeaderMap::new(), Some("X-Amz-Security-Token=t%2B")).unwrap();
    assert_eq!(p.signer, Signer::Anonymous);
    assert_eq!(p.session_token.as_deref(), Some("t+"));
}

/// One way of writing `s` in a query: each byte as itself (where that is unambiguous) or as
/// `%XX` in upper or lower case, as `choices` says.
fn encode(s: &str, choices: &[u8]) -> String {
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        let choice = choices.get(i % choices.len().max(1)).copied().unwrap_or(0) % 3;
        let safe = b.is_ascii_alphanumeric() || b"-_.~*".contains(&b);
        match (choice, safe) {
            (0, true) => out.push(char::from(b)),
            (0 | 1, _) => {
                let _ = write!(out, "%{b:02X}");
            }
            _ => {
                let _ = write!(out, "%{b:02x}");
            }
        }
    }
    out
}

/// Pieces of a raw query: plain or encoded names and values, and raw junk with stray `%`,
/// `+` and `=`.
fn piece() -> impl Strategy<Value = String> {
    let names = prop::sample::select(vec![
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "prefix",
        "uploadId",
        "versionId",
        "list-type",
    ]);
    prop_oneof![
        (
            names,
            prop::collection::vec(any::<u8>(), 1..8),
            ".{0,12}",
            prop::collection::vec(any::<u8>(), 1..8)
        )
            .prop_map(|(n, nc, v, vc)| format!("{}={}", encode(n, &nc), encode(&v, &vc))),
        "[A-Za-z0-9%+=._~-]{0,16}",
    ]
}

proptest! {
    /// Whatever the encoding, the pairs every check reads are the pairs s3s reads: s3s 0.14
    /// parses the query with exactly `serde_urlencoded::from_str::<Vec<(String, String)>>`.
    #[test]
    fn the_one_parse_decodes_as_s3s(pieces in prop::collection::vec(piece(), 0..10)) {
        let query = pieces.join("&");
        let s3s: Vec<(String, String)> = serde_urlencoded::from_str(&query).unwrap();
        match decode_query(&query) {
            Ok(ours) => prop_assert_eq!(ours, s3s),
            // Refused only for an auth name s3s would also see twice, or in another case.
            Err(e) => {
                let message = e.message().unwrap_or("").to_owned();
                let repeated = QUERY_AUTH.iter().any(|n| s3s.iter().filter(|(k, _)| k == n).count() > 1);
                let cased = s3s.iter().any(|(k, _)| QUERY_AUTH.iter().any(|n| n.eq_ignore_ascii_case(k) && n != k));
                let sigv2 = s3s.iter().any(|(k, _)| QUERY_SIGV2.iter().any(|n| n.eq_ignore_ascii_case(k)));
                prop_assert!(repeated || cased || sigv2, "{query:?}: {message}");
            }
        }
    }

    /// Every encoding of every presign parameter name gives the same parse as the plain one,
    /// and a second copy of any of them, however encoded, is refused.
    #[test]
    fn every_encoding_of_an_auth_name_is_the_same_name(
        choices in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..8), 6),
        twice in 0usize..6,
        twice_choices in prop::collection::vec(any::<u8>(), 1..8),
    ) {
        let expected = parse(&HeaderMap::new(), Some(&join(&plain()))).unwrap();
        let encoded: Vec<(String, String)> = plain()
            .into_iter()
            .zip(&choices)
            .map(|((k, v), c)| (encode(&k, c), v))
            .collect();
        let parsed = parse(&HeaderMap::new(), Some(&join(&encoded))).unwrap();
        prop_assert_eq!(&parsed.signer, &expected.signer);
        let mut repeated = encoded.clone();
        let (name, value) = &plain()[twice];
        repeated.push((encode(name, &twice_choices), value.clone()));
        let err = parse(&HeaderMap::new(), Some(&join(&repeated))).unwrap_err();
        let expected = format!("{name} appears more than once");
        prop_assert!(err.message().unwrap().contains(&expected), "{:?}", err.message());
    }
}

/// What s3s handed to `ListObjectsV2` as its prefix, once it was called.
type Seen = std::sync::Arc<std::sync::Mutex<Option<Option<String>>>>;

/// Records the prefix s3s hands to `ListObjectsV2`, to compare with what the parse read.
struct Recorder(Seen);

#[async_trait::async_trait]
impl s3s::S3 for Recorder {
    async fn list_objects_v2(
        &self,
        req: s3s::S3Request<s3s::dto::ListObjectsV2Input>,
    ) -> S3Result<s3s::S3Response<s3s::dto::ListObjectsV2Output>> {
        *self.0.lock().unwrap() = Some(req.input.prefix);
        Ok(s3s::S3Response::new(
            s3s::dto::ListObjectsV2Output::default(),
        ))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// End to end through s3s itself: however `list-type` and `prefix` are encoded, s3s
    /// routes to `ListObjectsV2` and hands over the prefix the one parse decoded.
    #[test]
    fn s3s_routes_and_reads_what_the_parse_reads(
        type_choices in prop::collection::vec(any::<u8>(), 1..8),
        name_choices in prop::collection::vec(any::<u8>(), 1..8),
        prefix in "[ -~]{0,12}",
        value_choices in prop::collection::vec(any::<u8>(), 1..8),
    ) {
        let query = format!(
            "{}=2&{}={}",
            encode("list-type", &type_choices),
            encode("prefix", &name_choices),
            encode(&prefix, &value_choices)
        );
        let parsed = parse(&HeaderMap::new(), Some(&query)).unwrap();
        let ours = parsed.query.iter().find(|(k, _)| k == "prefix").map(|(_, v)| v.clone());
        prop_assert_eq!(ours.as_deref(), Some(prefix.as_str()));
        let seen = Seen::default();
        let service = s3s::service::S3ServiceBuilder::new(Recorder(seen.clone())).build();
        let req = hyper::Request::get(format!("/bucket?{query}"))
            .body(s3s::Body::empty())
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let res = runtime.block_on(service.call(req)).unwrap();
        prop_assert_eq!(res.status(), hyper::StatusCode::OK, "{}", query);
        let theirs = seen.lock().unwrap().clone();
        prop_assert_eq!(theirs, Some(ours), "{}", query);
    }
}
