//! What the benches share: an S3 client configured as Sesame's own backend client is
//! (checksums only where required, no stall protection), a process's CPU time, and the
//! servers each bench starts (Sesame with a grant on the bench bucket, s3s-proxy).

// Each bench uses part of this.
#![allow(dead_code)]

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};

/// Sesame's default region, which the bench's Garage is started with too.
pub const REGION: &str = sesame::config::DEFAULT_REGION;

pub fn client(url: &str, id: &str, secret: &str, token: Option<&str>) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(url)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            id,
            secret,
            token.map(str::to_owned),
            None,
            "bench",
        ))
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// CPU time (user and system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32, ticks_per_sec: f64) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which may hold spaces: state is the first of them,
    // utime and stime the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / ticks_per_sec)
}

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`, 100 on Linux).
pub fn ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Spawns a server and returns it with the first `http://` or `https://` URL it prints on
/// stdout.
pub fn spawn_printing_url(mut cmd: Command) -> (Child, Option<String>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let url = lines.next().and_then(Result::ok).and_then(|l| {
        l.split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(str::to_owned)
    });
    std::thread::spawn(move || lines.for_each(drop));
    (child, url)
}

/// Credentials for the bench bucket that a Sesame gateway issued, and where it listens.
pub struct Issued {
    pub url: String,
    pub id: String,
    pub secret: String,
    pub token: String,
}

/// `sesame serve` in front of the bench's Garage with `extra` flags, and credentials of a
/// grant on the bench bucket (read, write, list for 6 hours); `ca` is the bundle the CLI
/// trusts, for TLS.
pub fn start_sesame(
    g: &crate::garage::Garage,
    data_dir: &std::path::Path,
    extra: &[&str],
    ca: Option<&std::path::Path>,
) -> (Child, Issued) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.args([
        "serve",
        "--s3-addr",
        "127.0.0.1:0",
        "--api-addr",
        "127.0.0.1:0",
        "--backend",
        &g.endpoint,
        "--backend-region",
        REGION,
        "--data-dir",
    ])
    .arg(data_dir)
    .args(extra)
    .env("SESAME_BACKEND_ACCESS_KEY_ID", &g.access_key)
    .env("SESAME_BACKEND_SECRET_ACCESS_KEY", &g.secret)
    .env("SESAME_LOG", "warn");
    let (sesame, url) = spawn_printing_url(cmd);
    let mut grant = Command::new(env!("CARGO_BIN_EXE_sesame"));
    grant
        .args([
            "grant",
            "create",
            "s3://bench/",
            "--to",
            "bench",
            "--actions",
            "read,write,list",
            "--for",
            "6h",
            "--format",
            "json",
        ])
        .env("SESAME_DATA_DIR", data_dir);
    if let Some(ca) = ca {
        grant.env("SESAME_CA_BUNDLE", ca);
    }
    let grant = grant.output().expect("grant create");
    let cred: serde_json::Value = serde_json::from_slice(&grant.stdout).expect("credentials json");
    let field = |k: &str| cred[k].as_str().unwrap().to_owned();
    let issued = Issued {
        url: url.expect("sesame URL"),
        id: field("AccessKeyId"),
        secret: field("SecretAccessKey"),
        token: field("SessionToken"),
    };
    (sesame, issued)
}

/// The peer, s3s-proxy 0.14.1 (the same s3s and s3s-aws with no checks), in front of the
/// bench's Garage with its keys, and its URL. `bench/run` installs it.
pub fn start_s3s_proxy(g: &crate::garage::Garage) -> (Child, String) {
    let proxy_bin = std::env::var("SESAME_S3S_PROXY_BIN").unwrap_or_else(|_| {
        format!(
            "{}/.cache/sesame/tools/bin/s3s-proxy",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let port = crate::garage::free_port();
    let proxy = Command::new(&proxy_bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--endpoint-url",
            &g.endpoint,
        ])
        .env("AWS_ACCESS_KEY_ID", &g.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &g.secret)
        .env("AWS_REGION", REGION)
        // As Sesame configures its backend client: checksums only where the API requires
        // them. With its default (a crc32 trailer on every PUT) Garage refuses the peer's
        // uploads with "Invalid payload signature".
        .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
        .env("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{proxy_bin}: {e} (bench/run installs it)"));
    crate::garage::readiness_poll("s3s-proxy", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (proxy, format!("http://127.0.0.1:{port}"))
}

/// The Garage server process (a child of its watchdog shell).
pub fn garage_pid(bin: &std::path::Path) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let is_garage = args.first() == Some(&bin.as_os_str().as_encoded_bytes())
                && args.contains(&&b"server"[..]);
            is_garage.then_some(pid)
        })
}
