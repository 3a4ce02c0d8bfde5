//! Upload ids are bound to their key (issue 8, escape 1). Alice's grant covers
//! `team-a-secrets/`, Bob's only `team-a/`. Bob names Alice's upload id on a key of his own
//! scope (to publish her data at `team-a/stolen.bin`, write into her upload, destroy it or list
//! it), a made-up id, or his own id on another key. Every row is refused with the same
//! `NoSuchUpload`, changes nothing on the backend, is in the trail, and never reaches the
//! backend; afterwards both uploads still complete with their owners' data, across a restart
//! and under another grant of the same principal.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use sesame::model::Action::{List, Read, Write};

use super::{Watched, assert_never_reached, code_and_message, refusal_in_trail};
use crate::harness::{BackendKind, Ctx};
use Op::{Abort, Complete, ListParts, UploadPart, UploadPartCopy};
use Who::{Alice, Bob};
use Whose::{Alices, Bobs, MadeUp};

crate::on_every_backend!(
    another_users_upload_id_reaches_nothing,
    upload_listings_show_only_the_callers_scope
);

const SECRET_KEY: &str = "team-a-secrets/v.bin";
const ALICE_DATA: &[u8] = b"alice's secret numbers";
const BOB_KEY: &str = "team-a/mine.bin";
const BOB_DATA: &[u8] = b"bob's own upload";
const STOLEN_KEY: &str = "team-a/stolen.bin";
const OTHER_KEY: &str = "team-a/other.bin";
const ALICE_OTHER_KEY: &str = "team-a-secrets/w.bin";
const MADE_UP_ID: &str = "3b241101-e2bb-4255-8caf-4136c566a962";

/// Who sends a row's request.
#[derive(Debug, Clone, Copy)]
enum Who {
    Alice,
    Bob,
}

/// Whose upload id a row's request names.
#[derive(Debug, Clone, Copy)]
enum Whose {
    Alices,
    Bobs,
    /// An id nobody was given.
    MadeUp,
}

/// Every operation that names an upload id.
#[derive(Debug, Clone, Copy)]
enum Op {
    Complete,
    UploadPart,
    UploadPartCopy,
    Abort,
    ListParts,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Complete => "CompleteMultipartUpload",
            Op::UploadPart => "UploadPart",
            Op::UploadPartCopy => "UploadPartCopy",
            Op::Abort => "AbortMultipartUpload",
            Op::ListParts => "ListParts",
        }
    }
}

/// Sends `op` on `key` naming `upload_id`; a completion lists part 1 with `etag`, an upload
/// or copy of a part writes part 1 (copied from `team-a/src.bin`, inside Bob's scope).
async fn send(
    client: &Client,
    bucket: &str,
    op: Op,
    key: &str,
    upload_id: &str,
    etag: &str,
) -> Result<(), (String, String)> {
    match op {
        Op::Complete => client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                    .build(),
            )
            .send()
            .await
            .map(drop)
            .map_err(|e| code_and_message(&e)),
        Op::UploadPart => client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(1)
            .body(ByteStream::from_static(b"bob overwrites part 1"))
            .send()
            .await
            .map(drop)
            .map_err(|e| code_and_message(&e)),
        Op::UploadPartCopy => client
            .upload_part_copy()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(1)
            .copy_source(format!("{bucket}/team-a/src.bin"))
            .send()
            .await
            .map(drop)
            .map_err(|e| code_and_message(&e)),
        Op::Abort => client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| code_and_message(&e)),
        Op::ListParts => client
            .list_parts()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| code_and_message(&e)),
    }
}

async fn start_upload(client: &Client, bucket: &str, key: &str) -> String {
    client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create an upload for {key}: {e:?}"))
        .upload_id
        .expect("an upload id")
}

async fn upload_part_one(
    client: &Client,
    bucket: &str,
    key: &str,
    id: &str,
    data: &[u8],
) -> String {
    client
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload part 1 of {key}: {e:?}"))
        .e_tag
        .expect("an etag")
}

fn scope(bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{prefix}")
}

async fn another_users_upload_id_reaches_nothing(kind: BackendKind) {
    let ctx = Ctx::start_with_relay(kind).await;
    let b = ctx
        .bucket_with(&[("team-a/src.bin", b"bob's readable bytes")])
        .await;
    let rwl = [Read, List, Write];
    let alice = ctx.grant_to("alice", &scope(&b, "team-a-secrets/"), &rwl);
    let bob = ctx.grant_to("bob", &scope(&b, "team-a/"), &rwl);
    let (a, bb) = (ctx.sdk(&alice), ctx.sdk(&bob));
    let a_id = start_upload(&a, &b, SECRET_KEY).await;
    let a_etag = upload_part_one(&a, &b, SECRET_KEY, &a_id, ALICE_DATA).await;
    let b_id = start_upload(&bb, &b, BOB_KEY).await;
    let b_etag = upload_part_one(&bb, &b, BOB_KEY, &b_id, BOB_DATA).await;
    // What the backend holds: every object, and the parts of both uploads.
    let watched = Watched {
        buckets: vec![b.clone()],
        uploads: [(SECRET_KEY, &a_id), (BOB_KEY, &b_id)]
            .map(|(key, id)| (b.clone(), key.to_owned(), id.clone()))
            .to_vec(),
    };

    // (what the attacker tries, who sends it, the operation, the key named, whose upload id)
    #[rustfmt::skip]
    let rows = [
        ("publish alice's parts at bob's key",   Bob,   Complete,       STOLEN_KEY,      Alices),
        ("overwrite alice's part 1",             Bob,   UploadPart,     STOLEN_KEY,      Alices),
        ("copy into alice's part 1",             Bob,   UploadPartCopy, STOLEN_KEY,      Alices),
        ("destroy alice's upload",               Bob,   Abort,          STOLEN_KEY,      Alices),
        ("list alice's parts",                   Bob,   ListParts,      STOLEN_KEY,      Alices),
        ("complete a made-up id",                Bob,   Complete,       STOLEN_KEY,      MadeUp),
        ("write to a made-up id",                Bob,   UploadPart,     STOLEN_KEY,      MadeUp),
        ("list a made-up id",                    Bob,   ListParts,      STOLEN_KEY,      MadeUp),
        ("move bob's upload to another key",     Bob,   Complete,       OTHER_KEY,       Bobs),
        ("write bob's upload under another key", Bob,   UploadPart,     OTHER_KEY,       Bobs),
        ("abort bob's upload under another key", Bob,   Abort,          OTHER_KEY,       Bobs),
        ("move alice's upload inside her scope", Alice, Complete,       ALICE_OTHER_KEY, Alices),
    ];
    for (what, who, op, key, whose) in rows {
        let before = watched.state(&ctx).await;
        ctx.take_backend_requests();
        let (client, cred, principal) = match who {
            Alice => (&a, &alice, "alice"),
            Bob => (&bb, &bob, "bob"),
        };
        // A completion lists part 1 with the etag its owner got (say the attacker learnt it).
        let (id, etag) = match whose {
            Alices => (a_id.as_str(), a_etag.as_str()),
            Bobs => (b_id.as_str(), b_etag.as_str()),
            MadeUp => (MADE_UP_ID, a_etag.as_str()),
        };
        let (code, message) = send(client, &b, op, key, id, etag).await.expect_err(what);
        let fragment = format!(
            "is not one started for s3://{b}/{key} under grant {}",
            cred.grant_id
        );
        assert_eq!(code, "NoSuchUpload", "{what}: {message}");
        assert!(message.contains(&fragment), "{what}: {message}");
        assert!(
            !message.contains("secrets") || key.contains("secrets"),
            "{what} leaks: {message}"
        );
        assert_never_reached(&ctx, what);
        refusal_in_trail(&ctx, op.name(), principal, "NoSuchUpload", &fragment);
        assert_eq!(
            watched.state(&ctx).await,
            before,
            "{what} changed the backend"
        );
    }

    // The bindings are durable: after a restart alice finishes, under another grant of hers.
    // (The clients go first: their open connections would keep the old gateway's store.)
    drop((a, bb));
    let ctx = ctx.restarted().await;
    let alice_again = ctx.grant_to("alice", &scope(&b, "team-a-secrets/"), &[Write]);
    let a = ctx.sdk(&alice_again);
    ctx.take_backend_requests();
    send(&a, &b, Complete, SECRET_KEY, &a_id, &a_etag)
        .await
        .expect("alice completes her own upload");
    assert!(
        ctx.backend_requests()
            .iter()
            .any(|r| r.method == "POST" && r.has_param("uploadId", &a_id)),
        "alice's completion went through the relay: {:#?}",
        ctx.backend_requests()
    );
    assert_eq!(
        ctx.backend_object(&b, SECRET_KEY).await.as_deref(),
        Some(ALICE_DATA)
    );
    assert_eq!(ctx.backend_object(&b, STOLEN_KEY).await, None);
    assert_eq!(ctx.backend_object(&b, OTHER_KEY).await, None);
    assert_eq!(ctx.backend_object(&b, ALICE_OTHER_KEY).await, None);

    // Bob finishes his own upload on its key; then its id is spent.
    let bb = ctx.sdk(&bob);
    send(&bb, &b, Complete, BOB_KEY, &b_id, &b_etag)
        .await
        .expect("bob completes his own upload");
    assert_eq!(
        ctx.backend_object(&b, BOB_KEY).await.as_deref(),
        Some(BOB_DATA)
    );
    ctx.take_backend_requests();
    let (code, _) = send(&bb, &b, UploadPart, BOB_KEY, &b_id, "")
        .await
        .expect_err("a completed upload's id is no longer bound");
    assert_eq!(code, "NoSuchUpload");
    assert_never_reached(&ctx, "an upload part for a completed upload");
}

async fn upload_listings_show_only_the_callers_scope(kind: BackendKind) {
    let ctx = Ctx::start_with_relay(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let alice = ctx.grant_to("alice", &scope(&b, "team-a-secrets/"), &[List, Write]);
    let bob = ctx.grant_to("bob", &scope(&b, "team-a/"), &[List, Write]);
    let (a, bb) = (ctx.sdk(&alice), ctx.sdk(&bob));
    start_upload(&a, &b, SECRET_KEY).await;
    start_upload(&bb, &b, BOB_KEY).await;

    // Refused before the backend: a listing prefix outside the grant.
    ctx.take_backend_requests();
    let (code, message) = code_and_message(
        &bb.list_multipart_uploads()
            .bucket(&b)
            .send()
            .await
            .expect_err("a listing of the whole bucket"),
    );
    assert_eq!(code, "AccessDenied", "{message}");
    assert!(message.contains("does not cover listing"), "{message}");
    assert_never_reached(&ctx, "a listing of the whole bucket");
    refusal_in_trail(
        &ctx,
        "ListMultipartUploads",
        "bob",
        "AccessDenied",
        "does not cover listing",
    );

    if kind != BackendKind::Fs {
        // Started around Sesame: inside the prefix by its first bytes, outside the scope by
        // its `..` segment. (Not on s3s-fs, which would resolve it as a path.)
        ctx.admin
            .create_multipart_upload()
            .bucket(&b)
            .key("team-a/../team-a-secrets/sneaky.bin")
            .send()
            .await
            .expect("the backend's operator starts an upload");
    }
    let listed = bb
        .list_multipart_uploads()
        .bucket(&b)
        .prefix("team-a/")
        .send()
        .await;
    let listed = listed.expect("bob lists his prefix");
    let keys: Vec<&str> = listed.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(keys, [BOB_KEY], "{listed:#?}");
}
