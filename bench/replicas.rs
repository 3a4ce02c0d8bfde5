//! The store under load: how long a revocation through one replica takes to be refused on
//! another (both on one PostgreSQL), how long issuing a grant takes on redb and on
//! PostgreSQL, and S3 throughput with the state on PostgreSQL next to redb, with the store
//! transactions each workload caused (none per S3 request is the aim). Run by `bench/run`,
//! which starts a private PostgreSQL server; appends to `bench/RESULTS.md`.

// Rates and percentiles are statistics over counts far below 2^52; main is one linear
// script (start, measure, report).
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::too_many_lines
)]

mod common;
#[path = "../tests/it/garage.rs"]
mod garage;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use common::{REGION, client, cpu_time, spawn_printing_url, ticks_per_sec};
use http_body_util::BodyExt as _;

const BUCKET: &str = "bench";
const SMALL: usize = 4 * 1024;
/// Revocations measured, and grants issued per store.
const REVOCATIONS: usize = 40;
const GRANTS: usize = 200;

/// A `sesame serve` process and how to reach its control API.
struct Gateway {
    child: Child,
    s3_url: String,
    api_url: String,
    admin_token: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(
    data_dir: &Path,
    backend: &str,
    store: Option<&str>,
    env: &[(&str, &str)],
) -> Gateway {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.args([
        "serve",
        "--s3-addr",
        "127.0.0.1:0",
        "--api-addr",
        "127.0.0.1:0",
    ])
    .args([
        "--backend",
        backend,
        "--backend-region",
        REGION,
        "--data-dir",
    ])
    .arg(data_dir)
    .envs(env.iter().copied())
    .env("SESAME_LOG", "warn");
    if let Some(store) = store {
        cmd.args(["--store", store]);
    }
    let (child, s3_url) = spawn_printing_url(cmd);
    let s3_url = s3_url.expect("sesame serve printed its URL");
    let read = |file: &str| {
        std::fs::read_to_string(data_dir.join(file))
            .unwrap()
            .trim()
            .to_owned()
    };
    Gateway {
        child,
        s3_url,
        api_url: read(sesame::server::API_URL_FILE),
        admin_token: read(sesame::server::ADMIN_TOKEN_FILE),
    }
}

/// Control API calls as the admin.
struct Api {
    http: sesame::http::HttpClient,
}

impl Api {
    async fn post(
        &self,
        gateway: &Gateway,
        path: &str,
        body: &serde_json::Value,
    ) -> serde_json::Value {
        let req = hyper::Request::post(format!("{}{path}", gateway.api_url))
            .header("authorization", format!("Bearer {}", gateway.admin_token))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let res = self
            .http
            .request(req)
            .await
            .expect("the control API answers");
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        assert!(status.is_success(), "{path}: {status} {bytes:?}");
        serde_json::from_slice(&bytes).expect("json")
    }

    /// A grant on the bench bucket for `who`, and an S3 client for it through `on`.
    async fn grant(
        &self,
        issuer: &Gateway,
        on: &Gateway,
        who: &str,
    ) -> (String, aws_sdk_s3::Client) {
        let created = self
            .post(
                issuer,
                "/v1/grants",
                &serde_json::json!({
                    "scope": format!("s3://{BUCKET}/"),
                    "principal": who,
                    "actions": ["read", "write", "list"],
                    "duration_seconds": 6 * 3600,
                }),
            )
            .await;
        let c = &created["credentials"];
        let field = |k: &str| c[k].as_str().unwrap().to_owned();
        let client = client(
            &on.s3_url,
            &field("AccessKeyId"),
            &field("SecretAccessKey"),
            Some(&field("SessionToken")),
        );
        (field("GrantId"), client)
    }
}

/// The quantile `q` of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Transactions committed and rolled back in `database` so far, as PostgreSQL counts them
/// (its statistics reach the view within about a second).
async fn transactions(admin: &tokio_postgres::Client, database: &str) -> i64 {
    admin
        .query_one(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
            &[&database],
        )
        .await
        .unwrap()
        .get(0)
}

/// `clients` tasks each running `n` GETs (or PUTs) of 4 KiB: operations per second.
async fn small_ops(
    client: &aws_sdk_s3::Client,
    put: bool,
    clients: usize,
    n: usize,
    payload: &Bytes,
) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, payload) = (client.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                if put {
                    client
                        .put_object()
                        .bucket(BUCKET)
                        .key(format!("dst/{c}/{i}"))
                        .body(ByteStream::from(payload.clone()))
                        .customize()
                        .disable_payload_signing()
                        .send()
                        .await
                        .expect("put");
                } else {
                    let out = client
                        .get_object()
                        .bucket(BUCKET)
                        .key("src/small")
                        .send()
                        .await
                        .expect("get");
                    out.body.collect().await.expect("body");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (clients * n) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let postgres = std::env::var("SESAME_TEST_POSTGRES")
        .expect("SESAME_TEST_POSTGRES: bench/run starts a PostgreSQL server for this bench");
    let (admin, connection) = tokio_postgres::connect(&postgres, tokio_postgres::NoTls)
        .await
        .expect("the PostgreSQL server");
    tokio::spawn(connection);
    let database = format!("sesame_bench_{}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .unwrap();
    let store_url = format!("{}/{database}", postgres.rsplit_once('/').unwrap().0);

    let garage_bin = garage::bin();
    let g = garage::start(&garage_bin, REGION);
    let direct = client(&g.endpoint, &g.access_key, &g.secret, None);
    direct.create_bucket().bucket(BUCKET).send().await.unwrap();
    let payload = Bytes::from(vec![7u8; SMALL]);
    direct
        .put_object()
        .bucket(BUCKET)
        .key("src/small")
        .body(ByteStream::from(payload.clone()))
        .send()
        .await
        .unwrap();
    let backend_env = [
        ("SESAME_BACKEND_ACCESS_KEY_ID", g.access_key.as_str()),
        ("SESAME_BACKEND_SECRET_ACCESS_KEY", g.secret.as_str()),
    ];
    let dirs = tempfile::tempdir().unwrap();
    let dir = |name: &str| -> PathBuf { dirs.path().join(name) };
    let on_redb = start_gateway(&dir("redb"), &g.endpoint, None, &backend_env);
    let a = start_gateway(&dir("pg-a"), &g.endpoint, Some(&store_url), &backend_env);
    let b = start_gateway(&dir("pg-b"), &g.endpoint, Some(&store_url), &backend_env);
    let api = Api {
        http: sesame::http::client().unwrap(),
    };

    // Revocation propagation: a grant issued through A, used through B until it works;
    // then pollers on B run back to back while the grant is revoked through A, and the time
    // from sending the revocation to B's first refusal is taken.
    let mut propagation = Vec::new();
    let mut revoke_calls = Vec::new();
    for i in 0..REVOCATIONS {
        let (grant, on_b) = api.grant(&a, &b, &format!("bench-{i}")).await;
        while on_b
            .head_object()
            .bucket(BUCKET)
            .key("src/small")
            .send()
            .await
            .is_err()
        {}
        let refused = Arc::new(AtomicBool::new(false));
        let mut pollers = Vec::new();
        for _ in 0..2 {
            let (on_b, refused) = (on_b.clone(), refused.clone());
            pollers.push(tokio::spawn(async move {
                loop {
                    let answer = on_b
                        .head_object()
                        .bucket(BUCKET)
                        .key("src/small")
                        .send()
                        .await;
                    if answer.is_err() {
                        refused.store(true, Ordering::Release);
                        return Some(Instant::now());
                    }
                    if refused.load(Ordering::Acquire) {
                        return None;
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = Instant::now();
        api.post(
            &a,
            &format!("/v1/grants/{grant}/revoke"),
            &serde_json::json!({}),
        )
        .await;
        revoke_calls.push(sent.elapsed());
        let mut first = None::<Instant>;
        for p in pollers {
            if let Some(at) = p.await.unwrap() {
                first = Some(first.map_or(at, |f| f.min(at)));
            }
        }
        propagation.push(first.unwrap().saturating_duration_since(sent));
    }
    propagation.sort();
    revoke_calls.sort();

    // Grant issue latency: POST /v1/grants, one after another, on each store.
    let mut issue_rows = String::new();
    for (name, gateway) in [("redb", &on_redb), ("PostgreSQL", &a)] {
        let mut took = Vec::new();
        for i in 0..GRANTS {
            let begun = Instant::now();
            api.grant(gateway, gateway, &format!("issue-{name}-{i}"))
                .await;
            took.push(begun.elapsed());
        }
        took.sort();
        let _ = writeln!(
            issue_rows,
            "| {name} | {GRANTS} | {} | {} |",
            ms(quantile(&took, 0.5)),
            ms(quantile(&took, 0.99))
        );
    }

    // S3 throughput with the state on redb and on PostgreSQL, with the store transactions
    // each workload caused and each gateway's CPU per 1,000 requests.
    let (_, redb_client) = api.grant(&on_redb, &on_redb, "throughput").await;
    let (_, pg_client) = api.grant(&a, &a, "throughput").await;
    for client in [&redb_client, &pg_client] {
        small_ops(client, false, 4, 25, &payload).await;
    }
    let ticks = ticks_per_sec();
    let mut throughput_rows = String::new();
    for (label, put, clients, n) in [
        ("GET 4 KiB", false, 1, 400),
        ("GET 4 KiB", false, 16, 100),
        ("PUT 4 KiB", true, 1, 400),
        ("PUT 4 KiB", true, 16, 100),
    ] {
        let requests = (clients * n) as f64;
        let mut measured = Vec::new();
        for (gateway, client) in [(&on_redb, &redb_client), (&a, &pg_client)] {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let xacts = transactions(&admin, &database).await;
            let cpu = cpu_time(gateway.child.id(), ticks);
            let began = Instant::now();
            let rate = small_ops(client, put, clients, n, &payload).await;
            let cpu = cpu_time(gateway.child.id(), ticks)
                .saturating_sub(cpu)
                .as_secs_f64();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            // The window the count covers: the workload and the wait for the statistics.
            let window = began.elapsed().as_secs_f64();
            let xacts = (transactions(&admin, &database).await - xacts) as f64;
            measured.push((
                rate,
                cpu * 1000.0 / requests,
                xacts * 1000.0 / requests,
                xacts / window,
            ));
        }
        let [(redb, redb_cpu, _, _), (pg, pg_cpu, pg_xacts, pg_rate)] = [measured[0], measured[1]];
        eprintln!(
            "{label} {clients:>2} clients: redb {redb:.0} ops/s, PostgreSQL {pg:.0} ops/s, {pg_xacts:.1} store transactions per 1k, {pg_rate:.1} per second"
        );
        let _ = writeln!(
            throughput_rows,
            "| {label} | {clients} | {redb:.0} ops/s | {pg:.0} ops/s | {:.2} | {redb_cpu:.2} | {pg_cpu:.2} | {pg_xacts:.1} | {pg_rate:.1} |",
            pg / redb
        );
    }

    let report = format!(
        "\n## The store: replicas on PostgreSQL next to redb (`bench/replicas.rs`)\n\n\
         Two gateways (`pg-a`, `pg-b`) on one PostgreSQL {} database and one on redb, all\n\
         in front of the same Garage, on the same {} cores as everything else.\n\n\
         Revocation propagation: a grant issued through A, revoked through A's control API\n\
         while two HEAD pollers run back to back on B; from sending the revocation to B's\n\
         first refusal, over {REVOCATIONS} revocations: p50 {} ms, p99 {} ms (the revoke call\n\
         itself: p50 {} ms, p99 {} ms).\n\n\
         Grant issue latency (`POST /v1/grants`, admin token, one after another):\n\n\
         | store | grants | p50 ms | p99 ms |\n|---|---|---|---|\n{issue_rows}\n\
         S3 throughput with the state in each store. Store transactions are PostgreSQL's count\n\
         for the database while the workload ran on A (both gateways' feed reads and A's usage\n\
         writes included), per 1,000 S3 requests and per second: a count that follows the\n\
         seconds rather than the requests is work on a timer, not a store round trip per\n\
         request. CPU is the gateway process's own per 1,000 requests:\n\n\
         | workload | clients | redb | PostgreSQL | PostgreSQL/redb | redb CPU s/1k | PostgreSQL CPU s/1k | store transactions per 1k | per second |\n\
         |---|---|---|---|---|---|---|---|---|\n{throughput_rows}",
        admin
            .query_one("SHOW server_version", &[])
            .await
            .map(|r| r.get::<_, String>(0))
            .unwrap_or_default(),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        ms(quantile(&propagation, 0.5)),
        ms(quantile(&propagation, 0.99)),
        ms(quantile(&revoke_calls, 0.5)),
        ms(quantile(&revoke_calls, 0.99)),
    );
    print!("{report}");
    let results = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/RESULTS.md");
    let mut all = std::fs::read_to_string(results).unwrap_or_default();
    if let Some(at) = all.find("\n## The store:") {
        all.truncate(at);
    }
    all.push_str(&report);
    std::fs::write(results, all).expect("write bench/RESULTS.md");
    drop((on_redb, a, b));
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await;
}
