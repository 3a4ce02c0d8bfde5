//! Crash and churn: signed S3 traffic from several credentials while grants are created,
//! revoked (some aimed at their expiring-soon notice) and expire, requests are filed and
//! approved, and the gateway is killed (`SIGKILL`) at a random moment (so mid upload, mid revoke, mid
//! create or mid approve) or during start-up, then restarted, round after round. Checked from
//! the client side and from the trail: no acknowledged change is lost; no 2xx answers a
//! request sent after its grant's revocation was acknowledged or after its end; every 2xx has
//! its decision record; the trail verifies after every restart; acknowledged PUTs are on disk
//! and no object is ever half written; a revocation cuts a transfer in flight within a second.
//!
//! A few seconds per round; `SESAME_CHURN_ROUNDS` and `SESAME_CHURN_SEED` run it longer or
//! replay a run. The counts are printed (run with `--nocapture` to see them).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::operation::RequestId as _;
use sesame::clock::{Clock as _, SystemClock};
use sesame::grant::IssuedCredential;
use time::OffsetDateTime;

use crate::harness::{Output, ServeProcess, credential_from_json, sdk_config};
use crate::workflow::json;

const POLICY: &str = r#"
[[rule]]
name = "churn"
groups = ["oncall"]
scopes = ["s3://churn/"]
actions = ["read", "write", "list"]
max_duration = "1h"
approvals = 1
approver_groups = ["leads"]
"#;

/// A small deterministic generator (xorshift), so a failing run replays from its seed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

/// A credential the load uses, and the end of its grant as the client was told.
#[derive(Clone)]
struct Holder {
    cred: IssuedCredential,
}

/// One S3 request as the client saw it.
struct Sent {
    grant: String,
    at: OffsetDateTime,
    ok: bool,
    request_id: Option<String>,
    /// For an acknowledged PUT: its key and body.
    put: Option<(String, Vec<u8>)>,
}

/// What the gateway acknowledged, and what the clients saw.
#[derive(Default)]
struct Ledger {
    created: HashSet<String>,
    /// Grant id → when the client had the revocation's acknowledgement.
    revoked: HashMap<String, OffsetDateTime>,
    /// Grant id → its end.
    ends: HashMap<String, OffsetDateTime>,
    /// Request id → the grant its acknowledged approval made.
    approved: HashMap<String, String>,
    sent: Vec<Sent>,
    /// Every body ever sent for a key: what is on disk must be one of them, whole.
    bodies: HashMap<String, Vec<Vec<u8>>>,
    kills: usize,
    startup_kills: usize,
    aimed_at_notices: usize,
}

type Shared = Arc<Mutex<Ledger>>;

fn now() -> OffsetDateTime {
    SystemClock.now()
}

struct Site {
    dir: tempfile::TempDir,
    objects: PathBuf,
    policies: PathBuf,
    /// `--store`: none for the embedded default.
    store: Option<String>,
}

impl Site {
    fn new(store: Option<String>) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        std::fs::create_dir_all(objects.join("churn")).unwrap();
        std::fs::write(objects.join("churn/seed.txt"), b"seed").unwrap();
        let big: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(objects.join("churn/big.bin"), big).unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir_all(&policies).unwrap();
        std::fs::write(policies.join("churn.toml"), POLICY).unwrap();
        Site {
            dir,
            objects,
            policies,
            store,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn args(&self) -> Vec<&str> {
        let mut args = vec![
            "--backend",
            self.objects.to_str().unwrap(),
            "--policies",
            self.policies.to_str().unwrap(),
        ];
        if let Some(store) = &self.store {
            args.extend(["--store", store.as_str()]);
        }
        args
    }

    fn serve(&self) -> ServeProcess {
        ServeProcess::start(&self.data(), &self.args(), &[])
    }

    /// Starts the gateway and kills it `after` into its start-up, ready or not.
    fn kill_during_startup(&self, after: Duration) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sesame"))
            .args([
                "serve",
                "--s3-addr",
                "127.0.0.1:0",
                "--api-addr",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(self.data())
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(after);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// `sesame ARGS` against whatever gateway serves the data directory, as `token` or the admin.
fn cli(data: &Path, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.args(args)
        .env("SESAME_DATA_DIR", data)
        .env_remove("SESAME_SERVER")
        .env_remove("SESAME_TOKEN");
    if let Some(token) = token {
        cmd.env("SESAME_TOKEN", token);
    }
    crate::harness::run(cmd)
}

fn create_grant(data: &Path, seconds: u32) -> Option<IssuedCredential> {
    let out = cli(
        data,
        None,
        &[
            "grant",
            "create",
            "s3://churn/",
            "--to",
            "carol",
            "--actions",
            "read,write,list",
            "--for",
            &format!("{seconds}s"),
            "--format",
            "json",
        ],
    );
    (out.code == 0).then(|| credential_from_json(&out.stdout))
}

/// The S3 load of one credential until `stop`: GETs, PUTs of new keys and overwrites of one
/// shared key, every answer written down.
async fn load(s3_url: String, holder: Holder, ledger: Shared, stop: Arc<AtomicBool>, tag: String) {
    let config = sdk_config(&s3_url, &holder.cred)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);
    let grant = holder.cred.grant_id.clone();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let at = now();
        let (ok, request_id, put) = match n % 3 {
            0 => match s3.get_object().bucket("churn").key("seed.txt").send().await {
                Ok(out) => {
                    let id = out.request_id().map(str::to_owned);
                    let body = out
                        .body
                        .collect()
                        .await
                        .map(aws_sdk_s3::primitives::AggregatedBytes::into_bytes);
                    (body.is_ok_and(|b| &b[..] == b"seed"), id, None)
                }
                Err(e) => (false, e.request_id().map(str::to_owned), None),
            },
            rest => {
                let key = if rest == 1 {
                    format!("{tag}-{n}.bin")
                } else {
                    "shared.bin".to_owned()
                };
                let body: Vec<u8> = format!("{tag}-{n};")
                    .bytes()
                    .cycle()
                    .take(64 * 1024 + (n as usize % 7) * 4096)
                    .collect();
                ledger
                    .lock()
                    .unwrap()
                    .bodies
                    .entry(key.clone())
                    .or_default()
                    .push(body.clone());
                match s3
                    .put_object()
                    .bucket("churn")
                    .key(&key)
                    .body(body.clone().into())
                    .send()
                    .await
                {
                    Ok(out) => (true, out.request_id().map(str::to_owned), Some((key, body))),
                    Err(e) => (false, e.request_id().map(str::to_owned), None),
                }
            }
        };
        ledger.lock().unwrap().sent.push(Sent {
            grant: grant.clone(),
            at,
            ok,
            request_id,
            put,
        });
        if !ok {
            // The gateway is down or the grant has ended: do not spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Grant churn until `stop`: creations, revocations, one aimed at the expiring-soon notice
/// of its grant, short grants that expire, and requests filed and approved.
fn control(
    data: &Path,
    tokens: &(String, String),
    ledger: &Shared,
    holders: &Mutex<Vec<Holder>>,
    stop: &AtomicBool,
    dice: &mut Dice,
) {
    let mut turn = 0u64;
    while !stop.load(Ordering::Relaxed) {
        turn += 1;
        match turn % 4 {
            // A grant for the load, or a short one that will expire under it.
            1 | 3 => {
                let seconds = if turn % 4 == 1 { 1800 } else { 2 };
                if let Some(cred) = create_grant(data, seconds) {
                    let mut l = ledger.lock().unwrap();
                    l.created.insert(cred.grant_id.clone());
                    l.ends.insert(cred.grant_id.clone(), cred.expiration);
                    holders.lock().unwrap().push(Holder { cred });
                }
            }
            // Revoke a grant the load is using, or one at its expiring-soon notice (its
            // notice falls due one second after creation).
            2 => {
                let aimed = dice.below(2) == 0;
                let target = if aimed {
                    create_grant(data, 601).map(|cred| {
                        let mut l = ledger.lock().unwrap();
                        l.created.insert(cred.grant_id.clone());
                        l.ends.insert(cred.grant_id.clone(), cred.expiration);
                        drop(l);
                        std::thread::sleep(Duration::from_millis(990 + dice.below(20)));
                        cred.grant_id
                    })
                } else {
                    let live = holders.lock().unwrap();
                    (!live.is_empty()).then(|| {
                        live[dice.below(live.len() as u64) as usize]
                            .cred
                            .grant_id
                            .clone()
                    })
                };
                if let Some(id) = target {
                    let out = cli(data, None, &["grant", "revoke", &id, "--json"]);
                    // A grant that ended first (a two-second one, expired just before) is
                    // answered "already ended, nothing changed": no revocation was made.
                    if out.code == 0 && json(&out.stdout)["state"] == "revoked" {
                        let mut l = ledger.lock().unwrap();
                        l.revoked.entry(id).or_insert_with(now);
                        if aimed {
                            l.aimed_at_notices += 1;
                        }
                    }
                }
            }
            // A request filed by alice and approved by bob.
            _ => {
                let out = cli(
                    data,
                    Some(&tokens.0),
                    &[
                        "request",
                        "s3://churn/",
                        "--read",
                        "--write",
                        "--list",
                        "--for",
                        "10m",
                        "--json",
                    ],
                );
                if out.code != 0 {
                    continue;
                }
                let id = json(&out.stdout)["id"].as_str().unwrap().to_owned();
                let out = cli(data, Some(&tokens.1), &["approve", &id, "--json"]);
                if out.code == 0 {
                    let approved = json(&out.stdout);
                    let grant = approved["grant_id"].as_str().unwrap().to_owned();
                    ledger.lock().unwrap().approved.insert(id, grant);
                }
            }
        }
    }
}

/// What the restarted gateway says must match everything it acknowledged.
fn check_acknowledged(server: &ServeProcess, ledger: &Ledger) {
    let verified = server.cli(&["audit", "verify"]);
    assert!(verified.ok().stdout.contains("intact"), "{verified:#?}");
    let grants = json(&server.cli(&["grants", "--json"]).ok().stdout);
    let states: HashMap<&str, &str> = grants
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["id"].as_str().unwrap(), g["state"].as_str().unwrap()))
        .collect();
    for id in &ledger.created {
        assert!(
            states.contains_key(id.as_str()),
            "acknowledged grant {id} was lost"
        );
    }
    for id in ledger.revoked.keys() {
        assert_eq!(
            states.get(id.as_str()).copied(),
            Some("revoked"),
            "the acknowledged revocation of {id} was undone"
        );
    }
    let requests = json(&server.cli(&["requests", "--json"]).ok().stdout);
    for (id, grant) in &ledger.approved {
        let request = requests
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap_or_else(|| panic!("acknowledged request {id} was lost"));
        // An approved request shows the state of its grant.
        assert!(
            !["pending", "denied", "withdrawn", "timed_out"]
                .contains(&request["state"].as_str().unwrap()),
            "{request}"
        );
        assert_eq!(request["grant_id"], grant.as_str(), "{request}");
        assert!(
            states.contains_key(grant.as_str()),
            "grant {grant} of {id} was lost"
        );
    }
}

/// Client-side and trail invariants over everything that was sent.
fn check_traffic(server: &ServeProcess, site: &Site, ledger: &Ledger) {
    let decided: HashSet<String> = server
        .cli(&["audit", "--json"])
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["body"].clone())
        .filter(|b| b["kind"] == "s3")
        .filter_map(|b| b["request_id"].as_str().map(str::to_owned))
        .collect();
    for sent in ledger.sent.iter().filter(|s| s.ok) {
        if let Some(revoked) = ledger.revoked.get(&sent.grant) {
            assert!(
                sent.at < *revoked,
                "a request sent at {} after grant {}'s revocation was acknowledged at {revoked} was served",
                sent.at,
                sent.grant
            );
        }
        let end = ledger.ends[&sent.grant];
        assert!(
            sent.at < end,
            "a request sent at {} after grant {} ended at {end} was served",
            sent.at,
            sent.grant
        );
        let id = sent
            .request_id
            .as_ref()
            .expect("a 2xx carries x-amz-request-id");
        assert!(
            decided.contains(id),
            "served request {id} has no decision record"
        );
        if let Some((key, body)) = &sent.put
            && key != "shared.bin"
        {
            let stored = std::fs::read(site.objects.join("churn").join(key))
                .unwrap_or_else(|e| panic!("acknowledged PUT of {key} is not on disk: {e}"));
            assert!(
                stored == *body,
                "acknowledged PUT of {key} is not what was sent"
            );
        }
    }
    for (key, bodies) in &ledger.bodies {
        if let Ok(stored) = std::fs::read(site.objects.join("churn").join(key)) {
            assert!(
                bodies.contains(&stored),
                "{key} holds {} bytes that no PUT sent whole",
                stored.len()
            );
        }
    }
}

/// A revocation stops a download in flight within a second.
async fn check_cut_in_flight(server: &ServeProcess) {
    let cred = create_grant(&server.data_dir, 600).expect("a grant for the download");
    let s3 = aws_sdk_s3::Client::from_conf(sdk_config(&server.s3_url, &cred).build());
    let out = s3
        .get_object()
        .bucket("churn")
        .key("big.bin")
        .send()
        .await
        .unwrap();
    let mut body = out.body;
    let mut got = body.next().await.unwrap().unwrap().len();
    server.cli(&["grant", "revoke", &cred.grant_id]).ok();
    let revoked = std::time::Instant::now();
    let ended = loop {
        match body.next().await {
            Some(Ok(chunk)) => got += chunk.len(),
            Some(Err(_)) => break true,
            None => break false,
        }
    };
    let took = revoked.elapsed();
    assert!(
        ended && got < 32 << 20,
        "the download was not cut ({got} bytes)"
    );
    assert!(
        took < Duration::from_secs(1),
        "the download ran on {took:?} after its revocation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_across_kills_under_churn() {
    churn(None, 5).await;
}

/// The same story with the state in PostgreSQL: every acknowledged change is committed
/// there before it is answered, and a killed gateway restarts from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_across_kills_under_churn_on_postgres() {
    let database = crate::postgres::Database::create().await;
    churn(Some(database.url.clone()), 3).await;
}

async fn churn(store: Option<String>, default_rounds: usize) {
    let rounds: usize = std::env::var("SESAME_CHURN_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default_rounds);
    let seed: u64 = std::env::var("SESAME_CHURN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) | 1);
    let site = Site::new(store);
    let data = site.data();
    let mut server = site.serve();
    let tokens = (
        crate::workflow::add_user(&server, "alice", "oncall"),
        crate::workflow::add_user(&server, "bob", "leads"),
    );
    let ledger: Shared = Arc::default();
    let mut dice = Dice(seed);
    let mut restarts = Vec::new();

    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let holders: Arc<Mutex<Vec<Holder>>> = Arc::default();
        for _ in 0..2 {
            if let Some(cred) = create_grant(&data, 1800) {
                let mut l = ledger.lock().unwrap();
                l.created.insert(cred.grant_id.clone());
                l.ends.insert(cred.grant_id.clone(), cred.expiration);
                holders.lock().unwrap().push(Holder { cred });
            }
        }
        let control_task = {
            let (data, tokens, ledger, holders, stop) = (
                data.clone(),
                tokens.clone(),
                ledger.clone(),
                holders.clone(),
                stop.clone(),
            );
            let mut dice = Dice(dice.below(u64::MAX) | 1);
            tokio::task::spawn_blocking(move || {
                control(&data, &tokens, &ledger, &holders, &stop, &mut dice);
            })
        };
        // Load for every holder, including those the control adds as it goes.
        let loads = {
            let (url, ledger, holders, stop) = (
                server.s3_url.clone(),
                ledger.clone(),
                holders.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut started = 0;
                let mut tasks = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let new: Vec<Holder> = holders.lock().unwrap()[started..].to_vec();
                    for holder in new {
                        started += 1;
                        let tag = format!("r{round}-{started}");
                        tasks.push(tokio::spawn(load(
                            url.clone(),
                            holder,
                            ledger.clone(),
                            stop.clone(),
                            tag,
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                for task in tasks {
                    task.await.unwrap();
                }
            })
        };
        // The kill falls at a random moment of the round's churn.
        tokio::time::sleep(Duration::from_millis(1500 + dice.below(2000))).await;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        ledger.lock().unwrap().kills += 1;
        stop.store(true, Ordering::Relaxed);
        control_task.await.unwrap();
        loads.await.unwrap();

        if round % 2 == 1 {
            site.kill_during_startup(Duration::from_millis(dice.below(150)));
            ledger.lock().unwrap().startup_kills += 1;
        }
        let started = std::time::Instant::now();
        server = site.serve();
        restarts.push(started.elapsed());
        check_acknowledged(&server, &ledger.lock().unwrap());
    }

    check_traffic(&server, &site, &ledger.lock().unwrap());
    check_cut_in_flight(&server).await;

    let l = ledger.lock().unwrap();
    let answered = l.sent.iter().filter(|s| s.ok).count();
    println!(
        "churn on {} (seed {seed}): {rounds} rounds, {} kills ({} during start-up), {} requests ({answered} served, {} refused or failed), {} grants created, {} revocations ({} aimed at notices), {} approvals, slowest restart {:?}",
        site.store.as_ref().map_or("redb", |_| "PostgreSQL"),
        l.kills,
        l.startup_kills,
        l.sent.len(),
        l.sent.len() - answered,
        l.created.len(),
        l.revoked.len(),
        l.aimed_at_notices,
        l.approved.len(),
        restarts.iter().max().unwrap()
    );
    assert!(answered > 0 && !l.revoked.is_empty() && !l.approved.is_empty());
}
