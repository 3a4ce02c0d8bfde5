//! What was done under a grant, next to what was approved, and the grant's limits enforced
//! while bytes stream: crossing the byte limit cuts the transfer and refuses what follows,
//! the object limit refuses the object past it, and both hold across a restart, also once
//! retention has deleted the trail the use was recorded in, and across gateways sharing a
//! PostgreSQL store.

use http_body_util::BodyExt as _;
use sesame::grant::IssuedCredential;
use sesame::model::Action::{List, Read, Write};
use sesame::model::{Limits, Scope};
use sesame::record::{Kind, Lifecycle, S3};
use sesame::server::Running;

use crate::harness::{BackendKind, Ctx, aws_at, block_on, readiness_poll_async};

crate::on_every_backend!(
    crossing_the_byte_limit_cuts_the_transfer_and_refuses_what_follows,
    a_first_chunk_past_the_byte_limit_is_an_s3_error
);

const KIB: usize = 1024;

fn limited_grant(ctx: &Ctx, scope: &str, limits: Limits) -> IssuedCredential {
    let scope = Scope::parse(scope, vec![Read, List, Write]).unwrap();
    let grants = &ctx.gateway.grants;
    let thirty = time::Duration::minutes(30);
    let grant = block_on(grants.create_limited("alice", scope, None, thirty, limits)).unwrap();
    block_on(grants.issue_credential(&grant.id)).unwrap()
}

/// The grant as a gateway's control API shows it to the admin, usage included.
async fn grant_view(gateway: &Running, id: &str) -> serde_json::Value {
    let client = sesame::http::client().unwrap();
    let req = hyper::Request::get(format!("http://{}/v1/grants/{id}", gateway.api_addr))
        .header(
            "authorization",
            format!("Bearer {}", gateway.admin_token.expose()),
        )
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

async fn crossing_the_byte_limit_cuts_the_transfer_and_refuses_what_follows(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let small = vec![1u8; 10 * KIB];
    let big = vec![2u8; 2048 * KIB];
    let b = ctx
        .bucket_with(&[("d/small.bin", &small), ("d/big.bin", &big)])
        .await;
    let limits = Limits {
        bytes: Some(1024 * 1024),
        ..Limits::default()
    };
    let cred = limited_grant(&ctx, &format!("s3://{b}/d/"), limits);

    // Reads under the limit work and are counted.
    ctx.get_object(&cred, &b, "d/small.bin").ok();
    ctx.aws(&cred, &["s3", "ls", &format!("s3://{b}/d/")]).ok();
    let view = grant_view(&ctx.gateway, &cred.grant_id).await;
    assert_eq!(view["usage"]["bytes_read"], 10 * KIB, "{view}");
    assert_eq!(view["usage"]["objects_read"], 1, "{view}");
    assert_eq!(view["usage"]["requests"], 2, "{view}");
    assert_eq!(view["limits"]["bytes"], 1024 * 1024);

    // The big object crosses the limit mid-stream: cut, and nothing more is served.
    let out = ctx.get_object(&cred, &b, "d/big.bin");
    assert_ne!(out.code, 0, "the download was cut: {out:?}");
    let refused = ctx.aws(&cred, &["s3", "ls", &format!("s3://{b}/d/")]);
    refused.refused(&format!(
        "grant {} reached its limit of 1048576 bytes read and written",
        cred.grant_id
    ));
    let view = grant_view(&ctx.gateway, &cred.grant_id).await;
    let read = view["usage"]["bytes_read"].as_u64().unwrap();
    assert!(read <= 1024 * 1024, "never past the limit: {view}");
    assert!(read > 10 * KIB as u64, "the cut transfer counted: {view}");

    // The trail says why the transfer stopped.
    let dir = crate::harness::chain_dir(&ctx.config.data_dir);
    let cut = readiness_poll_async("the cut completion record", || async {
        sesame::audit::verify::records(&dir)
            .map_err(|e| format!("{e:?}"))?
            .into_iter()
            .find_map(|r| match r.body.kind {
                Kind::Completion(c) => c.stopped,
                Kind::S3(_)
                | Kind::DeniedAfterParse(_)
                | Kind::Share(_)
                | Kind::Lifecycle(_)
                | Kind::Checkpoint(_) => None,
            })
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    assert!(cut.contains("reached its limit of 1048576 bytes"), "{cut}");

    // A restart rebuilds usage from the trail: the limit still holds.
    let ctx = ctx.restarted().await;
    ctx.aws(&cred, &["s3", "ls", &format!("s3://{b}/d/")])
        .refused("reached its limit of 1048576 bytes");
    let again = grant_view(&ctx.gateway, &cred.grant_id).await;
    assert_eq!(again["usage"]["bytes_read"], read, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_limit_refuses_the_object_past_it_and_uploads_count() {
    let ctx = Ctx::start(BackendKind::Fs).await;
    let b = ctx
        .bucket_with(&[("d/1", b"one"), ("d/2", b"two"), ("d/3", b"three")])
        .await;
    let limits = Limits {
        objects: Some(3),
        ..Limits::default()
    };
    let cred = limited_grant(&ctx, &format!("s3://{b}/d/"), limits);
    ctx.get_object(&cred, &b, "d/1").ok();
    let upload = ctx.dir.path().join("up.txt");
    std::fs::write(&upload, b"uploaded!").unwrap();
    ctx.aws(
        &cred,
        &[
            "s3",
            "cp",
            upload.to_str().unwrap(),
            &format!("s3://{b}/d/up.txt"),
        ],
    )
    .ok();
    ctx.get_object(&cred, &b, "d/2").ok();
    ctx.get_object(&cred, &b, "d/3").refused(&format!(
        "grant {} reached its limit of 3 objects read and written",
        cred.grant_id
    ));
    let view = grant_view(&ctx.gateway, &cred.grant_id).await;
    let usage = &view["usage"];
    assert_eq!(
        (
            &usage["objects_read"],
            &usage["objects_written"],
            &usage["bytes_read"],
            &usage["bytes_written"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(1),
            &serde_json::json!(6),
            &serde_json::json!(9)
        ),
        "{view}"
    );
    assert!(usage["denied"].as_u64().unwrap() >= 1, "{view}");
    assert!(usage["first_use"].is_string() && usage["last_use"].is_string());
}

/// Usage lives in the gateway's row in the store: once retention has deleted every trail file
/// the grant's downloads were recorded in, a restart still counts them, the limit still
/// refuses, and the admin still sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_limit_holds_after_retention_deleted_the_trail_it_was_counted_from() {
    let ctx = Ctx::start(BackendKind::Fs).await;
    // A file per batch, so every record but the newest can age out.
    let ctx = ctx
        .restarted_after(|config| config.audit.rotate_bytes = 1)
        .await;
    let b = ctx
        .bucket_with(&[("d/1", b"one"), ("d/2", b"two"), ("d/3", b"three")])
        .await;
    let scope = Scope::parse(&format!("s3://{b}/d/"), vec![Read, List]).unwrap();
    let limits = Limits {
        objects: Some(2),
        ..Limits::default()
    };
    let week = time::Duration::days(7);
    let grants = &ctx.gateway.grants;
    let grant = grants
        .create_limited("alice", scope, None, week, limits)
        .await
        .unwrap();
    let cred = grants.issue_credential(&grant.id).await.unwrap();
    ctx.get_object(&cred, &b, "d/1").ok();
    ctx.get_object(&cred, &b, "d/2").ok();
    let written = ctx.gateway.usage.flush_now().await.unwrap();

    // Three days later, restarted with a one-day retention: the downloads' files go.
    ctx.clock.advance(time::Duration::days(3));
    let ctx = ctx
        .restarted_after(|config| config.audit.retain_days = Some(1))
        .await;
    let dir = crate::harness::chain_dir(&ctx.config.data_dir);
    let left = readiness_poll_async("the audit.pruned record", || async {
        let records = sesame::audit::verify::records(&dir).map_err(|e| format!("{e:?}"))?;
        let pruned = records
            .iter()
            .any(|r| matches!(r.body.kind, Kind::Lifecycle(Lifecycle::AuditPruned(_))));
        if pruned {
            Ok(records)
        } else {
            Err("not yet".to_owned())
        }
    })
    .await;
    assert!(left.iter().all(|r| r.seq > written.through_seq), "{left:?}");
    let downloads = left
        .iter()
        .filter(|r| {
            matches!(&r.body.kind, Kind::S3(S3::Allowed(d)) if d.grant.as_deref() == Some(grant.id.as_str()))
        })
        .count();
    assert_eq!(downloads, 0, "no record of the downloads is left");

    let cred = ctx
        .gateway
        .grants
        .issue_credential(&grant.id)
        .await
        .unwrap();
    ctx.get_object(&cred, &b, "d/3").refused(&format!(
        "grant {} reached its limit of 2 objects read and written",
        grant.id
    ));
    let view = grant_view(&ctx.gateway, &grant.id).await;
    assert_eq!(view["usage"]["objects_read"], 2, "{view}");
    assert_eq!(view["usage"]["bytes_read"], 6, "{view}");
}

/// Waits until `gateway` shows the admin `objects` objects read under grant `id`.
async fn shows_objects_read(gateway: &Running, id: &str, objects: u64) -> serde_json::Value {
    readiness_poll_async("the other gateway's usage", || async {
        let view = grant_view(gateway, id).await;
        if view["usage"]["objects_read"] == objects {
            Ok(view)
        } else {
            Err(view.to_string())
        }
    })
    .await
}

/// Two gateways on one PostgreSQL database: each counts what the other served once the
/// other's row has come through the change feed, the object limit holds over the two
/// together, and both show the admin the sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_postgres_store_count_a_grant_together() {
    let first = Ctx::start_on_postgres(BackendKind::Fs).await;
    let second = first.replica("gateway-2").await;
    assert_ne!(first.gateway.replica_id, second.replica_id);
    let b = first
        .bucket_with(&[("d/1", b"one"), ("d/2", b"two"), ("d/3", b"three")])
        .await;
    let home = first.dir.path().join("home-2");
    let at_second = |cred, key| {
        aws_at(
            &second.s3_endpoint,
            &home,
            cred,
            &[
                "s3api",
                "get-object",
                "--bucket",
                &b,
                "--key",
                key,
                "/dev/null",
            ],
        )
    };

    let limits = Limits {
        objects: Some(2),
        ..Limits::default()
    };
    let cred = limited_grant(&first, &format!("s3://{b}/d/"), limits);
    let id = cred.grant_id.clone();

    // One download through each gateway, each seen by the other once its row is written.
    first.get_object(&cred, &b, "d/1").ok();
    first.gateway.usage.flush_now().await.unwrap();
    shows_objects_read(&second, &id, 1).await;
    at_second(&cred, "d/2").ok();
    second.usage.flush_now().await.unwrap();
    let view = shows_objects_read(&first.gateway, &id, 2).await;
    assert_eq!(view["usage"]["bytes_read"], 6, "{view}");

    // The limit is reached over the two together: both refuse the third object.
    let reached = format!("grant {id} reached its limit of 2 objects read and written");
    first.get_object(&cred, &b, "d/3").refused(&reached);
    at_second(&cred, "d/3").refused(&reached);
    drop(second);
    drop(first);
}

/// Issue 8: a GET whose very first chunk would cross the limit got no HTTP answer at all.
/// Nothing has been sent then, so the client gets an S3 error that says why.
async fn a_first_chunk_past_the_byte_limit_is_an_s3_error(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("d/ten.bin", &[3u8; 10 * KIB])]).await;
    let limits = Limits {
        bytes: Some(100),
        ..Limits::default()
    };
    let cred = limited_grant(&ctx, &format!("s3://{b}/d/"), limits);
    ctx.get_object(&cred, &b, "d/ten.bin")
        .refused("AccessDenied")
        .refused(&format!(
            "grant {} reached its limit of 100 bytes read and written",
            cred.grant_id
        ));
    let view = grant_view(&ctx.gateway, &cred.grant_id).await;
    assert_eq!(view["usage"]["bytes_read"], 0, "nothing was sent: {view}");
}
