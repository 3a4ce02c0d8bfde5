//! TLS with a throwaway CA made here (rcgen): aws-cli, boto3, aws-sdk-s3, curl and the CLI
//! against both listeners over TLS, each refusing a certificate of the wrong CA; certificates
//! renewed (on file change and on SIGHUP) while a download runs; client certificates on the
//! control API; a backend behind TLS, verified against the right and the wrong CA; and a
//! listener off loopback without TLS refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use aws_sdk_s3::error::SdkError;
use sesame::config::{Backend, ClientCertificates, Tls};
use sesame::grant::IssuedCredential;
use sesame::model::Action;
use sesame::tls::CertFiles;

use crate::harness::{
    BackendKind, Ctx, Output, ServeProcess, client_env, python_bin, readiness_poll_async, run,
    sdk_config,
};

/// A certificate authority of one test, writing what it issues into `dir`.
struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
    /// Its certificate, the bundle clients are given.
    bundle: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let issuer =
            rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let bundle = dir.join(format!("{name}.pem"));
        std::fs::write(&bundle, issuer.pem()).unwrap();
        Ca {
            issuer,
            dir: dir.to_owned(),
            bundle,
        }
    }

    /// A certificate for `names` (DNS names or IP addresses) and its key, as PEM.
    fn issue_pem(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Like [`Ca::issue_pem`], written to `<file>.pem` and `<file>.key`.
    fn issue(&self, file: &str, names: &[&str]) -> CertFiles {
        let files = CertFiles {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        let (cert, key) = self.issue_pem(names);
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }
}

/// A server certificate for the gateway on loopback.
const SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1"];

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A gateway in front of `kind` with TLS on both listeners.
async fn tls_gateway(kind: BackendKind, tls: Tls) -> Ctx {
    let ctx = Ctx::start(kind)
        .await
        .restarted_after(|c| c.tls = tls)
        .await;
    assert!(
        ctx.s3_url.starts_with("https://127.0.0.1:"),
        "{}",
        ctx.s3_url
    );
    ctx
}

fn both(files: &CertFiles) -> Tls {
    Tls {
        s3: Some(files.clone()),
        api: Some(files.clone()),
        api_clients: None,
    }
}

/// aws-sdk-s3 trusting only `ca`'s certificate.
fn sdk_trusting(s3_url: &str, cred: &IssuedCredential, ca: &Path) -> aws_sdk_s3::Client {
    let http = sesame::s3::http_client_trusting(&std::fs::read(ca).unwrap());
    aws_sdk_s3::Client::from_conf(sdk_config(s3_url, cred).http_client(http).build())
}

/// boto3 with `verify=` the CA bundle: prints the object's body, or the exception's name.
fn boto3_verifying(
    ctx: &Ctx,
    cred: &IssuedCredential,
    ca: &Path,
    bucket: &str,
    key: &str,
) -> Output {
    let home = ctx.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let script = format!(
        "import boto3, sys\nfrom botocore.config import Config\n\
         s3 = boto3.client('s3', endpoint_url='{}', verify='{}', config=Config(s3={{'addressing_style': 'path'}}, retries={{'max_attempts': 1}}))\n\
         try:\n    sys.stdout.write(s3.get_object(Bucket='{bucket}', Key='{key}')['Body'].read().decode())\n\
         except Exception as e:\n    sys.stderr.write(type(e).__name__ + ': ' + str(e))\n    sys.exit(1)\n",
        ctx.s3_url,
        path(ca)
    );
    let mut cmd = Command::new(python_bin("python"));
    cmd.arg("-c").arg(script);
    client_env(&mut cmd, cred, &home, Path::new("/dev/null"));
    run(cmd)
}

fn curl(args: &[&str]) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "20"])
        .args(args);
    run(cmd)
}

/// `sesame ARGS` against the in-process gateway of `ctx`, found through its data directory;
/// `trust` (`--ca-bundle`, `--client-cert`, ...) goes after the verb.
fn sesame(ctx: &Ctx, token: Option<&str>, trust: &[&str], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.args(args)
        .args(trust)
        .env("SESAME_DATA_DIR", &ctx.config.data_dir)
        .env("XDG_CONFIG_HOME", ctx.dir.path().join("xdg"))
        .env_remove("SESAME_SERVER")
        .env_remove("SESAME_CA_BUNDLE")
        .env_remove("SESAME_CLIENT_CERT")
        .env_remove("SESAME_CLIENT_KEY");
    match token {
        Some(token) => cmd.env("SESAME_TOKEN", token),
        None => cmd.env_remove("SESAME_TOKEN"),
    };
    run(cmd)
}

fn json(out: &Output) -> serde_json::Value {
    out.ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:#?}"))
}

/// The leaf certificate a TLS listener presents to a new connection.
async fn presented(addr: SocketAddr, ca: &Path) -> Vec<u8> {
    let roots = sesame::tls::roots(Some(ca)).unwrap();
    let config = sesame::tls::client_config(roots, None).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn leaf_der(files: &CertFiles) -> Vec<u8> {
    sesame::tls::certificates(&files.cert, "test certificate").unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_works_over_tls_and_refuses_a_certificate_of_another_ca() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new(certs.path(), "sesame-test-ca");
    let wrong = Ca::new(certs.path(), "another-ca");
    let server = ca.issue("server", SERVER_NAMES);
    let ctx = tls_gateway(BackendKind::Fs, both(&server)).await;
    let bucket = ctx.bucket_with(&[("report.csv", b"a,b\n1,2\n")]).await;
    let cred = ctx.grant(&format!("s3://{bucket}/"), &[Action::Read, Action::List]);
    let object = format!("s3://{bucket}/report.csv");

    // aws-cli with --ca-bundle; with the other CA's bundle it refuses the certificate.
    let out = ctx.aws(
        &cred,
        &["--ca-bundle", path(&ca.bundle), "s3", "cp", &object, "-"],
    );
    assert_eq!(out.ok().stdout, "a,b\n1,2\n");
    ctx.aws(
        &cred,
        &["--ca-bundle", path(&wrong.bundle), "s3", "cp", &object, "-"],
    )
    .refused("CERTIFICATE_VERIFY_FAILED");

    // boto3 with verify=.
    let out = boto3_verifying(&ctx, &cred, &ca.bundle, &bucket, "report.csv");
    assert_eq!(out.ok().stdout, "a,b\n1,2\n");
    boto3_verifying(&ctx, &cred, &wrong.bundle, &bucket, "report.csv").refused("SSLError");

    // aws-sdk-s3 trusting the CA; trusting the other one, the request is never sent.
    let got = sdk_trusting(&ctx.s3_url, &cred, &ca.bundle)
        .get_object()
        .bucket(&bucket)
        .key("report.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().to_vec(), b"a,b\n1,2\n");
    let err = sdk_trusting(&ctx.s3_url, &cred, &wrong.bundle)
        .get_object()
        .bucket(&bucket)
        .key("report.csv")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");

    // The CLI reaches the control API over TLS with --ca-bundle, and says what to do
    // without it. The admin adds a user and grants them the bucket.
    let ca_flag = ["--ca-bundle", path(&ca.bundle)];
    let out = sesame(&ctx, None, &[], &["grants", "--json"]);
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(
        out.stderr.contains("the TLS handshake failed")
            && out
                .stderr
                .contains("give its CA with --ca-bundle or SESAME_CA_BUNDLE"),
        "{out:#?}"
    );
    let alice = json(&sesame(
        &ctx,
        None,
        &ca_flag,
        &["user", "add", "alice", "--json"],
    ));
    let alice_token = alice["token"].as_str().unwrap().to_owned();
    let env = sesame(
        &ctx,
        None,
        &ca_flag,
        &[
            "grant",
            "create",
            &format!("s3://{bucket}/"),
            "--to",
            "alice",
            "--actions",
            "read",
            "--for",
            "1h",
        ],
    );
    assert!(
        env.ok()
            .stdout
            .contains(&format!("export AWS_ENDPOINT_URL={}\n", ctx.s3_url)),
        "the aws-cli snippet names the https:// endpoint: {env:#?}"
    );

    // A share link is https://, and curl fetches it with --cacert; with the other CA, or
    // none, curl refuses the certificate (exit 60).
    let link = json(&sesame(
        &ctx,
        Some(&alice_token),
        &ca_flag,
        &["share", &object, "--ttl", "10m", "--json"],
    ));
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/_share/", ctx.s3_url)), "{url}");
    assert_eq!(
        curl(&["--cacert", path(&ca.bundle), url]).ok().stdout,
        "a,b\n1,2\n"
    );
    assert_eq!(curl(&["--cacert", path(&wrong.bundle), url]).code, 60);
    assert_eq!(curl(&[url]).code, 60);

    // The control API over TLS tells browsers to keep to HTTPS.
    let api = format!("https://{}/v1/health", ctx.gateway.api_addr);
    let head = curl(&["--cacert", path(&ca.bundle), "--include", &api]);
    assert!(
        head.ok()
            .stdout
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{head:#?}"
    );
    let api_url = std::fs::read_to_string(ctx.config.data_dir.join("api.url")).unwrap();
    assert_eq!(api_url.trim(), format!("https://{}", ctx.gateway.api_addr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_renewed_while_a_download_runs_is_presented_to_new_connections_and_drops_nothing()
 {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new(certs.path(), "renewal-ca");
    let server = ca.issue("server", SERVER_NAMES);
    let ctx = tls_gateway(BackendKind::Fs, both(&server)).await;
    let big: Vec<u8> = (0..16 * 1024 * 1024)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let bucket = ctx.bucket_with(&[("big.bin", &big)]).await;
    let cred = ctx.grant(&format!("s3://{bucket}/"), &[Action::Read]);
    let first = leaf_der(&server);
    assert_eq!(presented(ctx.gateway.s3_addr, &ca.bundle).await, first);

    // A download starts and its first bytes arrive.
    let s3 = sdk_trusting(&ctx.s3_url, &cred, &ca.bundle);
    let mut body = s3
        .get_object()
        .bucket(&bucket)
        .key("big.bin")
        .send()
        .await
        .unwrap()
        .body;
    let mut got = body.next().await.unwrap().unwrap().to_vec();

    // The certificate is renewed on disk (key first, then the certificate: in between the
    // pair does not match and the one in use stays).
    let (cert, key) = ca.issue_pem(SERVER_NAMES);
    std::fs::write(&server.key, key).unwrap();
    std::fs::write(&server.cert, cert).unwrap();
    let renewed = leaf_der(&server);
    readiness_poll_async("the renewed certificate on new connections", || async {
        let now = presented(ctx.gateway.s3_addr, &ca.bundle).await;
        if now == renewed {
            Ok(())
        } else {
            Err("still the first certificate".to_owned())
        }
    })
    .await;
    assert_eq!(presented(ctx.gateway.api_addr, &ca.bundle).await, renewed);

    // The download started before runs to its end on the old connection, byte for byte.
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert!(
        got == big,
        "{} of {} bytes, or different ones",
        got.len(),
        big.len()
    );
    // And new requests work on the renewed certificate.
    let again = s3
        .get_object()
        .bucket(&bucket)
        .key("big.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.body.collect().await.unwrap().into_bytes().len(),
        big.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_of_the_serve_binary() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new(certs.path(), "sighup-ca");
    let server = ca.issue("server", SERVER_NAMES);
    let data = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start(
        data.path(),
        &[
            "--tls-cert",
            path(&server.cert),
            "--tls-key",
            path(&server.key),
        ],
        &[("SESAME_LOG", "warn")],
    );
    assert!(
        serve.s3_url.starts_with("https://127.0.0.1:"),
        "{}",
        serve.s3_url
    );
    let addr: SocketAddr = serve.s3_url.trim_start_matches("https://").parse().unwrap();
    let first = leaf_der(&server);
    assert_eq!(presented(addr, &ca.bundle).await, first);
    // The CLI finds the https:// control API in the data directory.
    let grants = serve.cli(&["grants", "--json", "--ca-bundle", path(&ca.bundle)]);
    assert_eq!(grants.ok().stdout.trim(), "[]");

    // New files that the two-second look at sizes and times cannot tell from the old ones
    // (same lengths, times put back): only the signal makes the gateway read them.
    let stamp = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let (cert_time, key_time) = (stamp(&server.cert), stamp(&server.key));
    let old_len = std::fs::metadata(&server.cert).unwrap().len();
    let (cert, key) = std::iter::repeat_with(|| ca.issue_pem(SERVER_NAMES))
        .find(|(cert, _)| cert.len() as u64 == old_len)
        .unwrap();
    std::fs::write(&server.key, key).unwrap();
    std::fs::write(&server.cert, cert).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&server.cert)
        .unwrap()
        .set_modified(cert_time)
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&server.key)
        .unwrap()
        .set_modified(key_time)
        .unwrap();
    let renewed = leaf_der(&server);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        presented(addr, &ca.bundle).await,
        first,
        "reloaded without the signal"
    );

    let hup = Command::new("kill")
        .args(["-HUP", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    readiness_poll_async("the certificate reloaded on SIGHUP", || async {
        let now = presented(addr, &ca.bundle).await;
        if now == renewed {
            Ok(())
        } else {
            Err("still the first certificate".to_owned())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_authenticate_the_control_api_as_the_principal_they_map_to() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new(certs.path(), "server-ca");
    let automation = Ca::new(certs.path(), "automation-ca");
    let stranger_ca = Ca::new(certs.path(), "stranger-ca");
    let server = ca.issue("server", SERVER_NAMES);
    let bot = automation.issue("bot", &["deploy-bot.ci.example"]);
    let ops = automation.issue("ops", &["ops.ci.example"]);
    let unlisted = automation.issue("unlisted", &["unlisted.ci.example"]);
    let ghost = automation.issue("ghost", &["ghost.ci.example"]);
    let foreign = stranger_ca.issue("foreign", &["deploy-bot.ci.example"]);
    let principals = [
        ("deploy-bot.ci.example", "deploy-bot"),
        ("ops.ci.example", "admin"),
        ("ghost.ci.example", "nobody-by-that-name"),
    ]
    .into_iter()
    .map(|(n, p)| (n.to_owned(), p.to_owned()))
    .collect();
    let tls = Tls {
        api_clients: Some(ClientCertificates {
            ca: automation.bundle.clone(),
            principals,
        }),
        ..both(&server)
    };
    let ctx = tls_gateway(BackendKind::Fs, tls).await;
    let ca_flag = ["--ca-bundle", path(&ca.bundle)];
    let with_cert = |files: &CertFiles, args: &[&str]| {
        let cert = [
            "--client-cert",
            path(&files.cert),
            "--client-key",
            path(&files.key),
        ];
        sesame(&ctx, None, &[&ca_flag[..], &cert[..]].concat(), args)
    };
    json(&sesame(
        &ctx,
        None,
        &ca_flag,
        &[
            "user",
            "add",
            "deploy-bot",
            "--group",
            "automation",
            "--json",
        ],
    ));

    // The bot's certificate alone, no token: it is deploy-bot, with its groups.
    let me = json(&with_cert(&bot, &["whoami", "--json"]));
    assert_eq!(
        (me["name"].as_str(), me["groups"][0].as_str()),
        (Some("deploy-bot"), Some("automation"))
    );
    // The ops certificate is mapped to the admin, who may grant directly.
    let created = with_cert(
        &ops,
        &[
            "grant",
            "create",
            "s3://any/",
            "--to",
            "deploy-bot",
            "--actions",
            "read",
            "--for",
            "10m",
            "--format",
            "json",
        ],
    );
    assert!(created.ok().stdout.contains("GrantId"), "{created:#?}");

    // A certificate of the right CA whose name is not listed, or that maps to no user, is
    // refused with its names; one of another CA fails the handshake.
    let out = with_cert(&unlisted, &["whoami"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.contains(
            "the client certificate's names (unlisted.ci.example) are not in [tls.api_clients]"
        ),
        "{out:#?}"
    );
    let out = with_cert(&ghost, &["whoami"]);
    assert!(
        out.stderr.contains("the client certificate ghost.ci.example is mapped to the user nobody-by-that-name, who does not exist"),
        "{out:#?}"
    );
    let out = with_cert(&foreign, &["whoami"]);
    assert_eq!(out.code, 3, "{out:#?}");
    // Without a certificate and without a token, nothing but the open routes answers.
    let whoami = format!("https://{}/v1/whoami", ctx.gateway.api_addr);
    let out = curl(&[
        "--cacert",
        path(&ca.bundle),
        "--write-out",
        "%{http_code}",
        "--output",
        "/dev/null",
        &whoami,
    ]);
    assert_eq!(out.stdout, "401");
}

/// A TLS terminator of the test's own in front of a plain backend: the gateway reaches the
/// backend over TLS, presenting `files`.
async fn tls_front(backend: &str, files: CertFiles) -> String {
    let plain: SocketAddr = backend.trim_start_matches("http://").parse().unwrap();
    let config =
        sesame::tls::server_config(sesame::tls::Certificate::load(files).unwrap(), None).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut backend) = tokio::net::TcpStream::connect(plain).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut backend).await;
            });
        }
    });
    format!("https://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_behind_tls_is_verified_against_the_ca_given_and_a_wrong_one_stops_the_start() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new(certs.path(), "backend-ca");
    let wrong = Ca::new(certs.path(), "not-the-backend-ca");
    let ctx = Ctx::start(BackendKind::Fs).await;
    let bucket = ctx.bucket_with(&[("k.txt", b"through TLS")]).await;
    let url = tls_front(&ctx.backend.endpoint, ca.issue("backend", SERVER_NAMES)).await;
    let behind_tls = |config: &mut sesame::config::Config, trusted: Option<&Path>| {
        let Backend::Endpoint { credentials, .. } = &config.backend else {
            unreachable!("the harness gives an endpoint")
        };
        config.backend = Backend::Endpoint {
            url: url.clone(),
            region: crate::harness::REGION.into(),
            path_style: true,
            credentials: credentials.clone(),
            ca: trusted.map(Path::to_owned),
        };
    };

    // The wrong CA, or the system's roots: the start stops, naming the backend and why.
    for trusted in [Some(wrong.bundle.as_path()), None] {
        let mut config = ctx.config.clone();
        config.data_dir = certs.path().join("refused");
        behind_tls(&mut config, trusted);
        let clock: sesame::clock::SharedClock = Arc::new(ctx.clock.clone());
        let Err(err) = sesame::server::start(&config, clock).await else {
            panic!("a gateway started against a backend whose certificate it cannot verify")
        };
        let err = err.to_string();
        let trusted_as = trusted.map_or_else(
            || "the system's roots (give its CA with --backend-ca FILE)".to_owned(),
            |ca| format!("the CA bundle {}", ca.display()),
        );
        assert!(
            err.starts_with(&format!(
                "backend: backend {url}: the TLS handshake failed: invalid peer certificate"
            )),
            "{err}"
        );
        assert!(
            err.contains("UnknownIssuer")
                && err.ends_with(&format!(
                    "; its certificate is verified against {trusted_as}"
                )),
            "{err}"
        );
    }

    // The right CA: objects come through the TLS hop.
    let ctx = ctx
        .restarted_after(|c| behind_tls(c, Some(&ca.bundle)))
        .await;
    let cred = ctx.grant(&format!("s3://{bucket}/"), &[Action::Read]);
    let got = ctx
        .sdk(&cred)
        .get_object()
        .bucket(&bucket)
        .key("k.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().to_vec(), b"through TLS");
}

#[test]
fn serve_refuses_a_listener_off_loopback_without_tls_and_says_why() {
    let data = tempfile::tempdir().unwrap();
    let out = run({
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
        cmd.args([
            "serve",
            "--s3-addr",
            "0.0.0.0:0",
            "--api-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data.path());
        cmd
    });
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(
        out.stderr.contains("s3_addr 0.0.0.0:0 is not a loopback address, and without TLS")
            && out.stderr.contains("give --tls-cert and --tls-key, or --allow-plain-http if a proxy in front of Sesame terminates TLS"),
        "{out:#?}"
    );
}
