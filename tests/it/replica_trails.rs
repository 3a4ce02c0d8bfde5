//! Gateways as replicas of one deployment, each with a data directory of its own, writing
//! their audit chains into one shared trail root: each writes only its own chain, named by
//! its replica id, and `sesame audit` and `sesame audit verify` read all of them.

use std::path::Path;
use std::process::Command;

use crate::harness::{Output, ServeProcess, aws_at, run};

fn sesame(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.args(args).env_remove("SESAME_SERVER");
    run(cmd)
}

/// A gateway on the directory backend `objects` with its own data directory `data` and the
/// shared trail root `trail`, and one download through it by `who`.
fn replica_serving(objects: &Path, data: &Path, trail: &Path, who: &str) -> ServeProcess {
    let server = ServeProcess::start(
        data,
        &[
            "--backend",
            objects.to_str().unwrap(),
            "--audit-dir",
            trail.to_str().unwrap(),
        ],
        &[],
    );
    let cred = server.grant("s3://ledger/", who, "read");
    let home = data.with_extension("home");
    let got = aws_at(
        &server.s3_url,
        &home,
        &cred,
        &["s3", "cp", "s3://ledger/a.txt", "-"],
    );
    assert_eq!(got.ok().stdout, "kept");
    server
}

#[test]
fn replicas_sharing_a_trail_root_write_a_chain_each_and_are_read_together() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(objects.join("ledger")).unwrap();
    std::fs::write(objects.join("ledger/a.txt"), b"kept").unwrap();
    let trail = dir.path().join("trail");
    let root = trail.to_str().unwrap();
    let one = replica_serving(&objects, &dir.path().join("one"), &trail, "alice");
    let two = replica_serving(&objects, &dir.path().join("two"), &trail, "bob");

    // Each data directory made its replica id; each chain is in the root, in its folder.
    let ids = [&one, &two].map(|s| sesame::server::replica_id(&s.data_dir).unwrap());
    assert_ne!(ids[0], ids[1]);
    for (server, id) in [&one, &two].into_iter().zip(&ids) {
        assert!(sesame::audit::replicas::is_replica_id(id), "{id}");
        assert!(trail.join(id).join("trail-000001.jsonl").exists(), "{id}");
        assert!(!server.data_dir.join("audit").exists());
    }

    // Read together: every record names its replica, in front and in its body, by time.
    let out = sesame(&["audit", "--audit-dir", root, "--json"]);
    let records: Vec<serde_json::Value> = out
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at: Vec<&str> = records
        .iter()
        .filter_map(|r| r["body"]["at"].as_str())
        .collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
    for r in &records {
        assert_eq!(r["replica"], r["body"]["replica"], "{r}");
    }
    let downloads: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["body"]["kind"] == "s3" && r["body"]["op"] == "GetObject")
        .map(|r| {
            (
                r["replica"].as_str().unwrap(),
                r["body"]["principal"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        downloads,
        [(ids[0].as_str(), "alice"), (ids[1].as_str(), "bob")]
    );
    let theirs = sesame(&[
        "audit",
        "--audit-dir",
        root,
        "--replica",
        &ids[1],
        "--op",
        "GetObject",
    ]);
    let table = &theirs.ok().stdout;
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert!(rows[0].starts_with(&format!("{}  ", ids[1])), "{table}");

    // Verified chain by chain; a broken one is named by its file and line.
    let out = sesame(&["audit", "verify", "--audit-dir", root]);
    let said = &out.ok().stdout;
    assert!(said.contains(": intact, 2 chain(s)\n"), "{said}");
    for id in &ids {
        assert!(said.contains(&format!("\n  {id}: intact, ")), "{said}");
    }
    drop(two);
    let file = trail.join(&ids[1]).join("trail-000001.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("\"bob\"", "\"eve\"", 1)).unwrap();
    let out = sesame(&["audit", "verify", "--audit-dir", root]);
    let out = out.refused(&format!(
        "  {}: NOT INTACT at {}/trail-000001.jsonl line ",
        ids[1], ids[1]
    ));
    assert!(
        out.stderr.contains(&format!("  {}: intact, ", ids[0])),
        "{out:#?}"
    );
}
