//! s3cmd, unchanged, through Sesame on both backends: list, put (whole and multipart), get,
//! server-side copy (which reads the source's ACL first), sync, delete, and a refusal
//! outside the grant that says why and leaves nothing behind. The session token goes on the
//! command line (`--access_token`): in `.s3cfg` it makes s3cmd ask an instance-metadata
//! address for credentials before every request. (`s3cmd info` reads the bucket's policy,
//! CORS and lifecycle too, which are the backend operator's and refused.)

use std::path::Path;
use std::process::Command;

use sesame::grant::IssuedCredential;
use sesame::model::Action::{Delete, List, Read, Write};

use crate::harness::{BackendKind, Ctx, Output, python_bin, run};

crate::on_every_backend!(s3cmd_does_its_everyday_work_inside_a_grant_and_is_refused_outside);

/// `s3cmd ARGS` as the holder of `cred`, against the gateway, with a config in `home`.
fn s3cmd(ctx: &Ctx, home: &Path, cred: &IssuedCredential, args: &[&str]) -> Output {
    let host = ctx.s3_url.trim_start_matches("http://");
    let config = home.join(".s3cfg");
    std::fs::write(
        &config,
        format!(
            "[default]\naccess_key = {}\nsecret_key = {}\nhost_base = {host}\nhost_bucket = {host}\n\
             use_https = False\nsignature_v2 = False\nbucket_location = {}\n",
            cred.access_key_id,
            cred.secret_access_key.expose(),
            crate::harness::REGION
        ),
    )
    .unwrap();
    let mut cmd = Command::new(python_bin("s3cmd"));
    cmd.arg("--config")
        .arg(&config)
        .arg(format!("--access_token={}", cred.session_token.expose()))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    run(cmd)
}

async fn s3cmd_does_its_everyday_work_inside_a_grant_and_is_refused_outside(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx
        .bucket_with(&[("in/a.txt", b"alpha"), ("out/secret.txt", b"secret")])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Read, List, Write, Delete]);
    let home = ctx.dir.path().join("s3cmd-home");
    let files = home.join("files");
    std::fs::create_dir_all(files.join("tree/sub")).unwrap();
    let run = |args: &[&str]| s3cmd(&ctx, &home, &cred, args);
    let path = |name: &str| files.join(name).to_str().unwrap().to_owned();
    let remote = |key: &str| format!("s3://{b}/in/{key}");

    let listed = run(&["ls", &remote("")]);
    assert!(listed.ok().stdout.contains(&remote("a.txt")), "{listed:#?}");

    std::fs::write(files.join("up.txt"), b"uploaded").unwrap();
    run(&["put", &path("up.txt"), &remote("up.txt")]).ok();
    assert_eq!(
        ctx.backend_object(&b, "in/up.txt").await.as_deref(),
        Some(&b"uploaded"[..])
    );
    let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(files.join("big.bin"), &big).unwrap();
    run(&[
        "put",
        "--multipart-chunk-size-mb=5",
        &path("big.bin"),
        &remote("big.bin"),
    ])
    .ok();
    assert_eq!(ctx.backend_object(&b, "in/big.bin").await, Some(big));

    run(&["get", &remote("a.txt"), &path("a.txt")]).ok();
    assert_eq!(std::fs::read(files.join("a.txt")).unwrap(), b"alpha");

    // A copy reads the source's ACL first; Sesame answers it (owner, full control).
    run(&["cp", &remote("a.txt"), &remote("copy.txt")]).ok();
    assert_eq!(
        ctx.backend_object(&b, "in/copy.txt").await.as_deref(),
        Some(&b"alpha"[..])
    );

    std::fs::write(files.join("tree/one.txt"), b"one").unwrap();
    std::fs::write(files.join("tree/sub/two.txt"), b"two").unwrap();
    let tree = format!("{}/", path("tree"));
    run(&["sync", &tree, &remote("tree/")]).ok();
    assert_eq!(
        ctx.backend_object(&b, "in/tree/sub/two.txt")
            .await
            .as_deref(),
        Some(&b"two"[..])
    );
    // A second sync finds everything in place and sends nothing.
    let again = run(&["sync", &tree, &remote("tree/")]);
    assert!(!again.ok().stdout.contains("upload:"), "{again:#?}");

    run(&["del", &remote("up.txt")]).ok();
    assert!(ctx.backend_object(&b, "in/up.txt").await.is_none());

    // Outside the grant: refused with the reason, and nothing written.
    let refused = run(&["put", &path("up.txt"), &format!("s3://{b}/out/up.txt")]);
    assert_ne!(refused.code, 0, "{refused:#?}");
    assert!(
        refused.stderr.contains("AccessDenied") && refused.stderr.contains("does not cover"),
        "{refused:#?}"
    );
    assert!(ctx.backend_object(&b, "out/up.txt").await.is_none());
    let read = run(&["get", &format!("s3://{b}/out/secret.txt"), &path("secret")]);
    assert_ne!(read.code, 0, "{read:#?}");
    assert!(
        !files.join("secret").exists() || std::fs::read(files.join("secret")).unwrap() != b"secret"
    );
}
