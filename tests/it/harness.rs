//! Shared context: a real S3 backend, a gateway in front of it with a manual clock, and the
//! clients users run. Ports are chosen at run time; nothing binds a fixed port.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use aws_sdk_s3::primitives::ByteStream;
use sesame::clock::{Clock, ManualClock, SystemClock};
use sesame::config::{Backend as BackendConfig, Config};
use sesame::grant::IssuedCredential;
use sesame::model::{Action, Scope};
use sesame::server::Running;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// s3s-fs, the embedded directory backend, served in-process on a loopback port.
    Fs,
    /// Garage 2.5.0 as a separate process: an independent, strict implementation.
    Garage,
    /// moto's server: the widest API coverage (object tagging, for one) but it checks no
    /// signatures, so it is never the only backend a behaviour is tested on.
    Moto,
}

/// Where a backend listens and the operator's keys for it.
#[derive(Clone)]
pub struct BackendInfo {
    pub endpoint: String,
    pub access_key: String,
    pub secret: String,
}

/// A backend, a gateway in front of it, and an admin client for the backend itself.
pub struct Ctx {
    pub backend: BackendInfo,
    pub admin: aws_sdk_s3::Client,
    pub gateway: Running,
    pub clock: ManualClock,
    pub s3_url: String,
    pub dir: tempfile::TempDir,
    pub config: Config,
    /// The recording hop between the gateway and the backend, when the test asked for one.
    pub relay: Option<crate::relay::Relay>,
    /// The test server's database the store lives in, dropped with the context.
    pub database: Option<crate::postgres::Database>,
}

pub const REGION: &str = sesame::config::DEFAULT_REGION;

impl Ctx {
    pub async fn start(kind: BackendKind) -> Ctx {
        Ctx::start_with_domain(kind, None).await
    }

    /// A gateway that also accepts virtual-hosted-style requests for `bucket.DOMAIN`.
    pub async fn start_with_domain(kind: BackendKind, domain: Option<&str>) -> Ctx {
        Ctx::start_with(kind, domain, None, false).await
    }

    /// A gateway that accepts ID tokens from this identity provider.
    pub async fn start_with_oidc(
        kind: BackendKind,
        oidc: sesame::identity::oidc::OidcConfig,
    ) -> Ctx {
        Ctx::start_with(kind, None, Some(oidc), false).await
    }

    /// The one way a context starts; `with_relay` puts the recording hop of `relay.rs`
    /// between the gateway and the backend.
    pub(crate) async fn start_with(
        kind: BackendKind,
        domain: Option<&str>,
        oidc: Option<sesame::identity::oidc::OidcConfig>,
        with_relay: bool,
    ) -> Ctx {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = match kind {
            BackendKind::Fs => {
                let root = dir.path().join("backend");
                let (addr, access_key, secret) = sesame::s3::start_directory_server(&root)
                    .await
                    .expect("s3s-fs starts");
                BackendInfo {
                    endpoint: format!("http://{addr}"),
                    access_key,
                    secret,
                }
            }
            BackendKind::Garage => garage().clone(),
            BackendKind::Moto => moto().clone(),
        };
        // moto answers as AWS does, where a bucket outside us-east-1 needs a location.
        let backend_region = match kind {
            BackendKind::Moto => sesame::config::DEFAULT_BACKEND_REGION,
            BackendKind::Fs | BackendKind::Garage => REGION,
        };
        let admin = sesame::s3::backend_client(
            &backend.endpoint,
            backend_region,
            true,
            Some((backend.access_key.clone(), backend.secret.clone())),
        )
        .await;
        let relay = if with_relay {
            Some(crate::relay::Relay::start(&backend.endpoint).await)
        } else {
            None
        };
        let clock = ManualClock::new(SystemClock.now());
        let data_dir = dir.path().join("gateway");
        let config = Config {
            store: sesame::config::StoreLocation::DataDir,
            store_stale_after: sesame::store::STALE_AFTER,
            data_dir,
            s3_addr: "127.0.0.1:0".parse().unwrap(),
            api_addr: "127.0.0.1:0".parse().unwrap(),
            domain: domain.map(str::to_owned),
            public_url: None,
            region: REGION.into(),
            backend: BackendConfig::Endpoint {
                url: relay
                    .as_ref()
                    .map_or_else(|| backend.endpoint.clone(), |r| r.url.clone()),
                region: backend_region.into(),
                path_style: true,
                credentials: Some((
                    backend.access_key.clone(),
                    sesame::secret::Secret::new(backend.secret.clone()),
                )),
                ca: None,
            },
            log_json: false,
            policies: None,
            require_mfa: false,
            webhooks: Vec::new(),
            oidc,
            audit: sesame::audit::Settings::default(),
            listen: sesame::listen::Settings::default(),
            tls: sesame::config::Tls::default(),
        };
        let gateway = sesame::server::start(&config, Arc::new(clock.clone()))
            .await
            .expect("gateway starts");
        let s3_url = gateway.s3_endpoint.clone();
        Ctx {
            backend,
            admin,
            gateway,
            clock,
            s3_url,
            dir,
            config,
            relay,
            database: None,
        }
    }

    /// A gateway whose state lives in a database of its own on the test PostgreSQL server
    /// (`SESAME_TEST_POSTGRES`), so that [`Ctx::replica`] can start more of them on it.
    pub async fn start_on_postgres(kind: BackendKind) -> Ctx {
        let database = crate::postgres::Database::create().await;
        let url = sesame::secret::Secret::new(database.url.clone());
        let mut ctx = Ctx::start(kind).await;
        ctx.database = Some(database);
        drop(ctx.gateway);
        ctx.config.store = sesame::config::StoreLocation::Postgres(url);
        ctx.gateway = readiness_poll_async("the gateway on PostgreSQL", || async {
            sesame::server::start(&ctx.config, Arc::new(ctx.clock.clone()))
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        ctx.s3_url = ctx.gateway.s3_endpoint.clone();
        ctx
    }

    /// Another gateway on the same store, backend and clock, with a data directory of its
    /// own (`name` under the context's directory) and its own listeners: a replica.
    pub async fn replica(&self, name: &str) -> Running {
        let config = Config {
            data_dir: self.dir.path().join(name),
            ..self.config.clone()
        };
        sesame::server::start(&config, Arc::new(self.clock.clone()))
            .await
            .expect("the replica starts")
    }

    /// Stops the gateway and starts it again on the same data directory and clock, as after
    /// a crash: whatever it knows afterwards came from the store.
    pub async fn restarted(self) -> Ctx {
        self.restarted_after(|_| {}).await
    }

    /// Like [`Ctx::restarted`], with `meanwhile` done to the data directory or the
    /// configuration while it is down.
    pub async fn restarted_after(self, meanwhile: impl FnOnce(&mut Config)) -> Ctx {
        let Ctx {
            backend,
            admin,
            gateway,
            clock,
            dir,
            mut config,
            relay,
            database,
            ..
        } = self;
        drop(gateway);
        meanwhile(&mut config);
        // The old connection tasks let go of the store as they wind down.
        let gateway = readiness_poll_async("the restarted gateway", || async {
            sesame::server::start(&config, Arc::new(clock.clone()))
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        let s3_url = gateway.s3_endpoint.clone();
        Ctx {
            backend,
            admin,
            gateway,
            clock,
            s3_url,
            dir,
            config,
            relay,
            database,
        }
    }

    /// A fresh bucket on the backend with these objects in it.
    pub async fn bucket_with(&self, objects: &[(&str, &[u8])]) -> String {
        let bucket = unique_bucket();
        // Garage answers "layout not ready" for a moment after it starts.
        readiness_poll_async("bucket creation", || async {
            self.admin
                .create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .map(drop)
                .map_err(|e| format!("{e:?}"))
        })
        .await;
        for (key, body) in objects {
            self.put(&bucket, key, body).await;
        }
        bucket
    }

    pub async fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        self.admin
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("seed {bucket}/{key}: {e:?}"));
    }

    /// The object as the backend holds it, or `None` when it does not exist.
    pub async fn backend_object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let out = self
            .admin
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(
            out.body
                .collect()
                .await
                .expect("read body")
                .into_bytes()
                .to_vec(),
        )
    }

    /// An empty regular file, for `--body` (aws-cli refuses /dev/null).
    pub fn empty_file(&self) -> String {
        let path = self.dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Grants `actions` on `scope` (like `s3://bucket/prefix/`) for 30 minutes.
    pub fn grant(&self, scope: &str, actions: &[Action]) -> IssuedCredential {
        self.grant_to("alice", scope, actions)
    }

    /// Like [`Ctx::grant`], to another principal than alice.
    pub fn grant_to(&self, principal: &str, scope: &str, actions: &[Action]) -> IssuedCredential {
        let scope = Scope::parse(scope, actions.to_vec()).expect("valid scope");
        let grants = &self.gateway.grants;
        let grant = block_on(grants.create(principal, scope, None, time::Duration::minutes(30)))
            .expect("grant");
        block_on(grants.issue_credential(&grant.id)).expect("credential")
    }

    pub fn revoke(&self, cred: &IssuedCredential) {
        block_on(self.gateway.grants.revoke(&cred.grant_id, "test")).expect("revoke");
    }

    /// Moves the gateway's clock past the end of every 30-minute grant.
    pub fn expire_all(&self) {
        self.clock.advance(time::Duration::minutes(31));
    }

    /// aws-cli v1 (set to SigV4) with these credentials, pointed at the gateway.
    pub fn aws(&self, cred: &IssuedCredential, args: &[&str]) -> Output {
        aws_at(&self.s3_url, &self.dir.path().join("home"), cred, args)
    }

    /// `aws s3api get-object` of one key, the body thrown away: the request most tests make.
    pub fn get_object(&self, cred: &IssuedCredential, bucket: &str, key: &str) -> Output {
        self.aws(
            cred,
            &[
                "s3api",
                "get-object",
                "--bucket",
                bucket,
                "--key",
                key,
                "/dev/null",
            ],
        )
    }

    /// A boto3 script; `s3` is a client bound to the gateway with these credentials.
    pub fn boto3(&self, cred: &IssuedCredential, script: &str) -> Output {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let prelude = format!(
            "import boto3, botocore, sys\nfrom botocore.config import Config\ns3 = boto3.client('s3', endpoint_url='{}', config=Config(s3={{'addressing_style': 'path'}}))\n",
            self.s3_url
        );
        let mut cmd = Command::new(python_bin("python"));
        cmd.arg("-c").arg(format!("{prelude}{script}"));
        client_env(&mut cmd, cred, &home, Path::new("/dev/null"));
        run(cmd)
    }

    /// aws-sdk-s3 (Rust) with these credentials, pointed at the gateway.
    pub fn sdk(&self, cred: &IssuedCredential) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(sdk_config(&self.s3_url, cred).build())
    }
}

/// aws-sdk-s3's configuration for these credentials at any S3 URL, path style.
/// Runs one of the gateway's async calls from a test's plain function (or a closure that
/// cuts a transfer), on a runtime of its own on a thread of its own, so it works whatever
/// runtime the caller is on.
pub fn block_on<F>(work: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(work)
        })
        .join()
        .expect("the call did not panic")
    })
}

pub fn sdk_config(s3_url: &str, cred: &IssuedCredential) -> aws_sdk_s3::config::Builder {
    let creds = aws_sdk_s3::config::Credentials::new(
        cred.access_key_id.clone(),
        cred.secret_access_key.expose().to_owned(),
        Some(cred.session_token.expose().to_owned()),
        None,
        "test",
    );
    aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(REGION))
        .endpoint_url(s3_url)
        .force_path_style(true)
        .credentials_provider(creds)
}

pub fn client_env(cmd: &mut Command, cred: &IssuedCredential, home: &Path, config: &Path) {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", config)
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_ACCESS_KEY_ID", &cred.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", cred.secret_access_key.expose())
        .env("AWS_SESSION_TOKEN", cred.session_token.expose())
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// What a client process did.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        self
    }

    /// Failed, and said `needle` on stderr.
    #[track_caller]
    pub fn refused(&self, needle: &str) -> &Self {
        assert_ne!(self.code, 0, "expected failure, got {self:#?}");
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} in stderr: {self:#?}"
        );
        self
    }
}

pub fn run(mut cmd: Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The body of a plain HTTP GET of `url` (curl, no credentials), as bytes; panics with curl's
/// report when the answer is not a 2xx.
pub fn plain_get(url: &str) -> Vec<u8> {
    let body = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail-with-body", "-o"])
        .arg(body.path())
        .arg(url);
    let out = run(cmd);
    assert_eq!(
        out.code,
        0,
        "GET {url}: {out:#?}\n{}",
        String::from_utf8_lossy(&std::fs::read(body.path()).unwrap())
    );
    std::fs::read(body.path()).unwrap()
}

/// The virtualenv the test command sets up (`SESAME_TEST_VENV`), else `.venv` in the repo.
pub fn python_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("SESAME_TEST_VENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"),
        PathBuf::from,
    );
    let bin = venv.join("bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test, which sets up the virtualenv",
        bin.display()
    );
    bin
}

pub fn unique_bucket() -> String {
    format!("it-{}", rand_suffix())
}

pub fn rand_suffix() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().r#gen();
    format!("{n:016x}")
}

/// The async form of `garage::readiness_poll`, for waits inside a test's runtime: retries `check` every 100 ms for up to
/// 30 s without blocking the runtime, and reports the last error if it never succeeds.
pub async fn readiness_poll_async<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut last = String::new();
    for _ in 0..300 {
        match check().await {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not become ready within 30 s: {last}");
}

/// One Garage for the whole test binary, started on first use.
fn garage() -> &'static BackendInfo {
    static GARAGE: OnceLock<BackendInfo> = OnceLock::new();
    GARAGE.get_or_init(|| {
        let g = crate::garage::start(&crate::garage::bin(), REGION);
        BackendInfo {
            endpoint: g.endpoint,
            access_key: g.access_key,
            secret: g.secret,
        }
    })
}

/// One moto server for the whole test binary, tied to this process by a watchdog shell.
fn moto() -> &'static BackendInfo {
    static MOTO: OnceLock<BackendInfo> = OnceLock::new();
    MOTO.get_or_init(|| {
        let port = crate::garage::free_port();
        let script = format!(
            "{bin} -H 127.0.0.1 -p {port} & m=$!; while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; kill $m 2>/dev/null",
            bin = python_bin("moto_server").display(),
            parent = std::process::id()
        );
        // Not waited for: the watchdog ends with this process.
        #[allow(clippy::zombie_processes)]
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        crate::garage::readiness_poll("moto_server", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        BackendInfo {
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key: "moto-key".into(),
            secret: "moto-secret".into(),
        }
    })
}

/// The folder of the audit chain of the gateway using `data_dir`, under its default trail
/// root: `audit/<its replica id>`.
pub fn chain_dir(data_dir: &Path) -> PathBuf {
    let replica = sesame::server::replica_id(data_dir).expect("the gateway's replica id");
    data_dir.join(sesame::server::AUDIT_DIR).join(replica)
}

/// `sesame serve` as a separate process, killed on drop.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub s3_url: String,
    pub data_dir: PathBuf,
}

impl ServeProcess {
    /// Starts the binary on free ports with `args` added, and waits for it to say where it
    /// serves. It signs for [`REGION`] (its default) and so does a Garage backend (which the
    /// harness starts in that region); any other backend ignores the region.
    pub fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> ServeProcess {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_sesame"))
            .args([
                "serve",
                "--s3-addr",
                "127.0.0.1:0",
                "--api-addr",
                "127.0.0.1:0",
                "--backend-region",
                REGION,
                "--data-dir",
            ])
            .arg(data_dir)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sesame serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().expect("sesame serve printed nothing").unwrap();
        let s3_url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_owned();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        ServeProcess {
            child,
            s3_url,
            data_dir: data_dir.to_owned(),
        }
    }

    /// Runs `sesame ARGS` against this server (found through its data directory).
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
        cmd.args(args)
            .env("SESAME_DATA_DIR", &self.data_dir)
            .env_remove("SESAME_SERVER")
            .env_remove("SESAME_TOKEN");
        run(cmd)
    }

    /// Credentials of a grant the admin makes for `who` on `scope` with `actions`
    /// (`read,list`), for 30 minutes.
    pub fn grant(&self, scope: &str, who: &str, actions: &str) -> IssuedCredential {
        let out = self.cli(&[
            "grant",
            "create",
            scope,
            "--to",
            who,
            "--actions",
            actions,
            "--for",
            "30m",
            "--format",
            "json",
        ]);
        credential_from_json(&out.ok().stdout)
    }

    /// Runs `sesame ARGS` as the user holding `token`.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
        cmd.args(args)
            .env("SESAME_DATA_DIR", &self.data_dir)
            .env("SESAME_TOKEN", token)
            .env_remove("SESAME_SERVER");
        run(cmd)
    }

    /// Peak resident memory of the server process, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Credentials as `sesame grant create --format json` prints them.
pub fn credential_from_json(json: &str) -> IssuedCredential {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let field = |name: &str| {
        v[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} missing in {json}"))
            .to_owned()
    };
    IssuedCredential {
        access_key_id: field("AccessKeyId"),
        secret_access_key: sesame::secret::Secret::new(field("SecretAccessKey")),
        session_token: sesame::secret::Secret::new(field("SessionToken")),
        expiration: time::OffsetDateTime::parse(
            &field("Expiration"),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap(),
        grant_id: field("GrantId"),
    }
}

/// aws-cli against any S3 URL with these credentials.
pub fn aws_at(s3_url: &str, home: &Path, cred: &IssuedCredential, args: &[&str]) -> Output {
    std::fs::create_dir_all(home).unwrap();
    let config = home.join("aws-config");
    // Defaults only: in Sesame's region aws-cli v1 signs and presigns with SigV4 unasked.
    std::fs::write(&config, "[default]\n").unwrap();
    let mut cmd = Command::new(python_bin("aws"));
    cmd.args(["--endpoint-url", s3_url]).args(args);
    client_env(&mut cmd, cred, home, &config);
    run(cmd)
}

/// (the kept header, `X-Sesame-Signature`, body) of each POST a test receiver accepted.
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String, Vec<u8>)>>>;

/// An HTTP receiver on a loopback port chosen at run time, at `path`: it answers the very
/// first request with `first_status` (so the sender has to retry) and 200 after, keeping
/// the value of `keep_header`, the signature and the body of every request it accepted.
pub fn http_receiver(
    path: &str,
    first_status: &'static str,
    keep_header: &'static str,
) -> (String, Received) {
    let receiver = HttpReceiver::start(path, 1, first_status, keep_header);
    (receiver.url, receiver.received)
}

/// One request a test receiver was sent, accepted or not.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at: std::time::Instant,
    pub accepted: bool,
    /// The value of the receiver's `keep_header`.
    pub kept: String,
}

/// A receiver of POSTs on a loopback port chosen at run time, that refuses the first ones
/// and can be taken down: while down it reads each request and drops the connection
/// unanswered, as a receiver that crashed would.
pub struct HttpReceiver {
    pub url: String,
    /// What it accepted.
    pub received: Received,
    /// Every request it was sent, in order.
    pub arrivals: Arc<std::sync::Mutex<Vec<Arrival>>>,
    up: Arc<std::sync::atomic::AtomicBool>,
}

impl HttpReceiver {
    /// Answers the first `refuse` requests with `refusal` and the rest with 200, keeping
    /// `keep_header`, the signature and the body of each request it accepts.
    pub fn start(
        path: &str,
        refuse: usize,
        refusal: &'static str,
        keep_header: &'static str,
    ) -> HttpReceiver {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let receiver = HttpReceiver {
            url: format!("http://{}{path}", listener.local_addr().unwrap()),
            received: Received::default(),
            arrivals: Arc::default(),
            up: Arc::new(true.into()),
        };
        let (keep, arrivals, up) = (
            receiver.received.clone(),
            receiver.arrivals.clone(),
            receiver.up.clone(),
        );
        std::thread::spawn(move || {
            let mut answered = 0;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut length, mut kept, mut signature) = (0usize, String::new(), String::new());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        "x-sesame-signature" => value.trim().clone_into(&mut signature),
                        other if other == keep_header => value.trim().clone_into(&mut kept),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let at = std::time::Instant::now();
                if !up.load(Ordering::SeqCst) {
                    arrivals.lock().unwrap().push(Arrival {
                        at,
                        accepted: false,
                        kept,
                    });
                    continue;
                }
                let accepted = answered >= refuse;
                answered += 1;
                arrivals.lock().unwrap().push(Arrival {
                    at,
                    accepted,
                    kept: kept.clone(),
                });
                let status = if accepted {
                    keep.lock().unwrap().push((kept, signature, body));
                    "200 OK"
                } else {
                    refusal
                };
                let _ = stream.write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        receiver
    }

    /// Takes the receiver down or brings it back up.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
    }

    /// The requests it was sent so far.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }
}
