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
use sesame::model::Action::{Delete, List, Read, Write};

use crate::harness::{BackendKind, Ctx, Output, REGION, client_env, plain_get, python_bin, run};

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
    let ctx = Ctx::start(kind).await;
    let b = ctx
        .bucket_with(&[("in/a.txt", b"alpha"), ("out/secret.txt", b"secret")])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Read, List, Write, Delete]);
    let home = ctx.dir.path().join("minio-home");
    let files = home.join("files");
    std::fs::create_dir_all(files.join("tree/sub")).unwrap();
    let run = |args: &[&str]| minio(&ctx, &home, &cred, args);
    let path = |name: &str| files.join(name).to_str().unwrap().to_owned();

    let listed = run(&["ls", &b, "in/"]);
    let listed = &listed.ok().stdout;
    assert!(listed.starts_with("in/a.txt\t5\t"), "{listed}");
    assert_eq!(listed.lines().count(), 1, "{listed}");

    std::fs::write(files.join("up.txt"), b"uploaded").unwrap();
    run(&["put", &b, "in/up.txt", &path("up.txt")]).ok();
    assert_eq!(
        ctx.backend_object(&b, "in/up.txt").await.as_deref(),
        Some(&b"uploaded"[..])
    );

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

    run(&["copy", &b, "in/a.txt", "in/copy.txt"]).ok();
    assert_eq!(
        ctx.backend_object(&b, "in/copy.txt").await.as_deref(),
        Some(&b"alpha"[..])
    );

    std::fs::write(files.join("tree/one.txt"), b"one").unwrap();
    std::fs::write(files.join("tree/sub/two.txt"), b"two").unwrap();
    let synced = run(&["sync", &path("tree"), &b, "in/tree/"]);
    let synced = &synced.ok().stdout;
    assert!(
        synced.contains("upload: in/tree/one.txt")
            && synced.contains("upload: in/tree/sub/two.txt"),
        "{synced}"
    );
    assert_eq!(
        ctx.backend_object(&b, "in/tree/sub/two.txt")
            .await
            .as_deref(),
        Some(&b"two"[..])
    );
    // The listing's sizes and ETags match what is here: nothing is sent again.
    let again = run(&["sync", &path("tree"), &b, "in/tree/"]);
    assert_eq!(again.ok().stdout, "", "{again:#?}");

    let gone = [
        "in/up.txt",
        "in/copy.txt",
        "in/tree/one.txt",
        "in/tree/sub/two.txt",
    ];
    run(&[&["rm", b.as_str()][..], &gone[..]].concat()).ok();
    for key in gone {
        assert!(ctx.backend_object(&b, key).await.is_none(), "{key} is left");
    }
    let listed = run(&["ls", &b, "in/"]);
    let keys: Vec<&str> = listed
        .ok()
        .stdout
        .lines()
        .filter_map(|line| line.split('\t').next())
        .collect();
    assert_eq!(keys, ["in/a.txt", "in/big.bin"]);

    let url = run(&["presign", &b, "in/big.bin"]);
    assert_eq!(plain_get(url.ok().stdout.trim()), big);

    // Outside the grant: refused with the reason, and nothing written.
    let refused = run(&["put", &b, "out/up.txt", &path("up.txt")]);
    assert_ne!(refused.code, 0, "{refused:#?}");
    assert!(
        refused.stderr.contains("code: AccessDenied") && refused.stderr.contains("does not cover"),
        "{refused:#?}"
    );
    assert!(ctx.backend_object(&b, "out/up.txt").await.is_none());
}
