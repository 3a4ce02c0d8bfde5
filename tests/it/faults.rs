//! Faults of the trail's filesystem under a running gateway: the disk fills up and frees
//! again (a small tmpfs mounted over the audit folder by the test, which needs root, as CI
//! and `scripts/test` have). While it is full, S3 requests and admin actions are refused
//! and change nothing; a revocation goes ahead and its record reaches the trail once there is
//! space; a gateway restarted after it all starts and its trail verifies.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sesame::grant::IssuedCredential;

use crate::harness::{Output, ServeProcess, aws_at, credential_from_json};
use crate::workflow::json;

/// A tmpfs of `size` mounted at `at` for the length of a test.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs at {} failed: this test needs root (CI and scripts/test run as root)",
            at.display()
        );
        Tmpfs(at.to_owned())
    }

    /// Fills the disk with a file; removing it frees the space.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        while file.write(&[0u8; 4096]).is_ok_and(|n| n > 0) {}
        while file.write(&[0u8]).is_ok_and(|n| n > 0) {}
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn grant(server: &ServeProcess, to: &str) -> Output {
    server.cli(&[
        "grant",
        "create",
        "s3://ledger/",
        "--to",
        to,
        "--actions",
        "read,list,write",
        "--for",
        "30m",
        "--format",
        "json",
    ])
}

fn grant_ids(server: &ServeProcess) -> Vec<String> {
    let grants = json(&server.cli(&["grants", "--json"]).ok().stdout);
    grants
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect()
}

fn events(server: &ServeProcess) -> Vec<serde_json::Value> {
    server
        .cli(&["audit", "--json"])
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["body"].clone())
        .filter(|b| b["kind"] == "lifecycle")
        .collect()
}

#[test]
fn a_full_audit_disk_refuses_changes_then_resumes_and_the_trail_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(objects.join("ledger")).unwrap();
    std::fs::write(objects.join("ledger/a.txt"), b"kept").unwrap();
    let data = dir.path().join("data");
    let disk = Tmpfs::mount(&data.join("audit"), "512k");
    let args = ["--backend", objects.to_str().unwrap()];
    let home = dir.path().join("home");
    let get = |server: &ServeProcess, cred: &IssuedCredential| {
        aws_at(
            &server.s3_url,
            &home,
            cred,
            &["s3", "cp", "s3://ledger/a.txt", "-"],
        )
    };

    let mut server = ServeProcess::start(&data, &args, &[]);
    let cred = credential_from_json(&grant(&server, "alice").ok().stdout);
    let held = credential_from_json(&grant(&server, "bob").ok().stdout).grant_id;
    assert_eq!(get(&server, &cred).ok().stdout, "kept");
    let before = grant_ids(&server);

    let filler = disk.fill();
    // The trail file's last page may still take a record or two: small admin records use it
    // up (each is taken while it fits), so that every record after this one fails.
    let drained = (0..50).find(|i| {
        server
            .cli(&["user", "add", &format!("pad-{i}"), "--group", "ops"])
            .code
            != 0
    });
    assert!(drained.is_some(), "the full disk never refused a record");
    get(&server, &cred).refused("(503)");
    let body = dir.path().join("new.txt");
    std::fs::write(&body, b"new").unwrap();
    aws_at(
        &server.s3_url,
        &home,
        &cred,
        &["s3", "cp", body.to_str().unwrap(), "s3://ledger/b.txt"],
    )
    .refused("ServiceUnavailable");
    assert!(!objects.join("ledger/b.txt").exists());
    // An admin action that cannot be recorded is not taken.
    grant(&server, "carol").refused("nothing was changed");
    server
        .cli(&["user", "add", "dave", "--group", "ops"])
        .refused("nothing was changed");
    assert_eq!(grant_ids(&server), before);
    assert!(
        !server
            .cli(&["user", "list", "--json"])
            .ok()
            .stdout
            .contains("dave")
    );
    // A revocation is never held up: it takes effect and says its record is kept.
    let out = server.cli(&["grant", "revoke", &held, "--json"]);
    let revoked = json(&out.ok().stdout);
    assert_eq!(revoked["state"], "revoked");
    assert!(
        revoked["note"].as_str().unwrap().contains("is kept"),
        "{revoked}"
    );

    // Space returns: requests are served again and the revocation's record arrives.
    std::fs::remove_file(filler).unwrap();
    crate::garage::readiness_poll("S3 requests served again", || {
        (get(&server, &cred).code == 0).then_some(())
    });
    crate::garage::readiness_poll("the owed grant.revoked record", || {
        events(&server)
            .iter()
            .any(|e| e["event"] == "grant.revoked" && e["grant_id"] == held.as_str())
            .then_some(())
    });
    let created = events(&server)
        .iter()
        .filter(|e| e["event"] == "grant.created")
        .count();
    assert_eq!(created, 2, "only the grants that were made are recorded");

    // Killed and restarted: it starts, the trail verifies, and everything acknowledged holds.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let server = ServeProcess::start(&data, &args, &[]);
    let verified = server.cli(&["audit", "verify"]);
    assert!(verified.ok().stdout.contains("intact"), "{verified:#?}");
    assert_eq!(get(&server, &cred).ok().stdout, "kept");
    let grants = json(&server.cli(&["grants", "--json"]).ok().stdout);
    let held_now = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == held.as_str())
        .unwrap()
        .clone();
    assert_eq!(held_now["state"], "revoked");
    drop(server);
    drop(disk);
}
