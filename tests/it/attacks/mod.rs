//! The adversarial suite: attacks as tables, one module per class, each row a raw request
//! (signed by the test where it needs a signature) asserting the exact S3 error the
//! attacker gets, that the backend's objects are unchanged, that the refusal is in the
//! trail, and, through the recording relay ([`Ctx::start_with_relay`]), that the refused
//! request never reached the backend ([`assert_never_reached`]). [`refuse_all`] runs a
//! table of such rows and finds each refusal in the trail by the request id the attacker
//! was answered with. Every class runs on both backends.
//!
//! - `uploads`: multipart upload ids bound to their bucket, key and starter: another user's
//!   id, a made-up id, one's own id on another key, for every operation that names an upload;
//!   `ListMultipartUploads` narrowed to the caller's scope.
//! - `corrupt`: uploads whose body disagrees with a digest they declare (`Content-MD5`, the
//!   signed `x-amz-content-sha256`, a middle or the final aws-chunked chunk signature,
//!   `x-amz-decoded-content-length` larger or smaller than the body), for `PutObject` and
//!   `UploadPart`: the S3 error S3 gives, the old object or part untouched, the cut in the
//!   trail.
//! - `keys`: generated keys with every encoding (dot segments, encoded slashes, sibling
//!   prefixes, non-ASCII) read and written under a prefix grant, checked against the key the
//!   recording relay sees the backend asked for.
//! - `copy`: `CopyObject` and `UploadPartCopy` sources outside the grant in every encoding
//!   (encoded slashes, dot segments, double encoding, leading slash, `?versionId=`, no
//!   bucket, another bucket, non-ASCII, empty, twice), unsigned or swapped after signing,
//!   and copy-source ranges S3 refuses for their form; sources inside the grant, however
//!   written (a folder too), reach the backend as that one key, read from the
//!   `x-amz-copy-source` the relay logs; a property test over generated sources.
//! - `listings`: the four listings with no prefix, a prefix outside, beside, encoded, doubly
//!   encoded, with a leading slash or twice, by delimiter, url-encoded, `max-keys` that is no
//!   count: refused before the backend; markers, `start-after` and tokens outside, dot
//!   segments and counts of 0, 1, -1 and 2^31-1 let through name nothing outside the scope;
//!   a property test over generated `ListObjects` and `ListObjectsV2` prefixes (keys as
//!   `keys` generates them, cut short, doubly encoded, `+` for a space, absent or empty),
//!   markers, `start-after`, delimiters and `encoding-type=url`: let through only when the
//!   prefix the relay logs the backend asked for is the one the request decodes to and lies
//!   inside the scope, and no answer names a key outside it.
//! - `deletes`: `DeleteObjects` batches with one key outside among many, dot segments (also
//!   as XML character references), a leading slash, malformed XML, 1001 keys, no digest, a
//!   broken or another batch's `Content-MD5` or CRC32: refused whole; batches inside
//!   (duplicates, escaped names, percent signs) delete exactly their keys.
//! - `shares`: share-link tokens tampered with (MAC changed, cut, borrowed; capitals,
//!   encoding, path tricks), links revoked, expired, used up or whose grant ended, methods
//!   other than GET and HEAD, tokens on paths that are no link's; uses let through (HEAD,
//!   queries, ranges of every kind, failed conditions) fetch only the link's own object and
//!   spend a download only when one was sent; no token is ever in the trail in clear.
//! - `api`: control-API authorisation: every route asked by every role (nobody, a forged
//!   token, the admin, requester, approver, auditor, a stranger), refusals changing nothing.
//!
//! Elsewhere: query and header parsing (encoded names, duplicates, case, algorithm, service,
//! region, expiry) and unsigned and forwarded headers in `tests/it/attacks_parsing.rs`;
//! resource bounds (slow, huge, many) in `tests/it/listen.rs`; folder keys and markers on
//! the directory backend in `tests/it/directory.rs`.

mod api;
mod copy;
mod corrupt;
mod deletes;
mod keys;
mod listings;
mod shares;
mod uploads;

use std::collections::BTreeMap;

use aws_sdk_s3::error::ProvideErrorMetadata;

use sesame::grant::IssuedCredential;

use sesame::model::Action;

use crate::harness::{BackendKind, Ctx, run};
use crate::relay::Forwarded;
use crate::sigv4::{Answer, Signed};

/// The S3 error code and message of a failed client call.
pub fn code_and_message(e: &impl ProvideErrorMetadata) -> (String, String) {
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

/// Asserts that nothing reached the backend since the relay's log was last taken.
#[track_caller]
pub fn assert_never_reached(ctx: &Ctx, what: &str) {
    let forwarded = ctx.take_backend_requests();
    assert!(
        forwarded.is_empty(),
        "{what} reached the backend: {forwarded:#?}"
    );
}

/// Asserts that the newest refusal in the trail is `op` by `principal`, refused with `code`
/// and a message containing `fragment`, whether it was refused at the decision or after
/// parsing (then the `s3.denied` record points at its decision).
#[track_caller]
pub fn refusal_in_trail(ctx: &Ctx, op: &str, principal: &str, code: &str, fragment: &str) {
    let trail = crate::audit::trail(ctx);
    let refused = trail
        .iter()
        .rev()
        .find(|r| {
            let body = &r["body"];
            body["kind"] == "s3.denied" || (body["kind"] == "s3" && body["decision"] == "denied")
        })
        .unwrap_or_else(|| panic!("no refusal in the trail for {op}"));
    let body = &refused["body"];
    let decision = if body["kind"] == "s3.denied" {
        trail
            .iter()
            .find(|r| r["seq"] == body["decision"])
            .map_or_else(
                || panic!("the decision of {body} is not in the trail"),
                |r| &r["body"],
            )
    } else {
        body
    };
    assert_eq!(decision["op"], op, "{body}");
    assert_eq!(decision["principal"], principal, "{body}");
    assert_eq!(body["error_code"], code, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(fragment), "{fragment:?} not in {body}");
}

/// One attack as a raw request (signed by the test, so no client normalises it away), and
/// what the attacker must be told.
pub struct Attack {
    pub what: String,
    pub request: Signed,
    pub body: Vec<u8>,
    pub code: &'static str,
    pub fragment: String,
}

/// What the backend holds that no refused request may change: every object (with its
/// content) of these buckets, and the parts of these uploads (bucket, key, upload id).
#[derive(Default)]
pub struct Watched {
    pub buckets: Vec<String>,
    pub uploads: Vec<(String, String, String)>,
}

impl Watched {
    pub fn buckets(buckets: &[&str]) -> Watched {
        Watched {
            buckets: buckets.iter().map(|b| (*b).to_owned()).collect(),
            uploads: Vec::new(),
        }
    }

    /// The state as the backend holds it, one line per object or part.
    pub async fn state(&self, ctx: &Ctx) -> BTreeMap<String, Vec<u8>> {
        let mut state = BTreeMap::new();
        for bucket in &self.buckets {
            for (key, body) in objects(ctx, bucket).await {
                state.insert(format!("object {bucket}/{key}"), body);
            }
        }
        for (bucket, key, id) in &self.uploads {
            let parts = ctx
                .admin
                .list_parts()
                .bucket(bucket)
                .key(key)
                .upload_id(id)
                .send()
                .await
                .unwrap_or_else(|e| panic!("list the parts of {key} on the backend: {e:?}"));
            for p in parts.parts() {
                let part = format!(
                    "part {bucket}/{key} {} {}",
                    p.part_number().unwrap_or(0),
                    p.e_tag().unwrap_or("")
                );
                state.insert(part, p.size().unwrap_or(0).to_be_bytes().to_vec());
            }
        }
        state
    }
}

/// Sends every attack; each must be refused as its row says, never reach the backend (the
/// recording relay saw nothing), change nothing it holds, and leave a refusal with the same
/// code and message in the trail, found by the request id the attacker was answered with.
/// Every row is tried and every failure listed, so a regression shows the whole class.
pub async fn refuse_all(ctx: &Ctx, watched: &Watched, attacks: impl IntoIterator<Item = Attack>) {
    let mut failures = Vec::new();
    let mut sent = Vec::new();
    for row in attacks {
        let before = watched.state(ctx).await;
        ctx.take_backend_requests();
        let answer = row.request.send(ctx.gateway.s3_addr, &row.body).await;
        let forwarded = ctx.take_backend_requests();
        if !forwarded.is_empty() {
            failures.push(format!("{}: reached the backend: {forwarded:?}", row.what));
        }
        let (code, message) = (answer.code(), answer.message());
        if code != Some(row.code) || !message.contains(&row.fragment) {
            failures.push(format!(
                "{}: answered {} {code:?} {message:?}, expected {} {:?}",
                row.what, answer.status, row.code, row.fragment
            ));
        }
        if watched.state(ctx).await != before {
            failures.push(format!("{}: the backend's objects changed", row.what));
        }
        let id = answer.header("x-amz-request-id").unwrap_or_default();
        sent.push((row, id.to_owned()));
    }
    let trail = refusals(ctx);
    for (row, id) in sent {
        let recorded: Vec<_> = trail
            .iter()
            .filter(|r| r["request_id"] == id.as_str())
            .collect();
        let matches = recorded.iter().any(|r| {
            r["error_code"] == row.code
                && r["error"]
                    .as_str()
                    .is_some_and(|e| e.contains(&row.fragment))
        });
        if !matches {
            failures.push(format!(
                "{}: the trail holds {recorded:?} for request {id}",
                row.what
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every object in the bucket with its content, as the backend holds it.
pub async fn objects(ctx: &Ctx, bucket: &str) -> BTreeMap<String, Vec<u8>> {
    let listed = ctx
        .admin
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list the backend");
    let mut objects = BTreeMap::new();
    for object in listed.contents() {
        let key = object.key().unwrap_or_default().to_owned();
        let body = ctx.backend_object(bucket, &key).await.unwrap_or_default();
        objects.insert(key, body);
    }
    objects
}

/// The trail's refusals: requests refused at the front door, at the decision, after the
/// parse (`s3.denied`), uses of share links denied, and requests authorised and then
/// refused for their form (their completion says with what error).
pub fn refusals(ctx: &Ctx) -> Vec<serde_json::Value> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.args(["audit", "--data-dir"])
        .arg(ctx.dir.path().join("gateway"))
        .args(["--format", "json"]);
    run(cmd)
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["body"].clone())
        .filter(|b| {
            let refused = b["decision"] == "refused" || b["decision"] == "denied";
            (matches!(b["kind"].as_str(), Some("s3" | "share")) && refused)
                || b["kind"] == "s3.denied"
                || (b["kind"] == "s3.complete" && b["error_code"].is_string())
        })
        .collect()
}

/// Every byte of `s` as `%XX`.
pub fn every_byte_encoded(s: &str) -> String {
    use std::fmt::Write as _;
    s.bytes().fold(String::new(), |mut out, b| {
        let _ = write!(out, "%{b:02X}");
        out
    })
}

/// A gateway behind the recording relay, a bucket `b` holding some objects, and alice's
/// grant on a prefix of it: what every class starts from.
pub struct Granted {
    pub ctx: Ctx,
    pub b: String,
    pub cred: IssuedCredential,
}

impl Granted {
    pub async fn start(
        kind: BackendKind,
        objects: &[(&str, &[u8])],
        prefix: &str,
        actions: &[Action],
    ) -> Granted {
        let ctx = Ctx::start_with_relay(kind).await;
        let b = ctx.bucket_with(objects).await;
        let cred = ctx.grant(&format!("s3://{b}/{prefix}"), actions);
        Granted { ctx, b, cred }
    }

    /// The `host` header of requests to the gateway.
    pub fn host(&self) -> String {
        self.ctx.gateway.s3_addr.to_string()
    }
}

impl Attack {
    /// An attack with no body.
    pub fn new(what: String, request: Signed, code: &'static str, fragment: String) -> Attack {
        Attack {
            what,
            request,
            body: Vec::new(),
            code,
            fragment,
        }
    }
}

/// A property run over generated requests: how many were let through and refused, and every
/// request that broke the property (a resource outside the grant asked of the backend, or one
/// inside it refused).
#[derive(Default)]
pub struct Tally {
    passed: usize,
    refused: usize,
    wrong: Vec<String>,
}

impl Tally {
    /// One request (`what`), what it was answered, what the relay forwarded, the resources
    /// the backend was asked for in it (each described, and whether it lies inside the
    /// grant), and whether the request meant a resource inside the grant.
    pub fn add(
        &mut self,
        what: &str,
        answer: &Answer,
        forwarded: &[Forwarded],
        asked: &[(String, bool)],
        meant_inside: bool,
    ) {
        if forwarded.is_empty() {
            self.refused += 1;
            if meant_inside {
                self.wrong.push(format!(
                    "{what}: a request inside the grant was refused: {} {:?} {}",
                    answer.status,
                    answer.code(),
                    answer.message()
                ));
            }
        } else {
            self.passed += 1;
        }
        if let Some((outside, _)) = asked.iter().find(|(_, inside)| !inside) {
            self.wrong.push(format!(
                "{what} ({}) asked the backend for {outside}",
                answer.status
            ));
        }
        if forwarded.len() != asked.len() {
            self.wrong.push(format!(
                "{what} reached the backend otherwise: {forwarded:?}"
            ));
        }
    }

    /// A way `what` broke the property that [`Tally::add`] cannot see (a name outside the
    /// grant in what a listing answered, say).
    pub fn broke(&mut self, what: &str, how: &str) {
        self.wrong.push(format!("{what}: {how}"));
    }

    /// The property held for every request, and both sides of it were exercised.
    #[track_caller]
    pub fn assert_held(&self) {
        assert!(self.wrong.is_empty(), "{}", self.wrong.join("\n"));
        assert!(
            self.passed > 10 && self.refused > 10,
            "{} let through, {} refused",
            self.passed,
            self.refused
        );
    }
}
