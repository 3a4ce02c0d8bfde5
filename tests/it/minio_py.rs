//! minio-py, unchanged and with its defaults, through Sesame on both backends: list, put,
//! a multipart upload (minio-py's own 5 MiB parts), get, a ranged get, server-side copy, a
//! list-and-compare sync, a `DeleteObjects` batch, a presigned GET fetched with curl, and a
//! refusal outside the grant that says why and leaves nothing behind. The client is
//! configured as a user would: host and port, the three credential values, `secure=False`
//! and the region (without it minio-py first asks the bucket for its location). Each step is
//! one run of `minio_py.py`, so the backend can be looked at between steps.

use std::path::Path;
use std::process::Command;

use sesame::grant::IssuedCredential;

use crate::harness::{BackendKind, Ctx, Output, REGION, client_env, python_bin, run};
use crate::scripted::{Seeded, Story, seeded};

crate::on_every_backend!(minio_py_does_its_everyday_work_inside_a_grant_and_is_refused_outside);

/// One `minio_py.py COMMAND ARGS` as the holder of `cred`, against the gateway.
fn minio(ctx: &Ctx, home: &Path, cred: &IssuedCredential, args: &[&str]) -> Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/minio_py.py");
    let mut cmd = Command::new(python_bin("python"));
    cmd.arg(script)
        .arg(ctx.s3_url.trim_start_matches("http://"))
        .arg(REGION)
        .args(args);
    client_env(&mut cmd, cred, home, Path::new("/dev/null"));
    run(cmd)
}

async fn minio_py_does_its_everyday_work_inside_a_grant_and_is_refused_outside(kind: BackendKind) {
    let Seeded {
        ctx,
        b,
        cred,
        home,
        files,
    } = seeded(kind, "minio").await;
    let run = |args: &[&str]| minio(&ctx, &home, &cred, args);
    let story = Story {
        ctx: &ctx,
        b: &b,
        files: &files,
        run,
    };
    let run = &story.run;
    let path = |name: &str| story.path(name);
    story.list_and_put().await;

    // 12 MiB: minio-py cuts it into parts of 5 MiB by itself, so three parts.
    let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 233) as u8).collect();
    std::fs::write(files.join("big.bin"), &big).unwrap();
    let etag = run(&["put", &b, "in/big.bin", &path("big.bin")]);
    assert!(etag.ok().stdout.trim().ends_with("-3"), "{etag:#?}");
    assert_eq!(
        ctx.backend_object(&b, "in/big.bin").await.as_ref(),
        Some(&big)
    );

    run(&["get", &b, "in/a.txt", &path("a.txt")]).ok();
    assert_eq!(std::fs::read(files.join("a.txt")).unwrap(), b"alpha");
    // A range across the first part boundary.
    let from = 5 * 1024 * 1024 - 3;
    run(&[
        "range",
        &b,
        "in/big.bin",
        &from.to_string(),
        "10",
        &path("range"),
    ])
    .ok();
    assert_eq!(
        std::fs::read(files.join("range")).unwrap(),
        &big[from..from + 10]
    );

    story.copy_sync_delete_presign(&big).await;

    // Outside the grant: refused with the reason, and nothing written.
    let refused = run(&["put", &b, "out/up.txt", &path("up.txt")]);
    assert_ne!(refused.code, 0, "{refused:#?}");
    assert!(
        refused.stderr.contains("code: AccessDenied") && refused.stderr.contains("does not cover"),
        "{refused:#?}"
    );
    assert!(ctx.backend_object(&b, "out/up.txt").await.is_none());
}
