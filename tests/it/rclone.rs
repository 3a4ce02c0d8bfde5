//! rclone (Debian's), unchanged and with its default settings, through Sesame on both
//! backends: list, copy (which first creates the bucket, as rclone does by default), a
//! multipart upload, cat, server-side copy, a sync with nothing to do, a recursive delete, and
//! a refusal outside the grant that says why and leaves nothing behind.

use std::path::Path;
use std::process::Command;

use sesame::grant::IssuedCredential;
use sesame::model::Action::{Delete, List, Read, Write};

use crate::harness::{BackendKind, Ctx, Output, REGION, run};

crate::on_every_backend!(rclone_does_its_everyday_work_inside_a_grant_and_is_refused_outside);

/// `rclone ARGS` with the remote `sesame:` holding `cred`, configured from the environment.
fn rclone(ctx: &Ctx, home: &Path, cred: &IssuedCredential, args: &[&str]) -> Output {
    let config = home.join("rclone.conf");
    std::fs::write(&config, "").unwrap();
    let mut cmd = Command::new("rclone");
    cmd.arg("--config")
        .arg(&config)
        .args(["--retries", "1", "--low-level-retries", "1"])
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RCLONE_CONFIG_SESAME_TYPE", "s3")
        .env("RCLONE_CONFIG_SESAME_PROVIDER", "Other")
        .env("RCLONE_CONFIG_SESAME_ENDPOINT", &ctx.s3_url)
        .env("RCLONE_CONFIG_SESAME_REGION", REGION)
        .env("RCLONE_CONFIG_SESAME_ACCESS_KEY_ID", &cred.access_key_id)
        .env(
            "RCLONE_CONFIG_SESAME_SECRET_ACCESS_KEY",
            cred.secret_access_key.expose(),
        )
        .env(
            "RCLONE_CONFIG_SESAME_SESSION_TOKEN",
            cred.session_token.expose(),
        );
    run(cmd)
}

async fn rclone_does_its_everyday_work_inside_a_grant_and_is_refused_outside(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx
        .bucket_with(&[("in/a.txt", b"alpha"), ("out/secret.txt", b"secret")])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Read, List, Write, Delete]);
    let home = ctx.dir.path().join("rclone-home");
    let files = home.join("files");
    std::fs::create_dir_all(files.join("tree/sub")).unwrap();
    let run = |args: &[&str]| rclone(&ctx, &home, &cred, args);
    let remote = |path: &str| format!("sesame:{b}/in/{path}");
    let local = |name: &str| files.join(name).to_str().unwrap().to_owned();

    let listed = run(&["ls", &remote("")]);
    assert!(listed.ok().stdout.contains("a.txt"), "{listed:#?}");

    std::fs::write(files.join("tree/one.txt"), b"one").unwrap();
    std::fs::write(files.join("tree/sub/two.txt"), b"two").unwrap();
    let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 239) as u8).collect();
    std::fs::write(files.join("tree/big.bin"), &big).unwrap();
    run(&[
        "copy",
        "--s3-upload-cutoff",
        "5M",
        "--s3-chunk-size",
        "5M",
        &local("tree"),
        &remote("tree"),
    ])
    .ok();
    assert_eq!(
        ctx.backend_object(&b, "in/tree/sub/two.txt")
            .await
            .as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(ctx.backend_object(&b, "in/tree/big.bin").await, Some(big));

    let cat = run(&["cat", &remote("a.txt")]);
    assert_eq!(cat.ok().stdout, "alpha");
    run(&["copyto", &remote("a.txt"), &remote("copy.txt")]).ok();
    assert_eq!(
        ctx.backend_object(&b, "in/copy.txt").await.as_deref(),
        Some(&b"alpha"[..])
    );

    // Everything is in place: a sync transfers nothing.
    let again = run(&["sync", "-v", &local("tree"), &remote("tree")]);
    assert!(
        again.ok().stderr.contains("There was nothing to transfer"),
        "{again:#?}"
    );

    run(&["delete", &remote("tree")]).ok();
    assert!(ctx.backend_object(&b, "in/tree/one.txt").await.is_none());
    assert!(ctx.backend_object(&b, "in/tree/big.bin").await.is_none());
    assert_eq!(
        ctx.backend_object(&b, "in/a.txt").await.as_deref(),
        Some(&b"alpha"[..])
    );

    // Outside the grant: refused, and nothing written. rclone first looks at the
    // destination with a HEAD, whose 403 has no body to carry the reason; told not to, its
    // upload is refused with the reason.
    std::fs::write(files.join("up.txt"), b"up").unwrap();
    let outside = format!("sesame:{b}/out/up.txt");
    let refused = run(&["copyto", &local("up.txt"), &outside]);
    assert!(
        refused.code != 0 && refused.stderr.contains("status code: 403"),
        "{refused:#?}"
    );
    let refused = run(&["copyto", "--no-check-dest", &local("up.txt"), &outside]);
    assert!(
        refused.code != 0
            && refused.stderr.contains("AccessDenied")
            && refused.stderr.contains("does not cover"),
        "{refused:#?}"
    );
    assert!(ctx.backend_object(&b, "out/up.txt").await.is_none());
}
