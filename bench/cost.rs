//! What relaying a request costs, with curl as the client (one process per workload, kept
//! connections): the CPU seconds (user + system, from /proc) of the process that relays it,
//! per 1,000 small requests and per GiB moved, and its context switches per request. The
//! paths, all to the same Garage: Garage directly (its own CPU), Sesame, s3s-proxy (the
//! plain s3s pass-through) and nginx (a plain reverse proxy with buffering off: what merely
//! moving bytes through a user-space proxy costs). Each workload runs on every path in turn,
//! three times; the table gives medians. A last pass counts Sesame's and s3s-proxy's
//! syscalls per request with strace. Run by `bench/run` (which installs nginx); appends to
//! `bench/RESULTS.md`.
//!
//! CPU per unit of work stays meaningful on a shared 2-core machine, where wall-clock ratios
//! mostly measure contention; the wall-clock rate is given beside it.

// Rates and medians are statistics over counts far below 2^52; main is one linear script.
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
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use common::{REGION, client, cpu_time, ticks_per_sec};
use sha2::{Digest, Sha256};

const BUCKET: &str = "bench";
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const REPETITIONS: usize = 3;

/// What a workload sends.
#[derive(Clone, Copy, PartialEq)]
enum Op {
    Get,
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`.
    PutUnsigned,
    /// The payload's SHA-256 signed, which the relay (or Garage) verifies.
    PutSigned,
}

struct Workload {
    name: &'static str,
    op: Op,
    size: usize,
    clients: usize,
    requests_per_client: usize,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "GET 4 KiB",
        op: Op::Get,
        size: 4 * KIB,
        clients: 1,
        requests_per_client: 300,
    },
    Workload {
        name: "GET 4 KiB",
        op: Op::Get,
        size: 4 * KIB,
        clients: 8,
        requests_per_client: 150,
    },
    Workload {
        name: "PUT 4 KiB",
        op: Op::PutUnsigned,
        size: 4 * KIB,
        clients: 1,
        requests_per_client: 300,
    },
    Workload {
        name: "PUT 4 KiB",
        op: Op::PutUnsigned,
        size: 4 * KIB,
        clients: 8,
        requests_per_client: 150,
    },
    Workload {
        name: "GET 512 MiB",
        op: Op::Get,
        size: 512 * MIB,
        clients: 1,
        requests_per_client: 1,
    },
    Workload {
        name: "PUT 512 MiB unsigned",
        op: Op::PutUnsigned,
        size: 512 * MIB,
        clients: 1,
        requests_per_client: 1,
    },
    Workload {
        name: "PUT 512 MiB signed",
        op: Op::PutSigned,
        size: 512 * MIB,
        clients: 1,
        requests_per_client: 1,
    },
];

/// One way to Garage, and the processes whose CPU is its cost.
struct Route {
    name: &'static str,
    url: String,
    id: String,
    secret: String,
    token: Option<String>,
    /// The relaying process; its children (nginx's workers) count too.
    pid: u32,
}

/// One workload on one route.
#[derive(Clone, Copy)]
struct Cost {
    /// Seconds of CPU of the relaying processes.
    cpu: f64,
    /// Context switches of their threads.
    switches: u64,
    seconds: f64,
}

/// `pid` and every process whose parent is `pid`.
fn family(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        if after.split_whitespace().nth(1) == Some(&pid.to_string()) {
            pids.push(child);
        }
    }
    pids
}

/// Voluntary and involuntary context switches of every thread of `pid` so far.
fn switches(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten();
    tasks
        .map(|task| {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

fn counters(pids: &[u32], ticks: f64) -> (f64, u64) {
    let cpu = pids.iter().map(|&p| cpu_time(p, ticks).as_secs_f64()).sum();
    (cpu, pids.iter().map(|&p| switches(p)).sum())
}

/// A curl config file (`curl -K`) that signs with the route's keys and runs `requests`
/// transfers of `w` on one client's connection.
fn curl_config(route: &Route, w: &Workload, payload: &Path, sha256: &str, client: usize) -> String {
    let mut config = format!(
        "silent\nshow-error\nwrite-out = \"%{{http_code}}\\n\"\naws-sigv4 = \"aws:amz:{REGION}:s3\"\nuser = \"{}:{}\"\n",
        route.id, route.secret
    );
    if let Some(token) = &route.token {
        let _ = writeln!(config, "header = \"x-amz-security-token: {token}\"");
    }
    let hash = if w.op == Op::PutSigned {
        sha256
    } else {
        "UNSIGNED-PAYLOAD"
    };
    let _ = writeln!(config, "header = \"x-amz-content-sha256: {hash}\"");
    for i in 0..w.requests_per_client {
        match w.op {
            Op::Get => {
                let _ = writeln!(
                    config,
                    "url = \"{}/{BUCKET}/src/{}\"\noutput = \"/dev/null\"",
                    route.url, w.size
                );
            }
            Op::PutUnsigned | Op::PutSigned => {
                let _ = writeln!(
                    config,
                    "url = \"{}/{BUCKET}/put/{}/{client}/{i}\"\nupload-file = \"{}\"\noutput = \"/dev/null\"",
                    route.url,
                    route.name,
                    payload.display()
                );
            }
        }
    }
    config
}

/// Runs `w` on `route` with one curl process per client, and what it cost the route.
fn run(route: &Route, w: &Workload, payload: &Path, sha256: &str, dir: &Path, ticks: f64) -> Cost {
    let configs: Vec<PathBuf> = (0..w.clients)
        .map(|c| {
            let path = dir.join(format!("curl-{}-{c}.conf", route.name));
            std::fs::write(&path, curl_config(route, w, payload, sha256, c)).unwrap();
            path
        })
        .collect();
    let pids = family(route.pid);
    let (cpu_before, switches_before) = counters(&pids, ticks);
    let start = Instant::now();
    let curls: Vec<Child> = configs
        .iter()
        .map(|config| {
            Command::new("curl")
                .arg("-K")
                .arg(config)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("curl")
        })
        .collect();
    for curl in curls {
        let out = curl.wait_with_output().unwrap();
        let codes = String::from_utf8_lossy(&out.stdout);
        let ok = codes.lines().filter(|c| c.starts_with('2')).count();
        assert_eq!(
            ok, w.requests_per_client,
            "{} {} via {}: {codes}",
            w.name, w.clients, route.name
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    let (cpu_after, switches_after) = counters(&pids, ticks);
    Cost {
        cpu: cpu_after - cpu_before,
        switches: switches_after - switches_before,
        seconds,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// nginx as a plain reverse proxy to `upstream` (buffering off both ways, kept upstream
/// connections, no access log, one worker per core), on a free port.
fn start_nginx(upstream: &str, dir: &Path) -> (Child, String) {
    let port = garage::free_port();
    let upstream = upstream.trim_start_matches("http://");
    let temp = dir.join("nginx-temp");
    std::fs::create_dir_all(&temp).unwrap();
    let config = dir.join("nginx.conf");
    std::fs::write(
        &config,
        format!(
            "worker_processes 2;\ndaemon off;\nmaster_process on;\npid {dir}/nginx.pid;\nerror_log stderr warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n\
             fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n\
             upstream garage {{ server {upstream}; keepalive 32; }}\n\
             server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 0;\n\
             proxy_buffering off;\n    proxy_request_buffering off;\n    proxy_http_version 1.1;\n\
             location / {{ proxy_pass http://garage; proxy_set_header Host $http_host; proxy_set_header Connection \"\"; }}\n  }}\n}}\n",
            dir = dir.display(),
            t = temp.display(),
        ),
    )
    .unwrap();
    let nginx = Command::new(
        std::env::var("SESAME_NGINX_BIN").unwrap_or_else(|_| "/usr/sbin/nginx".into()),
    )
    .arg("-c")
    .arg(&config)
    .arg("-e")
    .arg("stderr")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .spawn()
    .expect("nginx (bench/run installs it from Debian)");
    garage::readiness_poll("nginx", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (nginx, format!("http://127.0.0.1:{port}"))
}

/// Syscalls of the route's processes (all threads) while `w` runs on `route`, per request: the counts of
/// `strace -c` for the calls that say where a relay's time goes.
fn syscalls(route: &Route, w: &Workload, payload: &Path, dir: &Path, ticks: f64) -> String {
    const CALLS: &str = "fsync,fdatasync,openat,futex,epoll_wait,sendto,recvfrom,write,read,writev";
    let out = dir.join(format!("strace-{}.txt", route.name));
    let mut strace = Command::new("strace");
    strace
        .args(["-f", "-c", "-e", &format!("trace={CALLS}"), "-o"])
        .arg(&out);
    // Every process of the route (nginx's workers are children that exist already, which
    // `-f` alone would not follow).
    for pid in family(route.pid) {
        strace.arg("-p").arg(pid.to_string());
    }
    let mut strace = strace
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace (bench/run installs it)");
    std::thread::sleep(std::time::Duration::from_secs(1));
    run(route, w, payload, "", dir, ticks);
    // strace writes its summary when interrupted.
    let _ = Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status();
    let _ = strace.wait();
    let summary = std::fs::read_to_string(&out).unwrap_or_default();
    let requests = (w.clients * w.requests_per_client) as f64;
    let mut counts = String::new();
    for call in CALLS.split(',') {
        let count = summary
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.last() == Some(&call))
                    .then(|| f.get(3)?.parse::<f64>().ok())
                    .flatten()
            })
            .unwrap_or(0.0);
        let _ = write!(counts, " {:.2} |", count / requests);
    }
    counts
}

#[tokio::main]
async fn main() {
    let ticks = ticks_per_sec();
    let garage_bin = garage::bin();
    let g = garage::start(&garage_bin, REGION);
    let direct = client(&g.endpoint, &g.access_key, &g.secret, None);
    direct
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bench bucket");
    let dir = tempfile::tempdir().unwrap();
    let mut payloads = std::collections::HashMap::new();
    for size in [4 * KIB, 512 * MIB] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let sha256 = hex::encode(Sha256::digest(&data));
        let path = dir.path().join(format!("payload-{size}"));
        std::fs::write(&path, &data).unwrap();
        direct
            .put_object()
            .bucket(BUCKET)
            .key(format!("src/{size}"))
            .body(ByteStream::from(data))
            .send()
            .await
            .expect("seed");
        payloads.insert(size, (path, sha256));
    }

    let data_dir = tempfile::tempdir().unwrap();
    let (mut sesame, issued) = common::start_sesame(&g, data_dir.path(), &[], None);
    let (mut proxy, proxy_url) = common::start_s3s_proxy(&g);
    let (mut nginx, nginx_url) = start_nginx(&g.endpoint, dir.path());
    let garage_keys = |name, url: String, pid| Route {
        name,
        url,
        id: g.access_key.clone(),
        secret: g.secret.clone(),
        token: None,
        pid,
    };
    let routes = [
        garage_keys(
            "direct",
            g.endpoint.clone(),
            common::garage_pid(&garage_bin).unwrap_or(0),
        ),
        Route {
            name: "sesame",
            url: issued.url.clone(),
            id: issued.id.clone(),
            secret: issued.secret.clone(),
            token: Some(issued.token.clone()),
            pid: sesame.id(),
        },
        garage_keys("s3s-proxy", proxy_url, proxy.id()),
        garage_keys("nginx", nginx_url, nginx.id()),
    ];
    let warm_up = Workload {
        name: "warm-up",
        op: Op::Get,
        size: 4 * KIB,
        clients: 2,
        requests_per_client: 50,
    };
    for route in &routes {
        let (path, sha) = &payloads[&(4 * KIB)];
        run(route, &warm_up, path, sha, dir.path(), ticks);
    }

    let mut rows = String::new();
    for w in WORKLOADS {
        let (payload, sha256) = &payloads[&w.size];
        // costs[route][repetition], the routes taken in turn within each repetition.
        let mut costs: Vec<Vec<Cost>> = vec![Vec::new(); routes.len()];
        for _ in 0..REPETITIONS {
            for (r, route) in routes.iter().enumerate() {
                costs[r].push(run(route, w, payload, sha256, dir.path(), ticks));
            }
        }
        let requests = (w.clients * w.requests_per_client) as f64;
        let gib = requests * w.size as f64 / GIB;
        let per_unit = |c: &Cost| {
            if w.size < MIB {
                c.cpu * 1000.0 / requests
            } else {
                c.cpu / gib
            }
        };
        let cpu: Vec<f64> = costs
            .iter()
            .map(|c| median(c.iter().map(per_unit).collect()))
            .collect();
        let rate: Vec<f64> = costs
            .iter()
            .map(|c| median(c.iter().map(|c| requests / c.seconds).collect()))
            .collect();
        let switches: Vec<f64> = costs
            .iter()
            .map(|c| median(c.iter().map(|c| c.switches as f64 / requests).collect()))
            .collect();
        let unit = if w.size < MIB { "s/1k req" } else { "s/GiB" };
        let rate_text = |r: f64| {
            if w.size < MIB {
                format!("{r:.0}/s")
            } else {
                format!("{:.0} MiB/s", r * w.size as f64 / MIB as f64)
            }
        };
        eprintln!(
            "{:<22} {} clients: CPU {unit} direct {:.3} sesame {:.3} s3s-proxy {:.3} nginx {:.3}",
            w.name, w.clients, cpu[0], cpu[1], cpu[2], cpu[3]
        );
        let _ = writeln!(
            rows,
            "| {} | {} | {unit} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} | {} / {} / {} / {} | {:.1} / {:.1} / {:.1} |",
            w.name,
            w.clients,
            cpu[0],
            cpu[1],
            cpu[2],
            cpu[3],
            cpu[1] / cpu[2],
            cpu[1] / cpu[3],
            rate_text(rate[0]),
            rate_text(rate[1]),
            rate_text(rate[2]),
            rate_text(rate[3]),
            switches[1],
            switches[2],
            switches[3],
        );
    }

    let strace_workload = Workload {
        name: "GET 4 KiB",
        op: Op::Get,
        size: 4 * KIB,
        clients: 1,
        requests_per_client: 200,
    };
    let mut syscall_rows = String::new();
    for route in &routes[1..] {
        let (path, _) = &payloads[&(4 * KIB)];
        let counts = syscalls(route, &strace_workload, path, dir.path(), ticks);
        let _ = writeln!(syscall_rows, "| {} |{counts}", route.name);
    }

    let _ = sesame.kill();
    let _ = proxy.kill();
    let _ = nginx.kill();
    let section = format!(
        "\n## What relaying costs (`bench/cost.rs`, curl as the client)\n\n\
         CPU seconds (user + system, from /proc) of the process that relays the requests: Garage\n\
         itself for `direct`, else the proxy in front of the same Garage (nginx: master and\n\
         workers). Per 1,000 requests for 4 KiB objects, per GiB for 512 MiB ones; medians of\n\
         {REPETITIONS} runs taken in turn. The ratios are Sesame's CPU over the peer's and over nginx's.\n\
         Rates are wall-clock (direct / Sesame / s3s-proxy / nginx); switches are context\n\
         switches per request of Sesame / s3s-proxy / nginx.\n\n\
         | workload | clients | unit | direct | sesame | s3s-proxy | nginx | sesame/peer | sesame/nginx | rate | switches/req |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n{rows}\n\
         Syscalls per request (`strace -f -c`, 200 single-client 4 KiB GETs; strace slows the\n\
         process, so only the counts are read):\n\n\
         | route | fsync | fdatasync | openat | futex | epoll_wait | sendto | recvfrom | write | read | writev |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n{syscall_rows}"
    );
    print!("{section}");
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/RESULTS.md");
    let mut text = std::fs::read_to_string(&results).unwrap_or_default();
    if let Some(at) = text.find("\n## What relaying costs") {
        let end = text[at + 1..]
            .find("\n## ")
            .map_or(text.len(), |e| at + 1 + e);
        text.replace_range(at..end, "");
    }
    text.push_str(&section);
    std::fs::write(&results, text).unwrap();
}
