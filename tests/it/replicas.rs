//! Several gateways sharing one PostgreSQL store, each with its own data directory and
//! listeners, behave as one: a credential issued through one works on the others, a
//! revocation through one is refused on the others within a second (a transfer in flight
//! included), a one-download link fetched through two at once is downloaded once, and a
//! gateway that cannot reach the store refuses with 503 until it can again.

use std::process::Command;
use std::time::{Duration, Instant};

use sesame::model::Action::{List, Read};
use sesame::share::NewShare;

use crate::harness::{BackendKind, Ctx, aws_at, block_on, run, sdk_config};

/// Polls `check` every 10 ms until it holds, at most `within`; how long it took.
async fn until<F, Fut>(what: &str, within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < within,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// The S3 error code a GET answers with (`None`: it succeeded).
async fn get_error(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<String> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            out.body.collect().await.expect("the body arrives");
            None
        }
        Err(e) => Some(
            aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("no code")
                .to_owned(),
        ),
    }
}

/// aws-cli's `GetObject` through `endpoint` (`s3api`, which prints the error's message).
fn aws_get(
    endpoint: &str,
    home: &std::path::Path,
    cred: &sesame::grant::IssuedCredential,
    bucket: &str,
    key: &str,
) -> crate::harness::Output {
    let out = home.join("object");
    let args = ["s3api", "get-object", "--bucket", bucket, "--key", key];
    let mut args: Vec<&str> = args.to_vec();
    args.push(out.to_str().unwrap());
    aws_at(endpoint, home, cred, &args)
}

fn admin_post(api: std::net::SocketAddr, token: &str, path: &str) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", &format!("authorization: Bearer {token}")])
        .arg(format!("http://{api}{path}"));
    run(cmd).stdout.trim().parse().expect("an HTTP status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_credential_works_on_every_replica_and_a_revocation_through_one_holds_on_all() {
    let ctx = Ctx::start_on_postgres(BackendKind::Fs).await;
    let big = vec![7u8; 64 * 1024 * 1024];
    let b = ctx
        .bucket_with(&[("data/a.txt", b"hello"), ("data/big.bin", &big)])
        .await;
    let other = ctx.replica("replica-b").await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read, List]);

    // Issued through the first gateway, the credential works on the second at once: a key
    // the feed has not brought yet is looked up in the store.
    let on_b = aws_sdk_s3::Client::from_conf(sdk_config(&other.s3_endpoint, &cred).build());
    assert_eq!(get_error(&on_b, &b, "data/a.txt").await, None);
    let home = ctx.dir.path().join("aws-home");
    let listed = aws_at(
        &other.s3_endpoint,
        &home,
        &cred,
        &["s3", "ls", &format!("s3://{b}/data/")],
    );
    assert!(listed.stdout.contains("a.txt"), "{}", listed.stdout);

    // A download in flight on the second gateway when the grant is revoked on the first.
    let mut download = on_b
        .get_object()
        .bucket(&b)
        .key("data/big.bin")
        .send()
        .await
        .expect("the download starts")
        .body;
    let first = download.next().await.expect("a first chunk").expect("data");
    assert!(!first.is_empty());

    let revoked_at = Instant::now();
    let status = admin_post(
        ctx.gateway.api_addr,
        ctx.gateway.admin_token.expose(),
        &format!("/v1/grants/{}/revoke", cred.grant_id),
    );
    assert_eq!(status, 200);
    let refused =
        until(
            "the revocation reaching the other replica",
            Duration::from_secs(5),
            || {
                let on_b = on_b.clone();
                let b = b.clone();
                async move {
                    get_error(&on_b, &b, "data/a.txt").await.as_deref() == Some("AccessDenied")
                }
            },
        )
        .await;
    println!(
        "the other replica refused {:?} after the revoke call ({refused:?} of polling)",
        revoked_at.elapsed()
    );
    assert!(
        refused < Duration::from_secs(1),
        "DESIGN rule 4: a revocation takes effect within a second everywhere; took {refused:?}"
    );
    // The transfer in flight is cut rather than finished.
    let mut received = first.len();
    let cut = loop {
        match download.next().await {
            Some(Ok(chunk)) => received += chunk.len(),
            Some(Err(_)) => break true,
            None => break false,
        }
    };
    assert!(
        cut && received < big.len(),
        "the download under the revoked grant ran on to {received} of {} bytes",
        big.len()
    );
    let after = aws_get(&other.s3_endpoint, &home, &cred, &b, "data/a.txt");
    assert!(
        after.stderr.contains("AccessDenied") && after.stderr.contains("revoked"),
        "{}",
        after.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_one_download_link_fetched_through_two_replicas_at_once_is_downloaded_once() {
    let ctx = Ctx::start_on_postgres(BackendKind::Fs).await;
    let b = ctx.bucket_with(&[("data/once.txt", b"only once")]).await;
    let other = ctx.replica("replica-b").await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    let grant = ctx.gateway.grants.get(&cred.grant_id).unwrap();
    let ask = NewShare {
        bucket: b.clone(),
        key: "data/once.txt".into(),
        max_downloads: Some(1),
        ..NewShare::default()
    };
    let (_, token) = block_on(ctx.gateway.shares.create(&grant, ask)).unwrap();
    let urls: Vec<String> = [&ctx.s3_url, &other.s3_endpoint]
        .iter()
        .map(|endpoint| format!("{endpoint}{}{token}", sesame::share::PATH_PREFIX))
        .collect();
    // HEAD takes no download: it shows when the link has reached the other gateway.
    let curl_status = |args: &[&str]| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args);
        run(cmd).stdout.trim().to_owned()
    };
    until(
        "the link reaching the other replica",
        Duration::from_secs(2),
        || {
            let ok = curl_status(&["-I", &urls[1]]) == "200";
            async move { ok }
        },
    )
    .await;

    let statuses: Vec<String> = std::thread::scope(|s| {
        let fetches: Vec<_> = (0..8)
            .map(|i| {
                let url = &urls[i % 2];
                s.spawn(move || curl_status(&[url.as_str()]))
            })
            .collect();
        fetches.into_iter().map(|f| f.join().unwrap()).collect()
    });
    let delivered = statuses.iter().filter(|s| *s == "200").count();
    assert_eq!(delivered, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| s == "200" || s == "403"),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_cut_off_from_its_store_refuses_with_503_and_recovers_by_itself() {
    let ctx = Ctx::start_on_postgres(BackendKind::Fs).await;
    let b = ctx.bucket_with(&[("data/a.txt", b"hello")]).await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    let client = aws_sdk_s3::Client::from_conf(sdk_config(&ctx.s3_url, &cred).build());
    assert_eq!(get_error(&client, &b, "data/a.txt").await, None);

    let sesame::config::StoreLocation::Postgres(url) = &ctx.config.store else {
        panic!("the context runs on PostgreSQL");
    };
    let database = url.expose().rsplit('/').next().unwrap().to_owned();
    crate::postgres::admin(&format!(
        "ALTER DATABASE {database} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
    ))
    .await;
    let stale = until(
        "the cut-off replica refusing",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            let b = b.clone();
            async move {
                get_error(&client, &b, "data/a.txt").await.as_deref() == Some("ServiceUnavailable")
            }
        },
    )
    .await;
    println!("refused with 503 {stale:?} after the store was cut off");
    let home = ctx.dir.path().join("aws-home");
    let refused = aws_get(&ctx.s3_url, &home, &cred, &b, "data/a.txt");
    assert!(
        refused.stderr.contains("has not reached its store"),
        "{}",
        refused.stderr
    );

    crate::postgres::admin(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true")).await;
    let back = until("the replica recovering", Duration::from_secs(20), || {
        let client = client.clone();
        let b = b.clone();
        async move { get_error(&client, &b, "data/a.txt").await.is_none() }
    })
    .await;
    println!("served again {back:?} after the store came back");
}
