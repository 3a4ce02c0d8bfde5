//! Two `sesame serve` processes on one PostgreSQL store, each with its own data directory:
//! a replica killed in the middle of a download leaves its client with an error (never a
//! short object taken for a whole one) while the other replica serves the same credential in
//! full, and the killed one starts again on its own chain; a policy reload through one
//! replica is in force on the other.

use std::path::{Path, PathBuf};

use crate::harness::{ServeProcess, aws_at, sdk_config};
use crate::postgres::Database;
use crate::workflow::{add_user, json};

/// A gateway process on `store`, serving the directory backend `objects`, with `extra`
/// flags.
fn replica(data_dir: &Path, store: &str, objects: &Path, extra: &[&str]) -> ServeProcess {
    let mut args = vec!["--store", store, "--backend", objects.to_str().unwrap()];
    args.extend_from_slice(extra);
    ServeProcess::start(data_dir, &args, &[])
}

/// A folder of objects for the directory backend, with bucket `data` holding `big.bin`
/// (`size` bytes) and `small.txt`.
fn objects(root: &Path, size: usize) -> PathBuf {
    let objects = root.join("objects");
    std::fs::create_dir_all(objects.join("data")).unwrap();
    let big: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    std::fs::write(objects.join("data/big.bin"), big).unwrap();
    std::fs::write(objects.join("data/small.txt"), b"small").unwrap();
    objects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_download_fails_its_client_and_the_other_serves_the_object_whole() {
    let database = Database::create().await;
    let dir = tempfile::tempdir().unwrap();
    let size = 96 * 1024 * 1024;
    let objects = objects(dir.path(), size);
    let mut a = replica(&dir.path().join("a"), &database.url, &objects, &[]);
    let b = replica(&dir.path().join("b"), &database.url, &objects, &[]);
    let cred = a.grant("s3://data/", "dana", "read,list");

    // A download through replica A, a first chunk in, then A is killed (SIGKILL: no drain).
    let on_a = aws_sdk_s3::Client::from_conf(sdk_config(&a.s3_url, &cred).build());
    let mut body = on_a
        .get_object()
        .bucket("data")
        .key("big.bin")
        .send()
        .await
        .expect("the download starts")
        .body;
    let mut received = body
        .next()
        .await
        .expect("a first chunk")
        .expect("data")
        .len();
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let failed = loop {
        match body.next().await {
            Some(Ok(chunk)) => received += chunk.len(),
            Some(Err(_)) => break true,
            None => break false,
        }
    };
    assert!(
        failed && received < size,
        "the download through the killed replica ended cleanly at {received} of {size} bytes"
    );

    // The same credential, through replica B with aws-cli: the whole object.
    let home = dir.path().join("aws-home");
    let out = home.join("big.bin");
    let got = aws_at(
        &b.s3_url,
        &home,
        &cred,
        &[
            "s3",
            "cp",
            "s3://data/big.bin",
            out.to_str().unwrap(),
            "--no-progress",
        ],
    );
    got.ok();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), size as u64);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(objects.join("data/big.bin")).unwrap()
    );

    // A starts again on its own data directory: its chain verifies, and it serves again.
    let a = replica(&dir.path().join("a"), &database.url, &objects, &[]);
    a.cli(&["audit", "verify"]).ok();
    let small = aws_at(
        &a.s3_url,
        &home,
        &cred,
        &["s3", "cp", "s3://data/small.txt", "-"],
    );
    assert_eq!(small.stdout, "small", "{}", small.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reload_through_one_replica_is_in_force_on_the_other() {
    let database = Database::create().await;
    let dir = tempfile::tempdir().unwrap();
    let objects = objects(dir.path(), 16);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples");
    let analytics = std::fs::read_to_string(examples.join("analytics.toml")).unwrap();
    // Each replica with its own copy of the same folder, as configuration management
    // would lay them out.
    let folders = [dir.path().join("policies-a"), dir.path().join("policies-b")];
    for folder in &folders {
        std::fs::create_dir_all(folder).unwrap();
        std::fs::write(folder.join("analytics.toml"), &analytics).unwrap();
    }
    let policies = |i: usize| ["--policies", folders[i].to_str().unwrap()];
    let a = replica(&dir.path().join("a"), &database.url, &objects, &policies(0));
    let b = replica(&dir.path().join("b"), &database.url, &objects, &policies(1));
    let status =
        |server: &ServeProcess| json(&server.cli(&["policy", "status", "--json"]).ok().stdout);
    // The same files on both: the second start changed nothing in force.
    let before = status(&b);
    assert_eq!(before["generation"], 1, "{before}");
    let ann = add_user(&a, "ann", "analysts");
    let ask = |server: &ServeProcess, hours: &str| {
        server.cli_as(
            &ann,
            &[
                "request",
                "s3://analytics/",
                "--read",
                "--for",
                hours,
                "--json",
            ],
        )
    };
    ask(&b, "8h").ok();

    // An edit to A's folder, reloaded through A, holds on B at once.
    std::fs::write(
        folders[0].join("analytics.toml"),
        analytics.replace("\"8h\"", "\"1h\""),
    )
    .unwrap();
    let reloaded = json(&a.cli(&["policy", "reload", "--json"]).ok().stdout);
    assert_eq!(reloaded["generation"], 2, "{reloaded}");
    let a_replica = sesame::server::replica_id(&a.data_dir).unwrap();
    crate::garage::readiness_poll("the reload reaching replica B", || {
        let now = status(&b);
        (now["generation"] == 2).then_some(now)
    });
    let now = status(&b);
    assert_eq!(now["loaded_by"], a_replica.as_str(), "{now}");
    assert!(
        now["dir"].as_str().unwrap().ends_with("policies-a"),
        "{now}"
    );
    ask(&b, "8h").refused("exceeds the maximum of 1h");
    ask(&b, "1h").ok();

    // An invalid edit through A changes nothing anywhere.
    std::fs::write(
        folders[0].join("analytics.toml"),
        analytics.replace("\"read\"", "\"reed\""),
    )
    .unwrap();
    a.cli(&["policy", "reload"])
        .refused("unknown action \"reed\"");
    assert_eq!(status(&b)["generation"], 2);
    ask(&b, "2h").refused("exceeds the maximum of 1h");
}
