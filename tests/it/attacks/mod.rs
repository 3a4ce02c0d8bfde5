//! The adversarial suite: attacks as tables, one module per class, each row asserting the
//! exact S3 error the attacker gets, that the backend's objects are unchanged, that the
//! refusal is in the trail ([`refusal_in_trail`]), and, through the recording relay
//! ([`Ctx::start_with_relay`]), that the refused request never reached the backend
//! ([`assert_never_reached`]). Every class runs on both backends.
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
//! - `api`: control-API authorisation: every route asked by every role (nobody, a forged
//!   token, the admin, requester, approver, auditor, a stranger), refusals changing nothing.
//!
//! Classes that belong here as they are written (issue 8): query and header parsing (encoded
//! names, duplicates, case, algorithm, service, region, expiry); unsigned and forwarded
//! headers (`tests/it/attacks_parsing.rs`); copy sources; listings; delete batches; share links;
//! resource bounds (slow, huge, many; `tests/it/listen.rs`).

mod api;
mod corrupt;
mod keys;
mod uploads;

use aws_sdk_s3::error::ProvideErrorMetadata;

use crate::harness::Ctx;

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
