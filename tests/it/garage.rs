//! Garage 2.5.0 as a single-node S3 server on free loopback ports, for the integration tests
//! and the benchmark (which includes this file). The binary is run, never linked (AGPL).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running Garage: where it listens and the operator key it was given.
pub struct Garage {
    pub endpoint: String,
    pub access_key: String,
    pub secret: String,
}

/// `SESAME_GARAGE_BIN`, else where `scripts/test` installs it.
pub fn bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SESAME_GARAGE_BIN") {
        return PathBuf::from(bin);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let bin = home.join(".cache/sesame/tools/bin/garage");
    assert!(
        bin.exists(),
        "garage is missing: run scripts/test, which installs Garage 2.5.0"
    );
    bin
}

/// Retries `check` every 100 ms for up to 30 s: only for waiting on a server to come up.
pub fn readiness_poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = check() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{what} did not become ready within 30 s");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Garage with one node, applies its layout and imports a key that may create buckets.
/// A watchdog shell kills Garage when the calling process is gone.
pub fn start(bin: &Path, region: &str) -> Garage {
    let dir = tempfile::Builder::new()
        .prefix("sesame-garage-")
        .tempdir()
        .unwrap()
        .keep();
    let (s3, rpc, admin) = (free_port(), free_port(), free_port());
    let config = dir.join("garage.toml");
    std::fs::write(
        &config,
        format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{region}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
            meta = dir.join("meta").display(),
            data = dir.join("data").display(),
            secret = "ab".repeat(32),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("garage.log")).unwrap();
    let script = format!(
        "{bin} -c {cfg} server & g=$!; while kill -0 {parent} 2>/dev/null && kill -0 $g 2>/dev/null; do sleep 1; done; kill $g 2>/dev/null",
        bin = bin.display(),
        cfg = config.display(),
        parent = std::process::id()
    );
    // Not waited for: the watchdog outlives its caller's work and ends with its process.
    #[allow(clippy::zombie_processes)]
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start garage");

    let garage = |args: &[&str]| {
        let out = Command::new(bin)
            .arg("-c")
            .arg(&config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run garage");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let must = |args: &[&str]| {
        let (ok, stdout, stderr) = garage(args);
        assert!(ok, "garage {args:?} failed: {stdout}{stderr}");
    };
    let what = format!("garage (log: {})", dir.join("garage.log").display());
    // `node id` answers from the key file before the server listens; `status` needs RPC.
    readiness_poll(&what, || garage(&["status"]).0.then_some(()));
    let (_, node, _) = garage(&["node", "id", "-q"]);
    let node = node.trim().split('@').next().unwrap().to_owned();
    must(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
    must(&["layout", "apply", "--version", "1"]);
    let access_key = "GK0123456789abcdef01234567".to_owned();
    let secret = "0123456789abcdef".repeat(4);
    must(&["key", "import", "--yes", &access_key, &secret, "-n", "main"]);
    must(&["key", "allow", "--create-bucket", "main"]);
    readiness_poll(&what, || {
        std::net::TcpStream::connect(("127.0.0.1", s3)).ok()
    });
    Garage {
        endpoint: format!("http://127.0.0.1:{s3}"),
        access_key,
        secret,
    }
}
