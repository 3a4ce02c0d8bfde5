//! Share links with curl and a plain HTTP client: they work with no other credentials, as S3
//! does for Range and HEAD, until they expire, are revoked, run out of downloads or lose
//! their grant; tampered links are refused; downloads in flight are cut; every use is in
//! the trail. Then the same from the CLI as a grant holder uses it.

use std::process::Command;

use http_body_util::BodyExt as _;
use sesame::model::Action::{List, Read};
use sesame::share::NewShare;

use crate::harness::{BackendKind, Ctx, Output, block_on, readiness_poll_async, run};

crate::on_every_backend!(
    a_link_works_with_curl_as_s3_would_until_it_expires,
    revoking_a_link_or_its_grant_cuts_a_download_in_flight,
);

const MIB: usize = 1024 * 1024;

/// A link to `key` under the only grant in `ctx`, and its URL.
fn link(ctx: &Ctx, key: &str, ask: NewShare) -> (sesame::model::Share, String) {
    let grant = ctx.gateway.grants.list().pop().expect("a grant");
    let (bucket, key) = key.split_once('/').unwrap();
    let ask = NewShare {
        bucket: bucket.into(),
        key: key.into(),
        ..ask
    };
    let (share, token) = block_on(ctx.gateway.shares.create(&grant, ask)).expect("link made");
    let url = format!("{}{}{token}", ctx.s3_url, sesame::share::PATH_PREFIX);
    (share, url)
}

/// curl with the status and headers on stderr-free stdout: `(status, headers, body)`.
fn curl(args: &[&str]) -> (u16, String, String) {
    let headers = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "-", "-D"])
        .arg(headers.path())
        .args(["-w", "\n%{http_code}"])
        .args(args);
    let out: Output = run(cmd);
    let (body, status) = out
        .stdout
        .rsplit_once('\n')
        .expect("curl prints the status");
    let headers = std::fs::read_to_string(headers.path()).unwrap();
    (status.trim().parse().unwrap_or(0), headers, body.to_owned())
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().rev().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The bodies of the trail's records of one kind, once `count` of them are there.
async fn trail(ctx: &Ctx, kind: &str, count: usize) -> Vec<serde_json::Value> {
    let dir = crate::harness::chain_dir(&ctx.config.data_dir);
    readiness_poll_async("the trail's records", || async {
        let bodies: Vec<serde_json::Value> = sesame::audit::verify::records(&dir)
            .map_err(|e| format!("{e:?}"))?
            .into_iter()
            .filter(|r| r.body.kind.name() == kind)
            .map(|r| serde_json::to_value(r.body).unwrap())
            .collect();
        if bodies.len() >= count {
            Ok(bodies)
        } else {
            Err(format!("{} {kind} records so far", bodies.len()))
        }
    })
    .await
}

async fn a_link_works_with_curl_as_s3_would_until_it_expires(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx
        .bucket_with(&[("reports/march payroll.csv", b"name,pay\nalice,100\n")])
        .await;
    ctx.grant(&format!("s3://{b}/reports/"), &[Read, List]);
    let (share, url) = link(
        &ctx,
        &format!("{b}/reports/march payroll.csv"),
        NewShare::default(),
    );

    let (status, headers, body) = curl(&[&url]);
    assert_eq!(
        (status, body.as_str()),
        (200, "name,pay\nalice,100\n"),
        "{headers}"
    );
    assert_eq!(
        header(&headers, "content-disposition"),
        Some("attachment; filename=\"march payroll.csv\"; filename*=UTF-8''march%20payroll%2Ecsv")
    );
    assert_eq!(header(&headers, "content-type"), Some("text/csv"));
    assert_eq!(header(&headers, "content-length"), Some("19"));
    assert_eq!(header(&headers, "cache-control"), Some("private, no-store"));
    assert!(header(&headers, "etag").is_some(), "{headers}");

    // Range and HEAD behave as S3 does.
    let (status, headers, body) = curl(&["-H", "Range: bytes=9-13", &url]);
    assert_eq!((status, body.as_str()), (206, "alice"), "{headers}\n{body}");
    assert_eq!(header(&headers, "content-range"), Some("bytes 9-13/19"));
    // curl -I prints the headers where the body would be: there is no body.
    let (status, headers, _) = curl(&["-I", &url]);
    assert_eq!(status, 200, "{headers}");
    assert_eq!(header(&headers, "content-length"), Some("19"));
    let etag = header(&headers, "etag").unwrap().to_owned();
    // s3s-fs ignores conditional headers; Garage answers them as S3 does.
    if matches!(kind, BackendKind::Garage) {
        let (status, _, _) = curl(&["-H", &format!("If-None-Match: {etag}"), &url]);
        assert_eq!(status, 304);
        // A browser resuming a download: the piece while the object is unchanged, the
        // whole object once its entity tag no longer matches.
        let (status, _, body) = curl(&[
            "-H",
            "Range: bytes=9-13",
            "-H",
            &format!("If-Range: {etag}"),
            &url,
        ]);
        assert_eq!((status, body.as_str()), (206, "alice"));
        let (status, _, body) =
            curl(&["-H", "Range: bytes=9-13", "-H", "If-Range: \"0000\"", &url]);
        assert_eq!((status, body.as_str()), (200, "name,pay\nalice,100\n"));
    }

    // Every use is in the trail, with the link and grant but never the token.
    let uses = trail(&ctx, "share", 3).await;
    assert!(uses.iter().all(|u| u["share"] == share.id.as_str()
        && u["grant"] == share.grant_id.as_str()
        && u["decision"] == "allowed"));
    let token = url.rsplit('/').next().unwrap();
    let files =
        sesame::audit::files::list(&crate::harness::chain_dir(&ctx.config.data_dir)).unwrap();
    let raw: String = files
        .iter()
        .map(|f| std::fs::read_to_string(&f.path).unwrap())
        .collect();
    assert!(!raw.contains(token), "the trail holds no usable link");

    // Fifteen minutes later the link is dead; the gateway says why.
    ctx.clock.advance(time::Duration::minutes(15));
    let (status, _, body) = curl(&[&url]);
    assert_eq!(status, 403);
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    assert!(
        body.contains(&format!("share link {} expired at", share.id)),
        "{body}"
    );
    let uses = trail(&ctx, "share", 4).await;
    assert_eq!(uses.last().unwrap()["decision"], "denied");
}

async fn revoking_a_link_or_its_grant_cuts_a_download_in_flight(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let data: Vec<u8> = (0..48 * MIB).map(|i| (i % 251) as u8).collect();
    ctx.put(&b, "big/object.bin", &data).await;
    ctx.grant(&format!("s3://{b}/big/"), &[Read]);
    let client = sesame::http::client().unwrap();

    // Starts a download, lets `end` happen after the first bytes, and says whether the body
    // then ended in an error before all of it arrived.
    let cut_by = |url: String, end: Box<dyn FnOnce() + Send>| {
        let client = client.clone();
        async move {
            let req = hyper::Request::get(&url)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            let res = client.request(req).await.expect("download starts");
            assert_eq!(res.status(), 200);
            let mut body = res.into_body();
            let mut received = 0;
            let first = body.frame().await.expect("a first frame").expect("ok");
            received += first.data_ref().map_or(0, bytes::Bytes::len);
            end();
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => received += f.data_ref().map_or(0, bytes::Bytes::len),
                    Err(_) => return received,
                }
            }
            panic!("the download was not cut: {received} bytes arrived");
        }
    };

    let (share, url) = link(&ctx, &format!("{b}/big/object.bin"), NewShare::default());
    let shares = ctx.gateway.shares.clone();
    let id = share.id.clone();
    let received = cut_by(
        url.clone(),
        Box::new(move || {
            block_on(shares.revoke(&id, "alice")).unwrap();
        }),
    )
    .await;
    assert!(received < data.len());
    let (status, _, body) = curl(&[&url]);
    assert_eq!(status, 403);
    assert!(body.contains("was revoked by alice"), "{body}");

    let (_, url) = link(&ctx, &format!("{b}/big/object.bin"), NewShare::default());
    let grants = ctx.gateway.grants.clone();
    let grant = share.grant_id.clone();
    let received = cut_by(
        url.clone(),
        Box::new(move || {
            block_on(grants.revoke(&grant, "bob")).unwrap();
        }),
    )
    .await;
    assert!(received < data.len());
    let (status, _, body) = curl(&[&url]);
    assert_eq!(status, 403);
    assert!(body.contains("no longer works: grant"), "{body}");
    assert!(body.contains("was revoked"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_download_link_lets_exactly_one_of_eight_parallel_curls_through() {
    let ctx = Ctx::start(BackendKind::Fs).await;
    let body = vec![7u8; 64 * 1024];
    let b = ctx.bucket_with(&[("out/file.bin", &body)]).await;
    ctx.grant(&format!("s3://{b}/out/"), &[Read]);
    let (share, url) = link(
        &ctx,
        &format!("{b}/out/file.bin"),
        NewShare {
            max_downloads: Some(1),
            ..NewShare::default()
        },
    );
    let fetches: Vec<std::process::Child> = (0..8)
        .map(|_| {
            Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", &url])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let statuses: Vec<String> = fetches
        .into_iter()
        .map(|c| String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| *s == "200").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "403").count(),
        7,
        "{statuses:?}"
    );
    let (status, _, body) = curl(&[&url]);
    assert_eq!(status, 403);
    assert!(
        body.contains(&format!(
            "share link {} has been downloaded its 1 allowed time(s)",
            share.id
        )),
        "{body}"
    );
    assert_eq!(ctx.gateway.shares.get(&share.id).unwrap().downloads, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_truncated_and_foreign_links_are_refused() {
    let ctx = Ctx::start(BackendKind::Fs).await;
    let b = ctx.bucket_with(&[("out/file.txt", b"hello")]).await;
    ctx.grant(&format!("s3://{b}/out/"), &[Read]);
    let (_, url) = link(&ctx, &format!("{b}/out/file.txt"), NewShare::default());
    let mut flipped = url.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'x' { b'y' } else { b'x' };
    let flipped = String::from_utf8(flipped).unwrap();
    let truncated = &url[..url.len() - 4];
    let no_mac = url.rsplit_once('.').unwrap().0;
    for bad in [flipped.as_str(), truncated, no_mac, &format!("{url}/extra")] {
        let (status, _, body) = curl(&[bad]);
        assert_eq!(status, 403, "{bad}: {body}");
        assert!(
            body.contains("this share link is not valid: it was altered or cut short"),
            "{bad}: {body}"
        );
    }
    let (status, _, body) = curl(&["-X", "DELETE", &url]);
    assert_eq!(status, 405, "{body}");
    assert!(
        body.contains("share links answer GET and HEAD only"),
        "{body}"
    );
    let refused = trail(&ctx, "share", 5).await;
    assert!(
        refused
            .iter()
            .all(|r| r["decision"] == "denied" && r["share"].is_null())
    );
    // The object is still there and the link still works: nothing was lost or spent.
    let (status, _, body) = curl(&[&url]);
    assert_eq!((status, body.as_str()), (200, "hello"));
}

/// A grant holder shares an object from the CLI, lists the link, sees it used up, and
/// revokes another; what policy and the grant forbid is refused with a reason.
#[test]
fn a_holder_shares_lists_and_revokes_links_from_the_cli() {
    use crate::harness::ServeProcess;
    use crate::workflow::{add_user, json};

    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(objects.join("exports/2026")).unwrap();
    std::fs::write(objects.join("exports/2026/q1.csv"), b"q1\n").unwrap();
    std::fs::write(objects.join("exports/other.csv"), b"other\n").unwrap();
    let server = ServeProcess::start(
        &dir.path().join("data"),
        &["--backend", objects.to_str().unwrap()],
        &[],
    );
    let alice = add_user(&server, "alice", "analysts");
    let bob = add_user(&server, "bob", "analysts");
    server
        .cli(&[
            "grant",
            "create",
            "s3://exports/2026/",
            "--to",
            "alice",
            "--actions",
            "read",
            "--for",
            "1h",
        ])
        .ok();

    let out = server.cli_as(
        &alice,
        &[
            "share",
            "s3://exports/2026/q1.csv",
            "--ttl",
            "10m",
            "--max-downloads",
            "1",
            "--why",
            "send to auditor",
            "--json",
        ],
    );
    let link = json(&out.ok().stdout);
    let url = link["url"].as_str().unwrap();
    assert!(link["id"].as_str().unwrap().starts_with("s-"), "{link}");
    assert!(link["expires_at"].is_string(), "{link}");
    assert_eq!(link["max_downloads"], 1);
    let (status, _, body) = curl(&[url]);
    assert_eq!((status, body.as_str()), (200, "q1\n"));
    let (status, _, _) = curl(&[url]);
    assert_eq!(status, 403);

    // The link's path sent as a signed S3 request is refused as S3 (before any decision);
    // the trail keeps a hash of the path, never a link's secret.
    let (status, _, _) = curl(&["-H", "Authorization: AWS4-HMAC-SHA256 Credential=x", url]);
    assert!(status >= 400, "{status}");
    let mac = url.rsplit('.').next().unwrap();
    let trail = server.cli(&["audit", "--json"]).ok().stdout.clone();
    assert!(trail.contains("/_share/sha256:"), "{trail}");
    assert!(
        !trail.contains(&mac[..mac.len() - 1]),
        "a link's secret is in the trail"
    );

    // Listings show what a link is, not its URL: that was shown once, to its maker.
    let listed = json(&server.cli_as(&alice, &["shares", "--json"]).ok().stdout);
    assert!(listed[0].get("url").is_none(), "{listed}");
    assert_eq!(listed[0]["state"], "used_up", "{listed}");
    assert_eq!(listed[0]["downloads"], 1);
    let table = server.cli_as(&alice, &["shares"]).ok().stdout.clone();
    assert!(
        table.contains("s3://exports/2026/q1.csv") && table.contains("1/1"),
        "{table}"
    );
    // Bob sees none of Alice's links, and cannot revoke them.
    assert_eq!(
        json(&server.cli_as(&bob, &["shares", "--json"]).ok().stdout),
        serde_json::json!([])
    );
    let id = link["id"].as_str().unwrap();
    server
        .cli_as(&bob, &["share", "revoke", id])
        .refused("not found");

    // A second link, revoked by its maker: dead at once.
    let out = server.cli_as(&alice, &["share", "s3://exports/2026/q1.csv"]);
    let url = out.ok().stdout.lines().next().unwrap().to_owned();
    let id = out
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let revoked = json(
        &server
            .cli_as(&alice, &["share", "revoke", &id, "--json"])
            .ok()
            .stdout,
    );
    assert_eq!(revoked["state"], "revoked");
    let (status, _, body) = curl(&[&url]);
    assert_eq!(status, 403);
    assert!(body.contains("was revoked by alice"), "{body}");

    // Refusals say why.
    server
        .cli_as(
            &alice,
            &["share", "s3://exports/2026/q1.csv", "--ttl", "3h"],
        )
        .refused("last at most 1h (asked for 3h)");
    server
        .cli_as(&alice, &["share", "s3://exports/other.csv"])
        .refused("alice holds no active grant that reads s3://exports/other.csv");
    server
        .cli_as(&alice, &["share", "s3://exports/2026/"])
        .refused("is not an object");
    server
        .cli_as(&bob, &["share", "s3://exports/2026/q1.csv"])
        .refused("bob holds no active grant");
}

/// A real browser: headless Chromium loads a page that shows an image from a share link,
/// with no credentials of any kind. The one allowed download goes to the browser; reloading
/// the page shows the image refused; the trail names the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_shows_an_image_from_a_link_once() {
    let ctx = Ctx::start(BackendKind::Fs).await;
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, 40, 30);
        encoder.set_color(png::ColorType::Rgb);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[200u8; 40 * 30 * 3]).unwrap();
    }
    let b = ctx.bucket_with(&[("pics/dot.png", &png)]).await;
    ctx.grant(&format!("s3://{b}/pics/"), &[Read]);
    let (share, url) = link(
        &ctx,
        &format!("{b}/pics/dot.png"),
        NewShare {
            max_downloads: Some(1),
            ..NewShare::default()
        },
    );
    let page = ctx.dir.path().join("page.html");
    std::fs::write(
        &page,
        format!(
            r#"<html><body><p id="r">pending</p>
<img src="{url}" onload="document.getElementById('r').textContent='loaded ' + this.naturalWidth + 'x' + this.naturalHeight"
     onerror="document.getElementById('r').textContent='refused'"></body></html>"#
        ),
    )
    .unwrap();
    let show = |profile: &str| {
        let mut cmd = crate::report::headless_chromium(&ctx.dir.path().join(profile));
        cmd.arg("--dump-dom")
            .arg(format!("file://{}", page.display()));
        run(cmd).ok().stdout.clone()
    };
    let dom = show("first");
    assert!(dom.contains("loaded 40x30"), "{dom}");
    let dom = show("second");
    assert!(dom.contains("refused"), "{dom}");
    assert_eq!(ctx.gateway.shares.get(&share.id).unwrap().downloads, 1);

    let uses = trail(&ctx, "share", 2).await;
    assert!(
        uses[0]["user_agent"].as_str().unwrap().contains("Chrome"),
        "{}",
        uses[0]
    );
    assert_eq!(uses[0]["decision"], "allowed");
    assert_eq!(uses[1]["decision"], "denied");
}

/// Behind a proxy, links and the endpoint given out with credentials use the public URL.
#[test]
fn links_and_endpoints_use_the_public_url_behind_a_proxy() {
    use crate::harness::ServeProcess;
    use crate::workflow::{add_user, json};

    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(objects.join("exports")).unwrap();
    std::fs::write(objects.join("exports/q1.csv"), b"q1\n").unwrap();
    let server = ServeProcess::start(
        &dir.path().join("data"),
        &[
            "--backend",
            objects.to_str().unwrap(),
            "--public-url",
            "https://files.example.com/",
        ],
        &[],
    );
    let alice = add_user(&server, "alice", "analysts");
    let out = server.cli(&[
        "grant",
        "create",
        "s3://exports/",
        "--to",
        "alice",
        "--actions",
        "read",
        "--for",
        "1h",
    ]);
    assert!(
        out.ok()
            .stdout
            .contains("AWS_ENDPOINT_URL=https://files.example.com"),
        "{out:?}"
    );
    let link = json(
        &server
            .cli_as(&alice, &["share", "s3://exports/q1.csv", "--json"])
            .ok()
            .stdout,
    );
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://files.example.com/_share/s-"),
        "{url}"
    );
}
