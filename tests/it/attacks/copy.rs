//! Copy sources (issue 8): `CopyObject` and `UploadPartCopy` under a grant on `team-a/` that
//! reads and writes, naming a source outside the grant with every encoding an attacker has
//! (encoded slashes, dot segments, double encoding, a leading slash, `?versionId=`, no bucket,
//! another bucket, non-ASCII, nothing at all), or an `x-amz-copy-source` nobody signed. Each
//! refused row gets the exact S3 error, changes nothing, is in the trail and never reaches the
//! backend; each row let through asks the backend (as the recording relay sees it) for one
//! key inside the grant. A property test does the same for generated sources.

use proptest::strategy::Strategy;
use sesame::grant::IssuedCredential;
use sesame::model::Action::{List, Read, Write};

use super::keys::{inside_the_grant, raw_key, samples};
use super::{Attack, Granted, Tally, Watched, every_byte_encoded, refuse_all};
use crate::harness::{BackendKind, Ctx};
use crate::relay::Forwarded;
use crate::sigv4::{Knobs, Signed};
use Op::{CopyObject, UploadPartCopy};

crate::on_every_backend!(
    copy_sources_outside_the_grant_are_refused,
    copy_sources_inside_the_grant_reach_only_that_key,
    no_encoding_of_a_copy_source_reaches_outside_the_grant,
);

const SOURCE: &str = "team-a/src.bin";
const SECRET: &str = "team-a-secrets/x.bin";
const ACCENTED: &str = "team-a/é.bin";
const DESTINATION: &str = "team-a/dst.bin";
const PARTS: &str = "team-a/parts.bin";

/// Larger than Garage keeps inline, which it will not copy a part from.
fn content(tag: u8) -> Vec<u8> {
    (0..8192u32).map(|i| (i % 251) as u8 ^ tag).collect()
}

/// The operations that name a copy source.
#[derive(Debug, Clone, Copy)]
enum Op {
    CopyObject,
    UploadPartCopy,
}

/// A bucket `b` holding a source inside the grant and a secret outside it, another bucket
/// `o` holding the same key, and alice's grant on `b/team-a/` with an upload of her own.
struct Env {
    ctx: Ctx,
    b: String,
    o: String,
    cred: IssuedCredential,
    upload_id: String,
}

impl Env {
    async fn start(kind: BackendKind) -> Env {
        let objects: [(&str, &[u8]); 4] = [
            (SOURCE, &content(1)),
            (ACCENTED, &content(2)),
            (SECRET, &content(3)),
            ("team-a/folder/inside.bin", b"in a folder"),
        ];
        let Granted { ctx, b, cred } =
            Granted::start(kind, &objects, "team-a/", &[Read, Write, List]).await;
        let o = ctx.bucket_with(&[(SOURCE, &content(4))]).await;
        let upload_id = ctx
            .sdk(&cred)
            .create_multipart_upload()
            .bucket(&b)
            .key(PARTS)
            .send()
            .await
            .expect("alice starts an upload")
            .upload_id
            .expect("an upload id");
        Env {
            ctx,
            b,
            o,
            cred,
            upload_id,
        }
    }

    /// `{b}` and `{o}` in a row, as this run's bucket names.
    fn fill(&self, template: &str) -> String {
        template.replace("{b}", &self.b).replace("{o}", &self.o)
    }

    fn host(&self) -> String {
        self.ctx.gateway.s3_addr.to_string()
    }

    /// The request line of `op`: a copy to `team-a/dst.bin`, or part 1 of alice's upload.
    fn target(&self, op: Op) -> (String, Vec<(&str, &str)>) {
        match op {
            CopyObject => (format!("/{}/{DESTINATION}", self.b), Vec::new()),
            UploadPartCopy => (
                format!("/{}/{PARTS}", self.b),
                vec![("partNumber", "1"), ("uploadId", self.upload_id.as_str())],
            ),
        }
    }

    /// `op` with this raw `x-amz-copy-source` (and `extra` headers), every header signed.
    fn signed(&self, op: Op, sources: &[&str], extra: &[(&str, &str)]) -> Signed {
        let (path, query) = self.target(op);
        let mut headers = vec![("host".to_owned(), self.host())];
        for source in sources {
            headers.push(("x-amz-copy-source".to_owned(), (*source).to_owned()));
        }
        headers.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Knobs::new(&self.cred).sign_header("PUT", &path, &query, headers, "UNSIGNED-PAYLOAD")
    }

    /// `op` as a presigned URL, which signs only `host`.
    fn presigned(&self, op: Op) -> Signed {
        let (path, query) = self.target(op);
        Knobs::new(&self.cred).presign("PUT", &path, &query, &self.host())
    }

    fn watched(&self) -> Watched {
        Watched {
            buckets: vec![self.b.clone(), self.o.clone()],
            uploads: vec![(self.b.clone(), PARTS.to_owned(), self.upload_id.clone())],
        }
    }
}

const NOT_COVERED: &str = "does not cover s3://{b}/team-a-secrets/x.bin for read";
const DOT_SEGMENT: &str = "has a '.' or '..' segment, which Sesame refuses";
const NOT_A_SOURCE: &str = "is not a copy source: Copy Source must mention the source bucket and key: sourcebucket/sourcekey";

/// Sources outside the grant, or no source at all: (what the attacker tries, the raw
/// `x-amz-copy-source`, the S3 error code, a fragment of its message).
#[rustfmt::skip]
const OUTSIDE: &[(&str, &str, &str, &str)] = &[
    ("the secret prefix beside the grant",  "{b}/team-a-secrets/x.bin",                    "AccessDenied", NOT_COVERED),
    ("its slash percent-encoded",           "{b}/team-a-secrets%2Fx.bin",                  "AccessDenied", NOT_COVERED),
    ("bucket and key joined by %2F",        "{b}%2Fteam-a-secrets%2Fx.bin",                "AccessDenied", NOT_COVERED),
    ("a leading slash",                     "/{b}/team-a-secrets/x.bin",                   "AccessDenied", NOT_COVERED),
    ("with a version id",                   "{b}/team-a-secrets/x.bin?versionId=null",     "AccessDenied", NOT_COVERED),
    ("climbing out with ..",                "{b}/team-a/../team-a-secrets/x.bin",          "AccessDenied", DOT_SEGMENT),
    ("climbing out, slashes encoded",       "{b}/team-a%2F..%2Fteam-a-secrets%2Fx.bin",    "AccessDenied", DOT_SEGMENT),
    ("climbing out, dots encoded",          "{b}/team-a/%2E%2E/team-a-secrets/x.bin",      "AccessDenied", DOT_SEGMENT),
    ("a . segment",                         "{b}/team-a/./src.bin",                        "AccessDenied", DOT_SEGMENT),
    ("climbing out of a fake version id",   "{b}/team-a/x%3FversionId=/../../team-a-secrets/x.bin", "AccessDenied", DOT_SEGMENT),
    ("double-encoded, read as written",     "{b}/team-a%252F..%252Fteam-a-secrets%252Fx.bin", "AccessDenied", "does not cover s3://{b}/team-a%2F..%2Fteam-a-secrets%2Fx.bin for read"),
    ("?versionId= encoded into the key",    "{b}/team-a-secrets/x.bin%3FversionId%3Dnull", "AccessDenied", "does not cover s3://{b}/team-a-secrets/x.bin?versionId=null for read"),
    ("non-ASCII outside, encoded",          "{b}/team-a-secrets/%C3%A9.bin",               "AccessDenied", "does not cover s3://{b}/team-a-secrets/é.bin for read"),
    ("no bucket: the prefix read as one",   "team-a/src.bin",                              "AccessDenied", "does not cover s3://team-a/src.bin for read"),
    ("the same key in another bucket",      "{o}/team-a/src.bin",                          "AccessDenied", "does not cover s3://{o}/team-a/src.bin for read"),
    ("an access point ARN",                 "arn:aws:s3:us-east-1:123456789012:accesspoint/ap1/object/team-a/src.bin", "AccessDenied", "access points and outposts are refused"),
    ("a bucket and no key",                 "{b}",                                         "InvalidArgument", NOT_A_SOURCE),
    ("a bucket, a slash and no key",        "{b}/",                                        "InvalidArgument", NOT_A_SOURCE),
    ("two slashes before the bucket",       "//{b}/team-a/src.bin",                        "InvalidArgument", NOT_A_SOURCE),
    ("a bucket name no bucket can have",    "B_b/team-a/src.bin",                          "InvalidArgument", NOT_A_SOURCE),
    ("an empty copy source",                "",                                            "InvalidArgument", NOT_A_SOURCE),
    ("bytes that decode to no UTF-8",       "{b}/team-a/%FF.bin",                          "InvalidArgument", "x-amz-copy-source must be UTF-8, percent-encoded"),
    ("raw non-ASCII bytes",                 "{b}/team-a/é.bin",                            "InvalidArgument", "x-amz-copy-source must be UTF-8, percent-encoded"),
];

async fn copy_sources_outside_the_grant_are_refused(kind: BackendKind) {
    let env = Env::start(kind).await;
    let mut attacks = Vec::new();
    for op in [CopyObject, UploadPartCopy] {
        for (what, source, code, fragment) in OUTSIDE {
            let source = env.fill(source);
            attacks.push(Attack::new(
                format!("{op:?} from {what}: {source:?}"),
                env.signed(op, &[&source], &[]),
                code,
                env.fill(fragment),
            ));
        }
        let inside = env.fill("{b}/team-a/src.bin");
        let secret = env.fill("{b}/team-a-secrets/x.bin");
        let every_byte = every_byte_encoded(&secret);
        attacks.extend([
            Attack::new(
                format!("{op:?} from every byte percent-encoded: {every_byte}"),
                env.signed(op, &[&every_byte], &[]),
                "AccessDenied",
                env.fill(NOT_COVERED),
            ),
            Attack::new(
                format!("{op:?} naming two copy sources"),
                env.signed(op, &[&inside, &secret], &[]),
                "InvalidArgument",
                "header x-amz-copy-source appears more than once".into(),
            ),
            Attack::new(
                format!("{op:?} presigned, with an unsigned copy source outside"),
                env.presigned(op).header("x-amz-copy-source", &secret),
                "AccessDenied",
                "header x-amz-copy-source is not signed".into(),
            ),
            Attack::new(
                format!("{op:?} presigned, with an unsigned copy source inside"),
                env.presigned(op).header("x-amz-copy-source", &inside),
                "AccessDenied",
                "header x-amz-copy-source is not signed".into(),
            ),
            Attack::new(
                format!("{op:?} signed, then a copy source added"),
                env.signed(op, &[], &[])
                    .header("x-amz-copy-source", &secret),
                "AccessDenied",
                "header x-amz-copy-source is not signed".into(),
            ),
            Attack::new(
                format!("{op:?} signed, its copy source swapped after signing"),
                env.signed(op, &[&inside], &[]).edit(
                    "x-amz-copy-source",
                    "team-a/src.bin",
                    "team-a-secrets/x.bin",
                ),
                "SignatureDoesNotMatch",
                "nothing changed the request after it was signed".into(),
            ),
        ]);
    }
    for (what, range) in RANGES {
        attacks.push(Attack::new(
            format!("UploadPartCopy with {what}: {range}"),
            env.signed(
                UploadPartCopy,
                &[&env.fill("{b}/team-a/src.bin")],
                &[("x-amz-copy-source-range", range)],
            ),
            "InvalidArgument",
            "x-amz-copy-source-range must be bytes=first-last".into(),
        ));
    }
    refuse_all(&env.ctx, &env.watched(), attacks).await;
}

/// Copy-source ranges S3 refuses for their form, whatever the object's size.
#[rustfmt::skip]
const RANGES: &[(&str, &str)] = &[
    ("a suffix range",             "bytes=-100"),
    ("an open-ended range",        "bytes=100-"),
    ("two ranges",                 "bytes=0-1,4-5"),
    ("last before first",          "bytes=50-10"),
    ("another unit",               "items=0-1"),
    ("no numbers",                 "bytes=a-b"),
    ("a negative first byte",      "bytes=-5-10"),
    ("a first byte past u64",      "bytes=0-99999999999999999999999"),
];

/// What the backend did with a row let through.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// Copied the object at this key of `b`.
    Copied(&'static str),
    /// Answered this S3 error code, changing nothing.
    Backend(&'static str),
}

/// Sources inside the grant, however written: (what, the raw `x-amz-copy-source`, the key the
/// backend must be asked for, what it does).
#[rustfmt::skip]
const INSIDE: &[(&str, &str, &str, Outcome)] = &[
    ("the source as SDKs write it",       "{b}/team-a/src.bin",         SOURCE,  Outcome::Copied(SOURCE)),
    ("with a leading slash",              "/{b}/team-a/src.bin",        SOURCE,  Outcome::Copied(SOURCE)),
    ("its slash percent-encoded",         "{b}/team-a%2Fsrc.bin",       SOURCE,  Outcome::Copied(SOURCE)),
    ("bucket and key joined by %2F",      "{b}%2Fteam-a%2Fsrc.bin",     SOURCE,  Outcome::Copied(SOURCE)),
    ("a non-ASCII key, encoded",          "{b}/team-a/%C3%A9.bin",      ACCENTED, Outcome::Copied(ACCENTED)),
    ("double-encoded dots, read as written", "{b}/team-a/%252E%252E/team-a-secrets/x.bin", "team-a/%2E%2E/team-a-secrets/x.bin", Outcome::Backend("NoSuchKey")),
    ("a key that is not there",           "{b}/team-a/missing.bin",     "team-a/missing.bin", Outcome::Backend("NoSuchKey")),
    ("a folder, which is no object",      "{b}/team-a/folder/",         "team-a/folder/", Outcome::Backend("NoSuchKey")),
    ("a folder without its slash",        "{b}/team-a/folder",          "team-a/folder", Outcome::Backend("NoSuchKey")),
];

async fn copy_sources_inside_the_grant_reach_only_that_key(kind: BackendKind) {
    let env = Env::start(kind).await;
    let addr = env.ctx.gateway.s3_addr;
    let mut failures = Vec::new();
    for op in [CopyObject, UploadPartCopy] {
        for (what, source, asked, outcome) in INSIDE {
            let source = env.fill(source);
            let what = format!("{op:?} from {what}: {source:?}");
            let before = env.watched().state(&env.ctx).await;
            env.ctx.take_backend_requests();
            let answer = env.signed(op, &[&source], &[]).send(addr, b"").await;
            let forwarded = env.ctx.take_backend_requests();
            let sources: Vec<_> = forwarded.iter().filter_map(copied_from).collect();
            if sources != [(env.b.clone(), (*asked).to_owned())] {
                failures.push(format!("{what}: the backend was asked for {sources:?}"));
            }
            match outcome {
                Outcome::Copied(key) => {
                    let copied = match op {
                        CopyObject => {
                            env.ctx.backend_object(&env.b, DESTINATION).await
                                == env.ctx.backend_object(&env.b, key).await
                        }
                        UploadPartCopy => answered_etag(&answer) == etag(&env, key).await,
                    };
                    if answer.status != 200 || !copied {
                        failures.push(format!("{what}: {answer:?}, the copy holds other bytes"));
                    }
                }
                Outcome::Backend(code) => {
                    if answer.code() != Some(code) {
                        failures.push(format!("{what}: expected {code}, got {answer:?}"));
                    }
                    if env.watched().state(&env.ctx).await != before {
                        failures.push(format!("{what}: the backend's objects changed"));
                    }
                }
            }
        }
    }
    // Ranges of the form S3 takes reach the backend as sent; one past the end is its to refuse.
    let source = env.fill("{b}/team-a/src.bin");
    for (range, on_fs, on_garage) in IN_FORM {
        let expected = if kind == BackendKind::Fs {
            on_fs
        } else {
            on_garage
        };
        let range_header = [("x-amz-copy-source-range", *range)];
        let before = env.watched().state(&env.ctx).await;
        env.ctx.take_backend_requests();
        let answer = env
            .signed(UploadPartCopy, &[&source], &range_header)
            .send(addr, b"")
            .await;
        let forwarded = env.ctx.take_backend_requests();
        let sent: Vec<_> = forwarded
            .iter()
            .filter_map(|f| f.header("x-amz-copy-source-range"))
            .collect();
        if sent != [*range] {
            failures.push(format!("{range}: the backend was sent ranges {sent:?}"));
        }
        let whole = answered_etag(&answer) == etag(&env, SOURCE).await;
        let as_expected = match expected {
            Ranged::Whole => answer.status == 200 && whole,
            Ranged::Part => answer.status == 200 && !whole,
            Ranged::Refused(code) => answer.code() == Some(*code),
        };
        if !as_expected {
            failures.push(format!("{range}: expected {expected:?}, got {answer:?}"));
        }
        if matches!(expected, Ranged::Refused(_)) && env.watched().state(&env.ctx).await != before {
            failures.push(format!("{range}: the backend's objects changed"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What an `UploadPartCopy` with a range did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ranged {
    Whole,
    Part,
    Refused(&'static str),
}

/// Copy-source ranges of the form S3 takes, on the 8192 bytes of `team-a/src.bin`, and what
/// each backend does with them. S3 refuses a last byte past the end (`InvalidArgument`); Garage
/// copies up to the end instead: a difference of the backend's, inside the grant.
#[rustfmt::skip]
const IN_FORM: &[(&str, Ranged, Ranged)] = &[
    ("bytes=0-8191",    Ranged::Whole,                   Ranged::Whole),
    ("bytes=100-199",   Ranged::Part,                    Ranged::Part),
    ("bytes=0-8192",    Ranged::Refused("InvalidRange"), Ranged::Whole),
    ("bytes=9000-9001", Ranged::Refused("InvalidRange"), Ranged::Refused("InvalidRange")),
];

/// The `ETag` an answer carries (a copied part's, in its `CopyPartResult`).
fn answered_etag(answer: &crate::sigv4::Answer) -> Option<String> {
    let start = answer.body.find("<ETag>")? + "<ETag>".len();
    let end = answer.body[start..].find("</ETag>")?;
    let etag = answer.body[start..start + end].replace("&quot;", "\"");
    Some(etag.trim_matches('"').to_owned())
}

/// An object's `ETag`: the MD5 of its bytes, as a part copied from all of it has.
async fn etag(env: &Env, key: &str) -> Option<String> {
    let head = env
        .ctx
        .admin
        .head_object()
        .bucket(&env.b)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(head.e_tag()?.trim_matches('"').to_owned())
}

/// The source bucket and key a forwarded request asked the backend to copy from.
pub fn copied_from(forwarded: &Forwarded) -> Option<(String, String)> {
    source_of(forwarded.header("x-amz-copy-source")?)
}

/// The bucket and key of a raw `x-amz-copy-source`, read as S3 reads it: a `?versionId=`
/// suffix cut off, percent-decoded once, one leading slash dropped, split at the first slash.
fn source_of(raw: &str) -> Option<(String, String)> {
    let path = raw.split_once("?versionId=").map_or(raw, |(p, _)| p);
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned();
    let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
    let (bucket, key) = decoded.split_once('/')?;
    Some((bucket.to_owned(), key.to_owned()))
}

/// How the bucket is named before the key.
const BUCKETS: &[&str] = &["{b}/", "{b}/", "/{b}/", "{b}%2F", "{o}/", "", "%2F{b}/"];

/// Generated raw copy sources: a bucket form, then a key as `keys` generates them, some
/// double-encoded, some with a `?versionId=`.
fn raw_sources(env: &Env, count: usize) -> Vec<String> {
    let strategy = (
        proptest::sample::select(BUCKETS),
        raw_key(),
        proptest::bool::weighted(0.15),
        proptest::sample::select(&["", "", "", "?versionId=null", "?versionId=../x"][..]),
    )
        .prop_map(|(bucket, key, double, version)| {
            let key = if double { key.replace('%', "%25") } else { key };
            format!("{}{key}{version}", env.fill(bucket))
        });
    samples(&strategy, count)
}

async fn no_encoding_of_a_copy_source_reaches_outside_the_grant(kind: BackendKind) {
    let env = Env::start(kind).await;
    let addr = env.ctx.gateway.s3_addr;
    let mut tally = Tally::default();
    for raw in raw_sources(&env, 120) {
        for op in [CopyObject, UploadPartCopy] {
            env.ctx.take_backend_requests();
            let answer = env.signed(op, &[&raw], &[]).send(addr, b"").await;
            let forwarded = env.ctx.take_backend_requests();
            let inside = |(b, k): &(String, String)| *b == env.b && inside_the_grant(k);
            let asked: Vec<(String, bool)> = forwarded
                .iter()
                .filter_map(copied_from)
                .map(|source| {
                    (
                        format!("a copy of s3://{}/{}", source.0, source.1),
                        inside(&source),
                    )
                })
                .collect();
            let meant_inside = source_of(&raw).is_some_and(|source| inside(&source));
            tally.add(
                &format!("{op:?} {raw:?}"),
                &answer,
                &forwarded,
                &asked,
                meant_inside,
            );
        }
    }
    tally.assert_held();
    assert_eq!(
        env.ctx.backend_object(&env.b, SECRET).await,
        Some(content(3))
    );
}
