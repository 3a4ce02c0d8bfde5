//! The AWS SDK for JavaScript v3 (`@aws-sdk/client-s3`, `lib-storage`, `s3-request-presigner`,
//! the versions in `tests/js/package-lock.json`), unchanged and with its defaults, through
//! Sesame on both backends: list, put of a file stream (aws-chunked with a checksum trailer,
//! no Content-Length), lib-storage's multipart Upload of a file stream (its own 5 MiB parts),
//! get, a ranged get, server-side copy, a list-and-compare sync, a `DeleteObjects` batch, a
//! presigned GET fetched with curl, and a refusal outside the grant that says why and leaves
//! nothing behind. The client gets the endpoint and region; it finds the credentials in the
//! environment itself. Each step is one run of `tests/js/js_sdk.cjs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sesame::grant::IssuedCredential;

use crate::harness::{BackendKind, Ctx, Output, REGION, client_env, run};
use crate::scripted::{Seeded, Story, seeded};

crate::on_every_backend!(js_sdk_does_its_everyday_work_inside_a_grant_and_is_refused_outside);

/// The `node_modules` that `scripts/test` installs from `tests/js/` (`SESAME_TEST_NPM`).
fn node_modules() -> PathBuf {
    let setup = "run scripts/test, which installs tests/js/package-lock.json with \
                 `npm ci --prefix ~/.cache/sesame/npm` and sets SESAME_TEST_NPM to that folder";
    let folder = std::env::var_os("SESAME_TEST_NPM")
        .unwrap_or_else(|| panic!("SESAME_TEST_NPM is not set: {setup}"));
    let modules = Path::new(&folder).join("node_modules");
    assert!(
        modules.join("@aws-sdk/client-s3").is_dir(),
        "{} has no @aws-sdk/client-s3: {setup}",
        modules.display()
    );
    modules
}

/// One `node js_sdk.cjs COMMAND ARGS` as the holder of `cred`, against the gateway.
fn js(ctx: &Ctx, home: &Path, cred: &IssuedCredential, args: &[&str]) -> Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/js_sdk.cjs");
    let mut cmd = Command::new("node");
    cmd.arg(script).arg(&ctx.s3_url).arg(REGION).args(args);
    client_env(&mut cmd, cred, home, Path::new("/dev/null"));
    cmd.env("NODE_PATH", node_modules());
    run(cmd)
}

async fn js_sdk_does_its_everyday_work_inside_a_grant_and_is_refused_outside(kind: BackendKind) {
    let Seeded {
        ctx,
        b,
        cred,
        home,
        files,
    } = seeded(kind, "js").await;
    let run = |args: &[&str]| js(&ctx, &home, &cred, args);
    let story = Story {
        ctx: &ctx,
        b: &b,
        files: &files,
        run,
    };
    let run = &story.run;
    let path = |name: &str| story.path(name);
    story.list_and_put().await;

    // 12 MiB: lib-storage cuts the stream into parts of 5 MiB by itself, so three parts.
    let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 229) as u8).collect();
    std::fs::write(files.join("big.bin"), &big).unwrap();
    let etag = run(&["upload", &b, "in/big.bin", &path("big.bin")]);
    assert!(etag.ok().stdout.trim().ends_with("-3\""), "{etag:#?}");
    assert_eq!(
        ctx.backend_object(&b, "in/big.bin").await.as_ref(),
        Some(&big)
    );

    run(&["get", &b, "in/a.txt", &path("a.txt")]).ok();
    assert_eq!(std::fs::read(files.join("a.txt")).unwrap(), b"alpha");
    // A range across the first part boundary.
    let from = 5 * 1024 * 1024 - 3;
    let range = format!("bytes={from}-{}", from + 9);
    run(&["range", &b, "in/big.bin", &range, &path("range")]).ok();
    assert_eq!(
        std::fs::read(files.join("range")).unwrap(),
        &big[from..from + 10]
    );

    story.copy_sync_delete_presign(&big).await;

    // Outside the grant: refused with the reason, and nothing written, whether the body is a
    // stream (still being sent when the refusal comes: the gateway reads it on, so the SDK
    // reads the 403 instead of `write EPIPE`) or bytes in memory. Streams several times:
    // before the gateway read refused bodies on, most attempts ended in EPIPE.
    for command in ["put", "put", "put", "put-buffer"] {
        let refused = run(&[command, &b, "out/up.txt", &path("up.txt")]);
        assert_ne!(refused.code, 0, "{refused:#?}");
        assert!(
            refused.stderr.contains("AccessDenied: ") && refused.stderr.contains("does not cover"),
            "{command}: {refused:#?}"
        );
        assert!(ctx.backend_object(&b, "out/up.txt").await.is_none());
    }
}
