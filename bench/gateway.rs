//! Throughput and latency of Sesame against the same Garage reached directly and through
//! s3s-proxy (a pass-through with no checks), all in one run; then Sesame with TLS on its S3
//! listener next to plain HTTP, with the gateway's CPU time per GiB and per 1,000 requests.
//! Run by `bench/run`, which installs Garage and s3s-proxy; writes `bench/RESULTS.md`.

// Rates and percentiles are statistics over counts far below 2^52; the main function is one
// linear script (start, measure, report).
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
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use common::{REGION, client, cpu_time, ticks_per_sec};
use http_body_util::BodyExt as _;

const BUCKET: &str = "bench";
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[derive(Clone, Copy)]
enum Op {
    Get,
    Put,
}

struct Workload {
    name: &'static str,
    op: Op,
    size: usize,
    clients: usize,
    ops_per_client: usize,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "GET 4 KiB",
        op: Op::Get,
        size: 4 * KIB,
        clients: 1,
        ops_per_client: 400,
    },
    Workload {
        name: "GET 4 KiB",
        op: Op::Get,
        size: 4 * KIB,
        clients: 16,
        ops_per_client: 50,
    },
    Workload {
        name: "PUT 4 KiB",
        op: Op::Put,
        size: 4 * KIB,
        clients: 1,
        ops_per_client: 300,
    },
    Workload {
        name: "PUT 4 KiB",
        op: Op::Put,
        size: 4 * KIB,
        clients: 16,
        ops_per_client: 30,
    },
    Workload {
        name: "GET 256 MiB",
        op: Op::Get,
        size: 256 * MIB,
        clients: 1,
        ops_per_client: 3,
    },
    Workload {
        name: "GET 256 MiB",
        op: Op::Get,
        size: 256 * MIB,
        clients: 16,
        ops_per_client: 1,
    },
    Workload {
        name: "PUT 256 MiB",
        op: Op::Put,
        size: 256 * MIB,
        clients: 1,
        ops_per_client: 3,
    },
    Workload {
        name: "PUT 256 MiB",
        op: Op::Put,
        size: 256 * MIB,
        clients: 16,
        ops_per_client: 1,
    },
];

struct Target {
    name: &'static str,
    client: aws_sdk_s3::Client,
    pid: u32,
}

#[derive(Clone, Copy)]
struct Measured {
    /// Bytes per second moved by all clients together.
    bytes_per_sec: f64,
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// A throwaway CA and a certificate from it for `localhost` and 127.0.0.1, written to
/// `dir`: (CA bundle, certificate, key).
fn throwaway_certificate(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    let mut ca = rcgen::CertificateParams::default();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "sesame-bench-ca");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let paths = [
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    ];
    for (path, pem) in paths
        .iter()
        .zip([ca.pem(), leaf.pem(), key.serialize_pem()])
    {
        std::fs::write(path, pem).unwrap();
    }
    paths
}

/// `sesame serve` in front of the bench's Garage with `extra` flags, and a client holding a
/// grant on the bench bucket; `ca` is the bundle the CLI and the client trust, for TLS.
fn start_sesame(
    g: &garage::Garage,
    data_dir: &std::path::Path,
    extra: &[&str],
    ca: Option<&std::path::Path>,
) -> (Child, aws_sdk_s3::Client) {
    let (sesame, issued) = common::start_sesame(g, data_dir, extra, ca);
    let mut client = client(&issued.url, &issued.id, &issued.secret, Some(&issued.token));
    if let Some(ca) = ca {
        let http = sesame::s3::http_client_trusting(&std::fs::read(ca).unwrap());
        client =
            aws_sdk_s3::Client::from_conf(client.config().to_builder().http_client(http).build());
    }
    (sesame, client)
}

fn peak_rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

async fn run(target: &Target, w: &Workload, payload: &Bytes) -> Measured {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..w.clients {
        let client = target.client.clone();
        let payload = payload.clone();
        let (op, size, n) = (w.op, w.size, w.ops_per_client);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(n);
            for i in 0..n {
                let begun = Instant::now();
                match op {
                    Op::Get => {
                        let out = client
                            .get_object()
                            .bucket(BUCKET)
                            .key(format!("src/{size}"))
                            .send()
                            .await
                            .expect("get");
                        let mut body = out.body;
                        let mut got = 0;
                        while let Some(chunk) = body.next().await {
                            got += chunk.expect("chunk").len();
                        }
                        assert_eq!(got, size);
                    }
                    Op::Put => {
                        client
                            .put_object()
                            .bucket(BUCKET)
                            .key(format!("dst/{size}/{c}/{i}"))
                            .body(ByteStream::from(payload.clone()))
                            .customize()
                            .disable_payload_signing()
                            .send()
                            .await
                            .expect("put");
                    }
                }
                latencies.push(begun.elapsed());
            }
            latencies
        }));
    }
    measured(start, tasks, w.size).await
}

/// Throughput and latency quantiles of tasks started at `start`, each returning the
/// latencies of the operations it ran on objects of `size` bytes.
async fn measured(
    start: Instant,
    tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>,
    size: usize,
) -> Measured {
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    let ops = latencies.len() as f64;
    Measured {
        bytes_per_sec: ops * size as f64 / elapsed,
        ops_per_sec: ops / elapsed,
        p50: pick(0.5),
        p99: pick(0.99),
    }
}

/// Downloads a share link `n` times from each of `clients` tasks with a plain HTTP client
/// (as curl or a browser would), checking every byte count.
async fn run_link(url: &str, clients: usize, n: usize, size: usize) -> Measured {
    let http = sesame::http::client().expect("http client");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url) = (http.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(n);
            for _ in 0..n {
                let begun = Instant::now();
                let req = hyper::Request::get(&url)
                    .body(http_body_util::Full::new(Bytes::new()))
                    .unwrap();
                let res = http.request(req).await.expect("link answers");
                assert_eq!(res.status(), 200);
                let mut body = res.into_body();
                let mut got = 0;
                while let Some(frame) = body.frame().await {
                    got += frame.expect("frame").data_ref().map_or(0, Bytes::len);
                }
                assert_eq!(got, size);
                latencies.push(begun.elapsed());
            }
            latencies
        }));
    }
    measured(start, tasks, size).await
}

/// A share link to `key` made by a user holding the bench grant.
fn share_link(data_dir: &std::path::Path, key: &str) -> String {
    let sesame = |args: &[&str], token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
        cmd.args(args).env("SESAME_DATA_DIR", data_dir);
        if let Some(token) = token {
            cmd.env("SESAME_TOKEN", token);
        }
        let out = cmd.output().expect("sesame runs");
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    let user = sesame(&["user", "add", "bench-linker", "--json"], None);
    let token = user["token"].as_str().unwrap().to_owned();
    sesame(
        &[
            "grant",
            "create",
            "s3://bench/src/",
            "--to",
            "bench-linker",
            "--actions",
            "read",
            "--for",
            "6h",
            "--format",
            "json",
        ],
        None,
    );
    let link = sesame(
        &[
            "share",
            &format!("s3://bench/{key}"),
            "--ttl",
            "1h",
            "--json",
        ],
        Some(&token),
    );
    link["url"].as_str().unwrap().to_owned()
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let garage_bin = garage::bin();
    let g = garage::start(&garage_bin, REGION);
    let direct = client(&g.endpoint, &g.access_key, &g.secret, None);
    direct
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bench bucket");
    let mut payloads = std::collections::HashMap::new();
    for size in [4 * KIB, 256 * MIB] {
        let payload = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        direct
            .put_object()
            .bucket(BUCKET)
            .key(format!("src/{size}"))
            .body(ByteStream::from(payload.clone()))
            .send()
            .await
            .expect("seed");
        payloads.insert(size, payload);
    }

    // Sesame, release build, with a grant covering the bench bucket.
    let data_dir = tempfile::tempdir().unwrap();
    let (mut sesame, sesame_client) = start_sesame(&g, data_dir.path(), &[], None);

    // The peer: s3s-proxy 0.14.1, the same s3s and s3s-aws with no checks.
    let (mut proxy, proxy_url) = common::start_s3s_proxy(&g);
    let proxy_client = client(&proxy_url, &g.access_key, &g.secret, None);

    let garage_pid = common::garage_pid(&garage_bin).unwrap_or(0);
    let targets = [
        Target {
            name: "direct",
            client: direct,
            pid: garage_pid,
        },
        Target {
            name: "sesame",
            client: sesame_client,
            pid: sesame.id(),
        },
        Target {
            name: "s3s-proxy",
            client: proxy_client,
            pid: proxy.id(),
        },
    ];
    for t in &targets {
        let warmup = Workload {
            name: "warm-up",
            op: Op::Get,
            size: 4 * KIB,
            clients: 4,
            ops_per_client: 25,
        };
        run(t, &warmup, &payloads[&(4 * KIB)]).await;
    }

    let mut rows = String::new();
    for w in WORKLOADS {
        let payload = Arc::new(payloads[&w.size].clone());
        let mut results = Vec::new();
        for t in &targets {
            let m = run(t, w, &payload).await;
            eprintln!(
                "{:<12} {:>2} clients {:<10} {:>9.1} MiB/s {:>8.1} ops/s p50 {} ms p99 {} ms",
                w.name,
                w.clients,
                t.name,
                m.bytes_per_sec / MIB as f64,
                m.ops_per_sec,
                ms(m.p50),
                ms(m.p99)
            );
            results.push(m);
        }
        let [d, s, p] = [results[0], results[1], results[2]];
        let rate = |m: Measured| {
            if w.size < MIB {
                format!("{:.0} ops/s", m.ops_per_sec)
            } else {
                format!("{:.0} MiB/s", m.bytes_per_sec / MIB as f64)
            }
        };
        let added = |a: Duration, b: Duration| {
            format!("{:+.2}", (a.as_secs_f64() - b.as_secs_f64()) * 1000.0)
        };
        let _ = writeln!(
            rows,
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {} / {} | {} / {} |",
            w.name,
            w.clients,
            rate(d),
            rate(s),
            rate(p),
            s.bytes_per_sec / d.bytes_per_sec,
            s.bytes_per_sec / p.bytes_per_sec,
            ms(d.p50),
            ms(d.p99),
            added(s.p50, d.p50),
            added(s.p99, d.p99),
        );
    }
    // TLS on the S3 listener next to plain HTTP: a second Sesame on the same Garage with a
    // certificate from a throwaway CA, each workload run on both, with the gateway's CPU.
    let tls_dir = tempfile::tempdir().unwrap();
    let [ca, cert, key] = throwaway_certificate(tls_dir.path());
    let tls_data = tempfile::tempdir().unwrap();
    let tls_flags = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let (mut sesame_tls, tls_client) = start_sesame(&g, tls_data.path(), &tls_flags, Some(&ca));
    let tls_target = Target {
        name: "sesame TLS",
        client: tls_client,
        pid: sesame_tls.id(),
    };
    let ticks = ticks_per_sec();
    let mut tls_rows = String::new();
    for w in WORKLOADS {
        let payload = Arc::new(payloads[&w.size].clone());
        let mut measured = Vec::new();
        for t in [&targets[1], &tls_target] {
            let before = cpu_time(t.pid, ticks);
            let m = run(t, w, &payload).await;
            let cpu = cpu_time(t.pid, ticks).saturating_sub(before).as_secs_f64();
            let requests = (w.clients * w.ops_per_client) as f64;
            let gib = requests * w.size as f64 / GIB;
            eprintln!(
                "{:<12} {:>2} clients {:<10} {:>9.1} MiB/s cpu {cpu:.2} s",
                w.name,
                w.clients,
                t.name,
                m.bytes_per_sec / MIB as f64,
            );
            measured.push((m, cpu / gib, cpu * 1000.0 / requests));
        }
        let [(plain, plain_gib, plain_k), (tls, tls_gib, tls_k)] = [measured[0], measured[1]];
        let rate = |m: Measured| {
            if w.size < MIB {
                format!("{:.0} ops/s", m.ops_per_sec)
            } else {
                format!("{:.0} MiB/s", m.bytes_per_sec / MIB as f64)
            }
        };
        let _ = writeln!(
            tls_rows,
            "| {} | {} | {} | {} | {:.2} | {plain_gib:.2} | {tls_gib:.2} | {plain_k:.2} | {tls_k:.2} |",
            w.name,
            w.clients,
            rate(plain),
            rate(tls),
            tls.bytes_per_sec / plain.bytes_per_sec,
        );
    }

    // Share links: the same large GETs as a plain HTTP download of a link, against the same
    // object read directly and through Sesame's S3 side.
    let link = share_link(data_dir.path(), &format!("src/{}", 256 * MIB));
    let mut link_rows = String::new();
    for clients in [1, 16] {
        let workload = Workload {
            name: "GET 256 MiB",
            op: Op::Get,
            size: 256 * MIB,
            clients,
            ops_per_client: 1,
        };
        let direct = run(&targets[0], &workload, &payloads[&workload.size]).await;
        let through = run(&targets[1], &workload, &payloads[&workload.size]).await;
        let linked = run_link(&link, clients, 1, workload.size).await;
        eprintln!(
            "share link GET 256 MiB {clients:>2} clients {:>9.1} MiB/s (direct {:.1}, sesame s3 {:.1})",
            linked.bytes_per_sec / MIB as f64,
            direct.bytes_per_sec / MIB as f64,
            through.bytes_per_sec / MIB as f64
        );
        let _ = writeln!(
            link_rows,
            "| {} | {clients} | {:.0} MiB/s | {:.0} MiB/s | {:.0} MiB/s | {:.2} | {:.2} | {} / {} |",
            workload.name,
            direct.bytes_per_sec / MIB as f64,
            through.bytes_per_sec / MIB as f64,
            linked.bytes_per_sec / MIB as f64,
            linked.bytes_per_sec / direct.bytes_per_sec,
            linked.bytes_per_sec / through.bytes_per_sec,
            ms(linked.p50),
            ms(linked.p99),
        );
    }
    let rss = |pid: u32| peak_rss_mib(pid).map_or_else(|| "n/a".to_owned(), |m| format!("{m} MiB"));
    let report = format!(
        "# Benchmark results\n\n\
         `bench/run` on {} cores, {} (release build). One Garage 2.5.0 single node on loopback; the\n\
         load generator (aws-sdk-s3, unsigned payloads, no checksums) shares the machine.\n\
         Ratios are throughput through Sesame divided by direct and by the peer (s3s-proxy 0.14.1);\n\
         added latency is Sesame's p50 / p99 minus direct's.\n\n\
         | workload | clients | direct | sesame | s3s-proxy | sesame/direct | sesame/peer | direct p50 / p99 ms | added p50 / p99 ms |\n\
         |---|---|---|---|---|---|---|---|---|\n{rows}\n\
         Share links (plain HTTP download of `/_share/...`, counted and audited like an S3 GET),\n\
         measured in the same run against the same object read directly and through Sesame's S3 side:\n\n\
         | workload | clients | direct | sesame S3 | link | link/direct | link/sesame S3 | link p50 / p99 ms |\n\
         |---|---|---|---|---|---|---|---|\n{link_rows}\n\
         TLS on Sesame's S3 listener (rustls, aws-lc; TLS 1.3, a P-256 certificate from a\n\
         throwaway CA) next to plain HTTP: two Sesame processes on the same Garage, each\n\
         workload run on both in turn. CPU is the gateway process's own (user + system, from\n\
         /proc), in seconds per GiB moved and per 1,000 requests:\n\n\
         | workload | clients | plain | TLS | TLS/plain | plain CPU s/GiB | TLS CPU s/GiB | plain CPU s/1k req | TLS CPU s/1k req |\n\
         |---|---|---|---|---|---|---|---|---|\n{tls_rows}\n\
         Peak RSS over the whole run: sesame {}, s3s-proxy {}, garage {}.\n",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        std::env::consts::ARCH,
        rss(targets[1].pid),
        rss(targets[2].pid),
        rss(targets[0].pid),
    );
    print!("{report}");
    std::fs::write(
        concat!(env!("CARGO_MANIFEST_DIR"), "/bench/RESULTS.md"),
        report,
    )
    .expect("write bench/RESULTS.md");
    for child in [&mut sesame, &mut sesame_tls, &mut proxy] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
