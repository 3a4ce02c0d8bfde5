//! Attacks on how the front door reads a request, as tables of raw requests signed here (so
//! no client can normalise them away): auth parameter names percent-encoded, repeated, in
//! another case, or mixed with header auth; the algorithm, service, region and expiry of a
//! signature; unsigned `x-amz-*` headers; and headers that act outside Sesame's model. Each
//! row asserts the exact S3 error, that the backend's objects are unchanged, and that the
//! refusal is in the audit trail with the same code and message.

use sesame::grant::IssuedCredential;
use sesame::model::Action::{Delete, Read, Write};

use crate::attacks::{Attack, Watched, refuse_all};
use crate::harness::{BackendKind, Ctx};
use crate::sigv4::{Knobs, Signed, encode, presign_v2};

crate::on_every_backend!(
    query_and_header_parsing_attacks_are_refused,
    headers_outside_the_model_are_refused_by_name,
    the_one_parse_reads_what_s3s_reads,
);

/// What every row builds on: a grant on `in/` of a bucket holding `in/secret.txt`.
struct Env {
    cred: IssuedCredential,
    bucket: String,
    host: String,
}

impl Env {
    fn path(&self, key: &str) -> String {
        format!("/{}/{key}", self.bucket)
    }

    /// A presigned PUT of `in/new.txt`, signing only `host`.
    fn presigned_put(&self, knobs: &Knobs<'_>) -> Signed {
        knobs.presign("PUT", &self.path("in/new.txt"), &[], &self.host)
    }

    fn presigned_get(&self, knobs: &Knobs<'_>) -> Signed {
        knobs.presign("GET", &self.path("in/secret.txt"), &[], &self.host)
    }

    /// A header-signed PUT of `in/new.txt` whose signature covers `extra` headers too.
    fn signed_put(&self, knobs: &Knobs<'_>, extra: &[(&str, &str)]) -> Signed {
        self.signed(knobs, "PUT", "in/new.txt", &[], extra)
    }

    fn signed(
        &self,
        knobs: &Knobs<'_>,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Signed {
        let mut headers = vec![("host".to_owned(), self.host.clone())];
        headers.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        knobs.sign_header(method, &self.path(key), query, headers, "UNSIGNED-PAYLOAD")
    }

    fn source(&self) -> String {
        format!("{}/in/secret.txt", self.bucket)
    }

    fn knobs(&self) -> Knobs<'_> {
        Knobs::new(&self.cred)
    }
}

/// One attack and what the client must be told.
struct Row {
    what: &'static str,
    build: fn(&Env) -> Signed,
    code: &'static str,
    fragment: &'static str,
}

const WEEK_AND_A_DAY: u64 = 8 * 24 * 3600;

/// Presigned URLs and `Authorization` headers read differently by a check than by s3s.
const PARSING: &[Row] = &[
    Row {
        what: "X-Amz-Signed%48eaders hides an unsigned x-amz-copy-source (PUT becomes a copy)",
        build: |e| {
            e.presigned_put(&e.knobs())
                .rename("X-Amz-SignedHeaders", "X-Amz-Signed%48eaders")
                .header("x-amz-copy-source", &e.source())
        },
        code: "AccessDenied",
        fragment: "header x-amz-copy-source is not signed",
    },
    Row {
        what: "X-Amz-Signed%48eaders hides an unsigned x-amz-tagging",
        build: |e| {
            e.presigned_put(&e.knobs())
                .rename("X-Amz-SignedHeaders", "X-Amz-Signed%48eaders")
                .header("x-amz-tagging", "owner=mallory")
        },
        code: "AccessDenied",
        fragment: "header x-amz-tagging is not signed",
    },
    Row {
        what: "X-Amz-Signed%48eaders hides an unsigned x-amz-acl",
        build: |e| {
            e.presigned_put(&e.knobs())
                .rename("X-Amz-SignedHeaders", "X-Amz-Signed%48eaders")
                .header("x-amz-acl", "public-read")
        },
        code: "AccessDenied",
        fragment: "header x-amz-acl is not signed",
    },
    Row {
        what: "X-Amz-Signed%48eaders hides an unsigned SSE-C header",
        build: |e| {
            e.presigned_put(&e.knobs())
                .rename("X-Amz-SignedHeaders", "X-Amz-Signed%48eaders")
                .header("x-amz-server-side-encryption-customer-algorithm", "AES256")
        },
        code: "AccessDenied",
        fragment: "header x-amz-server-side-encryption-customer-algorithm is not signed",
    },
    Row {
        what: "X-Amz-Signed%48eaders hides an unsigned x-amz-metadata-directive",
        build: |e| {
            e.presigned_put(&e.knobs())
                .rename("X-Amz-SignedHeaders", "X-Amz-Signed%48eaders")
                .header("x-amz-metadata-directive", "REPLACE")
        },
        code: "AccessDenied",
        fragment: "header x-amz-metadata-directive is not signed",
    },
    Row {
        what: "a signed-header name with a leading space signs no header at all",
        build: |e| {
            e.signed_put(&e.knobs(), &[])
                .edit(
                    "authorization",
                    "SignedHeaders=",
                    "SignedHeaders= x-amz-copy-source;",
                )
                .header("x-amz-copy-source", &e.source())
        },
        code: "AccessDenied",
        fragment: "header x-amz-copy-source is not signed",
    },
    Row {
        what: "SigV2 query auth with AWS%41ccessKeyId, valid until 2099",
        build: |e| {
            presign_v2(
                &e.cred,
                "GET",
                &e.path("in/secret.txt"),
                &e.host,
                4_070_908_800,
            )
            .rename("AWSAccessKeyId", "AWS%41ccessKeyId")
        },
        code: "InvalidRequest",
        fragment: "Signature Version 2 is not accepted",
    },
    Row {
        what: "SigV2 query auth with Sign%61ture",
        build: |e| {
            presign_v2(
                &e.cred,
                "GET",
                &e.path("in/secret.txt"),
                &e.host,
                4_070_908_800,
            )
            .rename("Signature", "Sign%61ture")
        },
        code: "InvalidRequest",
        fragment: "Signature Version 2 is not accepted",
    },
    Row {
        what: "X-Amz-%45xpires past seven days",
        build: |e| {
            let knobs = Knobs {
                expires: WEEK_AND_A_DAY,
                ..e.knobs()
            };
            e.presigned_get(&knobs)
                .rename("X-Amz-Expires", "X-Amz-%45xpires")
        },
        code: "AuthorizationQueryParametersError",
        fragment: "X-Amz-Expires must be less than a week (in seconds) that is 604800",
    },
    Row {
        what: "X-Amz-Expires past seven days",
        build: |e| {
            let knobs = Knobs {
                expires: WEEK_AND_A_DAY,
                ..e.knobs()
            };
            e.presigned_get(&knobs)
        },
        code: "AuthorizationQueryParametersError",
        fragment: "604800",
    },
    Row {
        what: "X-Amz-Cred%65ntial scoped to another region",
        build: |e| {
            let knobs = Knobs {
                region: "eu-west-1".into(),
                ..e.knobs()
            };
            e.presigned_get(&knobs)
                .rename("X-Amz-Credential", "X-Amz-Cred%65ntial")
        },
        code: "AuthorizationQueryParametersError",
        fragment: "the region 'eu-west-1' is wrong; expecting 'sesame'",
    },
    Row {
        what: "an Authorization header scoped to another region",
        build: |e| {
            let knobs = Knobs {
                region: "eu-west-1".into(),
                ..e.knobs()
            };
            e.signed_put(&knobs, &[])
        },
        code: "AuthorizationHeaderMalformed",
        fragment: "the region 'eu-west-1' is wrong; expecting 'sesame'",
    },
    Row {
        what: "a lower-case algorithm in the header, to skip the region check",
        build: |e| {
            let knobs = Knobs {
                algorithm: "aws4-hmac-sha256".into(),
                region: "eu-west-1".into(),
                ..e.knobs()
            };
            e.signed_put(&knobs, &[])
        },
        code: "AuthorizationHeaderMalformed",
        fragment: "the Authorization header's algorithm \"aws4-hmac-sha256\" is not accepted: only AWS4-HMAC-SHA256 is",
    },
    Row {
        what: "a lower-case algorithm in the header, to skip the signed-header rule",
        build: |e| {
            let knobs = Knobs {
                algorithm: "aws4-hmac-sha256".into(),
                ..e.knobs()
            };
            e.signed_put(&knobs, &[])
                .header("x-amz-copy-source", &e.source())
        },
        code: "AuthorizationHeaderMalformed",
        fragment: "algorithm \"aws4-hmac-sha256\" is not accepted",
    },
    Row {
        what: "a lower-case X-Amz-Algorithm",
        build: |e| {
            let knobs = Knobs {
                algorithm: "aws4-hmac-sha256".into(),
                ..e.knobs()
            };
            e.presigned_get(&knobs)
        },
        code: "AuthorizationQueryParametersError",
        fragment: "X-Amz-Algorithm \"aws4-hmac-sha256\" is not accepted",
    },
    Row {
        what: "a header signature scoped to service sts",
        build: |e| {
            let knobs = Knobs {
                service: "sts".into(),
                ..e.knobs()
            };
            e.signed_put(&knobs, &[])
        },
        code: "AuthorizationHeaderMalformed",
        fragment: "the service 'sts' in the credential scope is wrong; expecting 's3'",
    },
    Row {
        what: "a presigned URL scoped to service sts",
        build: |e| {
            let knobs = Knobs {
                service: "sts".into(),
                ..e.knobs()
            };
            e.presigned_get(&knobs)
        },
        code: "AuthorizationQueryParametersError",
        fragment: "the service 'sts' in the credential scope is wrong",
    },
    Row {
        what: "X-Amz-SignedHeaders twice, the second encoded",
        build: |e| {
            e.presigned_put(&e.knobs())
                .param("X-Amz-Signed%48eaders", "host%3Bx-amz-copy-source")
                .header("x-amz-copy-source", &e.source())
        },
        code: "AuthorizationQueryParametersError",
        fragment: "query parameter X-Amz-SignedHeaders appears more than once (as X-Amz-SignedHeaders and X-Amz-Signed%48eaders)",
    },
    Row {
        what: "X-Amz-Signature twice",
        build: |e| {
            e.presigned_put(&e.knobs())
                .param("X-Amz-Signature", &"0".repeat(64))
        },
        code: "AuthorizationQueryParametersError",
        fragment: "query parameter X-Amz-Signature appears more than once",
    },
    Row {
        what: "x-amz-signedheaders beside X-Amz-SignedHeaders",
        build: |e| {
            e.presigned_put(&e.knobs())
                .param("x-amz-signedheaders", "host%3Bx-amz-acl")
        },
        code: "AuthorizationQueryParametersError",
        fragment: "query parameter x-amz-signedheaders is not X-Amz-SignedHeaders",
    },
    Row {
        what: "header auth with a signed, encoded X-Amz-Cred%65ntial for another region",
        build: |e| {
            let other = encode(&format!(
                "{}/20260101/eu-west-1/s3/aws4_request",
                e.cred.access_key_id
            ));
            e.signed(
                &e.knobs(),
                "PUT",
                "in/new.txt",
                &[("X-Amz-Cred%65ntial", &other)],
                &[],
            )
        },
        code: "InvalidArgument",
        fragment: "only one auth mechanism is allowed: both the Authorization header and query parameter X-Amz-Credential were sent",
    },
    Row {
        what: "a presigned URL with an Authorization header too",
        build: |e| {
            let other = e.signed_put(&e.knobs(), &[]);
            let authorization = other.headers.last().unwrap().1.clone();
            e.presigned_put(&e.knobs())
                .header("authorization", &authorization)
        },
        code: "InvalidArgument",
        fragment: "only one auth mechanism is allowed",
    },
    Row {
        what: "two Authorization headers",
        build: |e| {
            let signed = e.signed_put(&e.knobs(), &[]);
            let authorization = signed.headers.last().unwrap().1.clone();
            signed.header("authorization", &authorization)
        },
        code: "InvalidArgument",
        fragment: "header authorization appears more than once",
    },
    Row {
        what: "the session token as a header and as a query parameter",
        build: |e| {
            e.presigned_put(&e.knobs())
                .header("x-amz-security-token", e.cred.session_token.expose())
        },
        code: "InvalidArgument",
        fragment: "the session token was sent both as header x-amz-security-token and as query parameter X-Amz-Security-Token",
    },
];

/// Correctly signed headers whose effect reaches past the grant, a value for each, and why
/// the client is told it is refused. Each goes on a PUT of `in/new.txt`, or on a DELETE of
/// `in/secret.txt` for the one that only deletes read.
const OUTSIDE_THE_MODEL: &[(&str, &str, &str)] = &[
    ("x-amz-acl", "public-read", GRANTS),
    (
        "x-amz-grant-read",
        "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"",
        GRANTS,
    ),
    ("x-amz-grant-full-control", "id=mallory", GRANTS),
    ("x-amz-grant-read-acp", "id=mallory", GRANTS),
    ("x-amz-grant-write-acp", "id=mallory", GRANTS),
    ("x-amz-object-lock-mode", "COMPLIANCE", LOCK),
    (
        "x-amz-object-lock-retain-until-date",
        "2099-01-01T00:00:00Z",
        LOCK,
    ),
    ("x-amz-object-lock-legal-hold", "ON", LOCK),
    ("x-amz-bypass-governance-retention", "true", LOCK),
    (
        "x-amz-website-redirect-location",
        "/elsewhere",
        "website redirects belong to the backend's operator",
    ),
    (
        "x-amz-server-side-encryption-aws-kms-key-id",
        "arn:aws:kms:us-east-1:111122223333:key/mallory",
        "KMS keys are the backend operator's",
    ),
    (
        "x-amz-write-offset-bytes",
        "0",
        "it is not one of the headers Sesame forwards to the backend",
    ),
];

const GRANTS: &str = "access is given by Sesame grants, never by ACLs";
const LOCK: &str = "object lock and retention belong to the backend's operator";

async fn query_and_header_parsing_attacks_are_refused(kind: BackendKind) {
    let (ctx, env) = setup(kind).await;
    let attacks = PARSING.iter().map(|row| Attack {
        what: row.what.to_owned(),
        request: (row.build)(&env),
        body: b"attack".to_vec(),
        code: row.code,
        fragment: row.fragment.to_owned(),
    });
    refuse_all(&ctx, &Watched::buckets(&[&env.bucket]), attacks).await;
}

async fn headers_outside_the_model_are_refused_by_name(kind: BackendKind) {
    let (ctx, env) = setup(kind).await;
    let attacks = OUTSIDE_THE_MODEL.iter().map(|(name, value, why)| {
        let (method, key) = match *name {
            "x-amz-bypass-governance-retention" => ("DELETE", "in/secret.txt"),
            _ => ("PUT", "in/new.txt"),
        };
        Attack {
            what: format!("{method} {key} with {name}: {value}, signed"),
            request: env.signed(&env.knobs(), method, key, &[], &[(name, value)]),
            body: b"attack".to_vec(),
            code: "AccessDenied",
            fragment: format!("header {name} is not accepted by this gateway: {why}"),
        }
    });
    refuse_all(&ctx, &Watched::buckets(&[&env.bucket]), attacks).await;
}

/// Requests that must keep working: the same encodings, with nothing unsigned, are what
/// s3s verifies, and the one parse agrees with it.
async fn the_one_parse_reads_what_s3s_reads(kind: BackendKind) {
    let (ctx, env) = setup(kind).await;
    let addr = ctx.gateway.s3_addr;

    let got = env
        .presigned_get(&env.knobs())
        .rename("X-Amz-SignedHeaders", "X-Amz-Signed%48eaders")
        .rename("X-Amz-Expires", "X-Amz-%45xpires")
        .rename("X-Amz-Credential", "X-Amz-Cred%65ntial")
        .send(addr, b"")
        .await;
    assert_eq!(
        got.status, 200,
        "encoded names, nothing else changed: {got:#?}"
    );
    assert!(got.body.contains("secret"), "{got:#?}");

    // The relay sees what is let through, so its silence on refused rows means something.
    assert!(
        ctx.take_backend_requests()
            .iter()
            .any(|r| r.path.ends_with("/in/secret.txt")),
        "the relay saw the allowed GET"
    );

    let put = env
        .signed_put(&env.knobs(), &[("x-amz-meta-owner", "alice")])
        .send(addr, b"signed by the test")
        .await;
    assert_eq!(put.status, 200, "the test's signer is right: {put:#?}");
    assert_eq!(
        ctx.backend_object(&env.bucket, "in/new.txt").await.unwrap(),
        b"signed by the test"
    );

    let copy = env
        .signed(
            &env.knobs(),
            "PUT",
            "in/copy.txt",
            &[],
            &[("x-amz-copy-source", &env.source())],
        )
        .send(addr, b"")
        .await;
    assert_eq!(
        copy.status, 200,
        "a signed copy source is a copy: {copy:#?}"
    );
    assert_eq!(
        ctx.backend_object(&env.bucket, "in/copy.txt")
            .await
            .unwrap(),
        b"secret"
    );
}

async fn setup(kind: BackendKind) -> (Ctx, Env) {
    let ctx = Ctx::start_with_relay(kind).await;
    let bucket = ctx.bucket_with(&[("in/secret.txt", b"secret")]).await;
    let cred = ctx.grant(&format!("s3://{bucket}/in/"), &[Read, Write, Delete]);
    let env = Env {
        cred,
        bucket,
        host: ctx.gateway.s3_addr.to_string(),
    };
    (ctx, env)
}
