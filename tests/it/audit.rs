//! The audit trail: one record per S3 request with the right fields, completion records,
//! tamper detection by `sesame audit verify`, and refusal to serve when it cannot be written;
//! rotation across files under real traffic, and records forwarded to a collector as stored.

use std::process::Command;

use sesame::grant::IssuedCredential;
use sesame::model::Action::{List, Read};

use crate::harness::{BackendKind, Ctx, Output, ServeProcess, aws_at, chain_dir, run};

crate::on_every_backend!(every_request_gets_exactly_one_decision_record);

fn sesame(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.args(args);
    run(cmd)
}

/// The whole trail of the context's gateway, as `sesame audit --json` prints it, with
/// everything served so far in it.
pub(crate) fn trail(ctx: &Ctx) -> Vec<serde_json::Value> {
    // Completion records wait a moment to share an fsync: commit them before reading.
    crate::harness::block_on(ctx.gateway.audit.flushed()).unwrap();
    let data = ctx.dir.path().join("gateway");
    let out = sesame(&["audit", "--data-dir", data.to_str().unwrap(), "--json"]);
    out.ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The bodies of the records of one kind.
fn records(ctx: &Ctx, kind: &str) -> Vec<serde_json::Value> {
    trail(ctx)
        .into_iter()
        .map(|r| r["body"].clone())
        .filter(|b| b["kind"] == kind)
        .collect()
}

async fn every_request_gets_exactly_one_decision_record(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx
        .bucket_with(&[("data/a.csv", b"a"), ("secret/s", b"s")])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read, List]);
    let before = records(&ctx, "s3").len();

    // Seven requests, one record each: four allowed, three denied (the last one anonymous).
    ctx.aws(
        &cred,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            &b,
            "--prefix",
            "data/",
        ],
    )
    .ok();
    ctx.aws(
        &cred,
        &[
            "s3api",
            "head-object",
            "--bucket",
            &b,
            "--key",
            "data/a.csv",
        ],
    )
    .ok();
    ctx.get_object(&cred, &b, "data/a.csv").ok();
    ctx.aws(
        &cred,
        &[
            "s3api",
            "get-object",
            "--bucket",
            &b,
            "--key",
            "data/a.csv",
            "--range",
            "bytes=0-0",
            "/dev/null",
        ],
    )
    .ok();
    ctx.get_object(&cred, &b, "secret/s")
        .refused("AccessDenied");
    ctx.aws(
        &cred,
        &[
            "s3api",
            "put-object",
            "--bucket",
            &b,
            "--key",
            "data/new",
            "--body",
            &ctx.empty_file(),
        ],
    )
    .refused("AccessDenied");
    let mut curl = Command::new("curl");
    curl.args([
        "-s",
        "-o",
        "/dev/null",
        &format!("{}/{b}/data/a.csv", ctx.s3_url),
    ]);
    run(curl);

    let s3 = records(&ctx, "s3");
    let mine = &s3[before..];
    assert_eq!(mine.len(), 7, "{mine:#?}");
    let ops: Vec<(&str, &str)> = mine
        .iter()
        .map(|r| {
            (
                r["op"].as_str().unwrap_or("-"),
                r["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("ListObjectsV2", "allowed"),
            ("HeadObject", "allowed"),
            ("GetObject", "allowed"),
            ("GetObject", "allowed"),
            ("GetObject", "denied"),
            ("PutObject", "denied"),
            ("GetObject", "denied"),
        ]
    );
    let get = &mine[2];
    assert_eq!(get["principal"], "alice");
    assert_eq!(get["grant"], cred.grant_id.as_str());
    assert_eq!(get["access_key"], cred.access_key_id.as_str());
    assert_eq!(
        (get["bucket"].as_str(), get["key"].as_str()),
        (Some(b.as_str()), Some("data/a.csv"))
    );
    assert_eq!(get["client"], "127.0.0.1");
    assert!(
        get["user_agent"].as_str().unwrap().contains("aws-cli"),
        "{get}"
    );
    assert_eq!(mine[3]["range"], "bytes=0-0");
    assert!(
        mine[4]["error"]
            .as_str()
            .unwrap()
            .contains("does not cover"),
        "{}",
        mine[4]
    );
    // Anonymous: refused as anonymous, with no principal.
    assert_eq!(mine[6]["error_code"], "AccessDenied");
    assert!(
        mine[6]["principal"].is_null() && mine[6]["error"].as_str().unwrap().contains("anonymous")
    );
    // Each refusal also carries its reason as data, with what its message names; an
    // allowed request has none.
    let reasons: Vec<&str> = mine
        .iter()
        .map(|r| r["denial"]["reason"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        reasons,
        [
            "-",
            "-",
            "-",
            "-",
            "outside_scope",
            "action_not_allowed",
            "anonymous"
        ]
    );
    assert_eq!(
        (&mine[4]["denial"]["key"], &mine[4]["denial"]["action"]),
        (&serde_json::json!("secret/s"), &serde_json::json!("read"))
    );
    assert_eq!(mine[4]["denial"]["grant"]["id"], cred.grant_id.as_str());

    // Each request also has a completion record pointing at its decision.
    let completions = records(&ctx, "s3.complete");
    let done = completions
        .iter()
        .find(|c| c["decision"] == get_seq(&ctx, get))
        .expect("completion of the GetObject");
    // Every byte was delivered: complete, not "client gone".
    assert_eq!(
        (
            done["status"].as_u64(),
            done["bytes_out"].as_u64(),
            done["outcome"].as_str()
        ),
        (Some(200), Some(1), Some("complete"))
    );

    // The trail verifies.
    let data = ctx.dir.path().join("gateway");
    let out = sesame(&["audit", "verify", "--data-dir", data.to_str().unwrap()]);
    assert!(out.ok().stdout.contains("intact"), "{out:#?}");
}

/// The sequence number of a decision record (its position in the trail).
fn get_seq(ctx: &Ctx, body: &serde_json::Value) -> serde_json::Value {
    trail(ctx)
        .into_iter()
        .find(|r| &r["body"] == body)
        .map(|r| r["seq"].clone())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_every_kind_of_tampering_in_a_copy_of_the_trail() {
    let ctx = Ctx::start(BackendKind::Fs).await;
    let b = ctx.bucket_with(&[("data/a", b"a")]).await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    for _ in 0..3 {
        ctx.get_object(&cred, &b, "data/a").ok();
    }
    let trail = chain_dir(&ctx.config.data_dir).join("trail-000001.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&trail)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(lines.len() >= 6, "{lines:#?}");

    let check = |name: &str, lines: &[String]| {
        let copy = ctx.dir.path().join(name);
        std::fs::create_dir_all(copy.join("audit")).unwrap();
        std::fs::write(
            copy.join("audit/trail-000001.jsonl"),
            lines.join("\n") + "\n",
        )
        .unwrap();
        sesame(&["audit", "verify", "--data-dir", copy.to_str().unwrap()])
    };
    assert_eq!(check("intact", &lines).code, 0);

    let mut edited = lines.clone();
    edited[2] = edited[2].replace("GetObject", "HeadObject");
    check("edited", &edited)
        .refused("NOT INTACT at trail-000001.jsonl line 3: record 3 was edited");

    let mut deleted = lines.clone();
    deleted.remove(3);
    check("deleted", &deleted).refused("records 4..4 were deleted");

    let mut inserted = lines.clone();
    inserted.insert(1, lines[1].clone());
    check("inserted", &inserted)
        .refused("NOT INTACT at trail-000001.jsonl line 3: record 2 follows record 2");

    let mut reordered = lines.clone();
    reordered.swap(1, 2);
    check("reordered", &reordered).refused("record 3 follows record 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_refused_while_the_trail_cannot_be_written_and_nothing_is_lost() {
    let ctx = Ctx::start(BackendKind::Fs).await;
    let b = ctx.bucket_with(&[("data/a", b"a")]).await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    ctx.get_object(&cred, &b, "data/a").ok();

    // Swap the trail for a device that refuses every write (ENOSPC).
    let trail = chain_dir(&ctx.config.data_dir).join("trail-000001.jsonl");
    let kept = ctx.dir.path().join("kept-trail.jsonl");
    std::fs::rename(&trail, &kept).unwrap();
    std::os::unix::fs::symlink("/dev/full", &trail).unwrap();
    ctx.get_object(&cred, &b, "data/a")
        .refused("ServiceUnavailable")
        .refused("the audit trail cannot be written");

    // Back in place: served again, and the chain holds every record that was acknowledged.
    std::fs::remove_file(&trail).unwrap();
    std::fs::rename(&kept, &trail).unwrap();
    ctx.get_object(&cred, &b, "data/a").ok();
    let data = ctx.dir.path().join("gateway");
    let out = sesame(&["audit", "verify", "--data-dir", data.to_str().unwrap()]);
    assert!(out.ok().stdout.contains("intact"), "{out:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_after_parsing_are_recorded_against_their_decision() {
    let ctx = Ctx::start(BackendKind::Fs).await;
    let b = ctx
        .bucket_with(&[("data/a", b"a"), ("secret/s", b"s")])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[List]);
    // The prefix is only known once the request is parsed.
    ctx.aws(
        &cred,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            &b,
            "--prefix",
            "secret/",
        ],
    )
    .refused("does not cover listing");
    let all = trail(&ctx);
    let decision = all
        .iter()
        .rev()
        .find(|r| r["body"]["kind"] == "s3")
        .unwrap();
    let denial = all
        .iter()
        .rev()
        .find(|r| r["body"]["kind"] == "s3.denied")
        .unwrap();
    assert_eq!(denial["body"]["decision"], decision["seq"]);
    assert!(
        denial["body"]["error"]
            .as_str()
            .unwrap()
            .contains("does not cover listing"),
        "{denial}"
    );
}

/// A gateway on a directory backend with twenty small objects in `photos/2026/`, started with
/// `extra` arguments and environment, and a credential for reading and listing them.
fn serve_photos(
    dir: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (ServeProcess, IssuedCredential) {
    let objects = dir.join("objects");
    std::fs::create_dir_all(objects.join("photos/2026")).unwrap();
    for i in 0..20 {
        std::fs::write(objects.join(format!("photos/2026/{i:02}.jpg")), b"pixels").unwrap();
    }
    let mut args = vec!["--backend", objects.to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = ServeProcess::start(&dir.join("data"), &args, env);
    let cred = server.grant("s3://photos/2026/", "alice", "read,list");
    (server, cred)
}

/// Copies the twenty objects with aws-cli (a listing and twenty GETs), and waits until the
/// trail holds a completion record for every decision, so that nothing more is coming.
fn copy_photos(server: &ServeProcess, dir: &std::path::Path, cred: &IssuedCredential) {
    let out = aws_at(
        &server.s3_url,
        &dir.join("home"),
        cred,
        &[
            "s3",
            "cp",
            "--recursive",
            "s3://photos/2026/",
            dir.join("copy").to_str().unwrap(),
        ],
    );
    out.ok();
    crate::garage::readiness_poll("a completion record for every request", || {
        let kinds = kinds(&server.cli(&["audit", "--json"]));
        let count = |k: &str| kinds.iter().filter(|x| x.as_str() == k).count();
        let gets = count("\"s3\"");
        (gets >= 21 && count("\"s3.complete\"") == gets).then_some(())
    });
}

/// The `kind` of each record `sesame audit --json` printed, as JSON text (`"s3"`).
fn kinds(out: &Output) -> Vec<String> {
    out.ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["body"]["kind"].to_string())
        .collect()
}

/// The trail files of a data directory's chain, oldest first, and their content joined.
fn trail_files(data: &std::path::Path) -> (Vec<String>, String) {
    let chain = chain_dir(data);
    let mut names: Vec<String> = std::fs::read_dir(&chain)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("trail-"))
        .collect();
    names.sort();
    let text = names
        .iter()
        .map(|n| std::fs::read_to_string(chain.join(n)).unwrap())
        .collect();
    (names, text)
}

#[test]
fn a_small_rotation_size_spreads_the_trail_over_files_that_verify_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sesame.toml");
    std::fs::write(&config, "[audit]\nrotate_bytes = 2048\n").unwrap();
    let (server, cred) = serve_photos(dir.path(), &["--config", config.to_str().unwrap()], &[]);
    copy_photos(&server, dir.path(), &cred);

    let data = dir.path().join("data");
    let (names, text) = trail_files(&data);
    assert!(names.len() >= 5, "{names:?}");
    assert_eq!(names[0], "trail-000001.jsonl");
    // Each file ends at a record boundary, and every file before the last is full.
    for name in &names[..names.len() - 1] {
        let content = std::fs::read(chain_dir(&data).join(name)).unwrap();
        assert!(content.len() >= 2048 && content.ends_with(b"\n"), "{name}");
    }
    let out = sesame(&["audit", "verify", "--data-dir", data.to_str().unwrap()]);
    let records = text.lines().count();
    assert!(
        out.ok().stdout.contains(&format!(
            "intact, {records} records in {} file(s)",
            names.len()
        )),
        "{out:#?}"
    );
    // Queries read across every file.
    let gets = server.cli(&["audit", "--op", "GetObject", "--json"]);
    assert_eq!(gets.ok().stdout.lines().count(), 20, "{gets:#?}");

    // A middle file removed from a copy (read as a trail of its own) is named.
    let copy = dir.path().join("copy-data");
    std::fs::create_dir_all(copy.join("audit")).unwrap();
    for name in &names {
        std::fs::copy(chain_dir(&data).join(name), copy.join("audit").join(name)).unwrap();
    }
    std::fs::remove_file(copy.join("audit/trail-000002.jsonl")).unwrap();
    sesame(&["audit", "verify", "--data-dir", copy.to_str().unwrap()])
        .refused("NOT INTACT at trail-000003.jsonl line 1: trail-000002.jsonl deleted");
}

#[test]
fn forwarded_records_are_exactly_the_lines_of_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    // 503 to the first POST exercises the retry.
    let (url, posts) =
        crate::harness::http_receiver("/ingest", "503 Service Unavailable", "content-type");
    let (server, cred) = serve_photos(
        dir.path(),
        &[],
        &[
            ("SESAME_AUDIT_FORWARD_URL", url.as_str()),
            ("SESAME_AUDIT_FORWARD_SECRET", "siem-secret"),
            ("SESAME_AUDIT_ROTATE_BYTES", "4096"),
        ],
    );
    copy_photos(&server, dir.path(), &cred);

    let data = dir.path().join("data");
    let (names, trail) = trail_files(&data);
    assert!(names.len() >= 2, "forwarding spans a rotation: {names:?}");
    let forwarded = crate::garage::readiness_poll("every committed line forwarded", || {
        let posts = posts.lock().unwrap().clone();
        let joined: Vec<u8> = posts.iter().flat_map(|(_, _, b)| b.clone()).collect();
        (joined.len() >= trail.len()).then_some((posts, joined))
    });
    let (posts, joined) = forwarded;
    assert_eq!(String::from_utf8(joined).unwrap(), trail);
    for (kind, signature, body) in &posts {
        assert_eq!(kind, "application/x-ndjson");
        assert_eq!(signature, &sesame::secret::signature("siem-secret", body));
    }
}

/// A crash in the middle of writing a batch leaves a last line without its newline. Nobody
/// was told that record was written, so the gateway moves the torn bytes aside, says so in
/// the chain, and starts; every acknowledged record is still there and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_torn_by_a_crash_is_moved_aside_and_the_gateway_starts() {
    let ctx = Ctx::start(BackendKind::Fs).await;
    let b = ctx.bucket_with(&[("data/a", b"a")]).await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    ctx.get_object(&cred, &b, "data/a").ok();
    let before = records(&ctx, "s3").len();
    let torn = br#"{"seq":999,"prev":"ab","body":{"kind":"s3","op":"Get"#;
    let ctx = ctx
        .restarted_after(|config| {
            use std::io::Write as _;
            let dir = chain_dir(&config.data_dir);
            let newest = sesame::audit::files::list(&dir).unwrap().pop().unwrap();
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(newest.path)
                .unwrap();
            file.write_all(torn).unwrap();
        })
        .await;
    ctx.get_object(&cred, &b, "data/a").ok();
    assert_eq!(records(&ctx, "s3").len(), before + 1);
    let repaired: Vec<serde_json::Value> = records(&ctx, "lifecycle")
        .into_iter()
        .filter(|r| r["event"] == "audit.repaired")
        .collect();
    assert_eq!(repaired.len(), 1, "{repaired:?}");
    let kept = chain_dir(&ctx.config.data_dir).join(repaired[0]["kept_in"].as_str().unwrap());
    assert_eq!(std::fs::read(kept).unwrap(), torn);
    let data = ctx.dir.path().join("gateway");
    sesame(&["audit", "verify", "--data-dir", data.to_str().unwrap()]).ok();
}

/// Rotation and retention on a running gateway: a small rotation size spreads the trail over
/// many files; days later, a restart with a one-day retention deletes the old ones behind a
/// signed anchor, and the rest still verifies as one chain. Without the anchor it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_files_and_the_rest_still_verifies() {
    let ctx = Ctx::start(BackendKind::Fs).await;
    let ctx = ctx
        .restarted_after(|config| config.audit.rotate_bytes = 2048)
        .await;
    let b = ctx.bucket_with(&[("data/a", b"a")]).await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    for _ in 0..10 {
        ctx.get_object(&cred, &b, "data/a").ok();
    }
    let audit_dir = chain_dir(&ctx.config.data_dir);
    let before = sesame::audit::files::list(&audit_dir).unwrap();
    assert!(before.len() >= 4, "{before:?}");

    ctx.clock.advance(time::Duration::days(3));
    let ctx = ctx
        .restarted_after(|config| config.audit.retain_days = Some(1))
        .await;
    // Retention runs on the writer thread as the trail opens: anchor, deletions, then the
    // audit.pruned record, so the record is what says it is done.
    // Until that record is written the newest files may not exist yet, and the trail
    // cannot be read: that counts as "not yet".
    let data = ctx.dir.path().join("gateway");
    let pruned = crate::harness::readiness_poll_async("the audit.pruned record", || async {
        let out = sesame(&["audit", "--data-dir", data.to_str().unwrap(), "--json"]);
        if out.code != 0 {
            return Err(out.stderr);
        }
        let pruned: Vec<serde_json::Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["body"].clone())
            .filter(|r| r["kind"] == "lifecycle" && r["event"] == "audit.pruned")
            .collect();
        if pruned.is_empty() {
            Err("not yet".to_owned())
        } else {
            Ok(pruned)
        }
    })
    .await;
    assert_eq!(pruned.len(), 1, "{pruned:?}");
    assert!(audit_dir.join("pruned.json").exists());
    let after = sesame::audit::files::list(&audit_dir).unwrap();
    // The oldest files are gone (later records may have started new ones meanwhile).
    assert!(
        after[0].number > before[0].number,
        "{before:?} -> {after:?}"
    );
    let out = sesame(&["audit", "verify", "--data-dir", data.to_str().unwrap()]);
    assert!(out.ok().stdout.contains("intact"), "{out:?}");

    // A copy of the trail without its anchor: its head looks cut off, and verify says so.
    let copy = ctx.dir.path().join("copy");
    std::fs::create_dir_all(copy.join("audit")).unwrap();
    for file in &after {
        std::fs::copy(&file.path, copy.join("audit").join(file.name())).unwrap();
    }
    let out = sesame(&["audit", "verify", "--data-dir", copy.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out:?}");
}

/// The request id a client is answered with finds every record about that request: its
/// decision and its completion, for an allowed request and a denied one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_id_a_client_saw_finds_its_records() {
    use aws_sdk_s3::operation::RequestId as _;
    let ctx = Ctx::start(BackendKind::Fs).await;
    let b = ctx
        .bucket_with(&[("data/a", b"a"), ("secret/s", b"s")])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    let sdk = ctx.sdk(&cred);
    let got = sdk
        .get_object()
        .bucket(&b)
        .key("data/a")
        .send()
        .await
        .unwrap();
    let allowed = got.request_id().unwrap().to_owned();
    let _ = got.body.collect().await.unwrap();
    let err = sdk
        .get_object()
        .bucket(&b)
        .key("secret/s")
        .send()
        .await
        .unwrap_err();
    let denied = err.request_id().unwrap().to_owned();
    assert_ne!(allowed, denied);

    let data = ctx.dir.path().join("gateway");
    let about = |id: &str| -> Vec<serde_json::Value> {
        let out = sesame(&[
            "audit",
            "--data-dir",
            data.to_str().unwrap(),
            "--request-id",
            id,
            "--json",
        ]);
        out.ok()
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["body"].clone())
            .collect()
    };
    let records = crate::harness::readiness_poll_async("the completion record", || async {
        let records = about(&allowed);
        if records.len() == 2 {
            Ok(records)
        } else {
            Err(format!("{records:?}"))
        }
    })
    .await;
    assert_eq!(records[0]["decision"], "allowed");
    assert_eq!(records[0]["key"], "data/a");
    assert_eq!(records[1]["kind"], "s3.complete");
    assert_eq!(records[1]["bytes_out"], 1);
    let refused = about(&denied);
    assert_eq!(refused[0]["decision"], "denied");
    assert_eq!(refused[0]["key"], "secret/s");
}

/// `sesame audit` as an auditor runs it from another machine: it reaches the gateway only
/// through the control API (`--server`, a token, no data directory), takes the same filters,
/// and prints the records exactly as the trail stores them (with their replica in front), as
/// the gateway's own data directory gives them; a user outside the auditors group is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_auditor_queries_the_trail_with_filters() {
    let ctx = Ctx::start(BackendKind::Fs).await;
    let b = ctx
        .bucket_with(&[("data/a", b"a"), ("secret/s", b"s")])
        .await;
    let started = sesame::duration::rfc3339(
        sesame::clock::Clock::now(&ctx.clock) - time::Duration::seconds(1),
    );
    let alice = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    let bob = ctx.grant_to("bob", &format!("s3://{b}/data/"), &[Read]);
    ctx.get_object(&alice, &b, "data/a").ok();
    ctx.get_object(&alice, &b, "secret/s")
        .refused("AccessDenied");
    ctx.get_object(&bob, &b, "data/a").ok();

    let home = ctx.dir.path().join("auditor-home");
    std::fs::create_dir_all(&home).unwrap();
    let api = format!("http://{}", ctx.gateway.api_addr);
    let remote = |token: &str, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
        cmd.args(args)
            .env("SESAME_SERVER", &api)
            .env("SESAME_TOKEN", token)
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("SESAME_DATA_DIR");
        run(cmd)
    };
    let admin = ctx.gateway.admin_token.expose().to_owned();
    let token_of = |name: &str, group: &str| {
        let out = remote(&admin, &["user", "add", name, "--group", group, "--json"]);
        let added: serde_json::Value = serde_json::from_str(&out.ok().stdout).unwrap();
        added["token"].as_str().unwrap().to_owned()
    };
    let erin = token_of("erin", "auditors");
    let dave = token_of("dave", "analysts");

    // What alice was allowed to do since the test began: her GET, nothing of bob's, not her
    // denied GET, and the very lines the gateway's data directory holds.
    let filters = [
        "--principal",
        "alice",
        "--decision",
        "allowed",
        "--since",
        &started,
    ];
    let out = remote(&erin, &[&["audit", "--json"][..], &filters].concat());
    let lines: Vec<String> = out.ok().stdout.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 1, "{out:#?}");
    let record: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let body = &record["body"];
    assert_eq!(
        (&body["kind"], &body["op"], &body["key"], &body["grant"]),
        (
            &serde_json::json!("s3"),
            &serde_json::json!("GetObject"),
            &serde_json::json!("data/a"),
            &serde_json::json!(alice.grant_id)
        )
    );
    let data = ctx.dir.path().join("gateway");
    let local = sesame(
        &[
            &["audit", "--data-dir", data.to_str().unwrap(), "--json"][..],
            &filters,
        ]
        .concat(),
    );
    assert_eq!(local.ok().stdout, out.stdout);
    // The line as stored, with the replica whose chain holds it in front.
    let (_, stored) = trail_files(&data);
    let replica = sesame::server::replica_id(&data).unwrap();
    let shown = |l: &str| format!("{{\"replica\":\"{replica}\",{}", &l[1..]);
    assert!(stored.lines().any(|l| shown(l) == lines[0]), "{}", lines[0]);

    // The request id a client saw finds its decision and its completion, remotely too; the
    // table and CSV forms work the same way.
    let id = body["request_id"].as_str().unwrap().to_owned();
    let about = crate::harness::readiness_poll_async("the completion record", || async {
        let kinds = kinds(&remote(&erin, &["audit", "--json", "--request-id", &id]));
        if kinds.len() == 2 {
            Ok(kinds)
        } else {
            Err(format!("{kinds:?}"))
        }
    })
    .await;
    assert_eq!(about, ["\"s3\"", "\"s3.complete\""]);
    let table = remote(&erin, &["audit", "--request-id", &id]);
    let table = &table.ok().stdout;
    let header: Vec<&str> = table.split_whitespace().take(2).collect();
    assert_eq!(header, ["REPLICA", "SEQ"], "{table}");
    assert!(
        table.contains("GetObject") && table.contains("s3.complete"),
        "{table}"
    );
    let csv = remote(&erin, &["audit", "--format", "csv", "--request-id", &id]);
    assert_eq!(csv.ok().stdout.lines().count(), 3, "{csv:#?}");

    // Refusals for one reason, by the reason their records carry, remotely and locally
    // alike; the table shows it beside the error code; a reason that is none is a usage
    // error naming the ones there are.
    let why = [
        "audit",
        "--json",
        "--reason",
        "outside_scope",
        "--since",
        &started,
    ];
    let out = remote(&erin, &why);
    let lines: Vec<&str> = out.ok().stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{out:#?}");
    let record: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(record["body"]["key"], "secret/s");
    assert_eq!(record["body"]["denial"]["reason"], "outside_scope");
    let local = sesame(
        &[
            &["audit", "--data-dir", data.to_str().unwrap()][..],
            &why[1..],
        ]
        .concat(),
    );
    assert_eq!(local.ok().stdout, out.stdout);
    let table = remote(&erin, &["audit", "--reason", "outside_scope"]);
    let table = &table.ok().stdout;
    let adjacent = |line: &str, pair: [&str; 2]| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.windows(2).any(|w| w == pair)
    };
    let mut lines = table.lines();
    assert!(
        adjacent(lines.next().unwrap(), ["ERROR_CODE", "REASON"]),
        "{table}"
    );
    assert!(
        adjacent(lines.next().unwrap(), ["AccessDenied", "outside_scope"]),
        "{table}"
    );
    assert_eq!(lines.next(), None, "{table}");
    let out = remote(&erin, &["audit", "--reason", "outside-scope"]);
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(
        out.stderr
            .contains("--reason \"outside-scope\" is not a reason")
            && out.stderr.contains("outside_scope"),
        "{out:#?}"
    );

    // Nothing before a time that has not come; a time that is not one is a usage error.
    let out = remote(&erin, &["audit", "--json", "--since", "2999-01-01"]);
    assert_eq!(out.ok().stdout, "");
    let out = remote(&erin, &["audit", "--since", "tuesday"]);
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(
        out.stderr.contains("--since \"tuesday\" is not"),
        "{out:#?}"
    );

    // Outside the auditors group: refused, saying who may.
    remote(&dave, &["audit", "--json"]).refused(
        "dave may not read the audit trail: they are for the admin and the \"auditors\" group",
    );
}
