//! Share links (issue 8): `/_share/<token>` with the token tampered with (a flipped, cut or
//! borrowed MAC, another case, percent-encoded, padded with path tricks), a link used after
//! it was revoked or expired, after its grant was revoked or expired, after its download
//! limit; methods other than GET and HEAD; and Range abuse. Each refused use gets the exact
//! S3 error, never reaches the backend, changes nothing (no download spent), and is in the
//! trail, which never holds a token in clear, whatever path it came in on. Uses let
//! through fetch the link's own object and nothing else.

use sesame::model::Action::Read;
use sesame::model::Share;
use sesame::share::{NewShare, PATH_PREFIX};

use super::{Attack, Granted, Watched, every_byte_encoded, refuse_all};
use crate::harness::{BackendKind, Ctx};
use crate::sigv4::Signed;

crate::on_every_backend!(
    share_links_tampered_or_ended_are_refused,
    share_links_serve_their_own_object_only,
);

const FILE: &str = "out/file.txt";
const BODY: &[u8] = b"hello from the link";
const NOT_VALID: &str = "this share link is not valid: it was altered or cut short";

/// A bucket with the linked object, its neighbour and a secret, and alice's read grant on
/// `out/`.
async fn start(kind: BackendKind) -> Granted {
    let objects: [(&str, &[u8]); 3] = [
        (FILE, BODY),
        ("out/other.txt", b"the neighbour"),
        ("secret/s.txt", b"secret"),
    ];
    Granted::start(kind, &objects, "out/", &[Read]).await
}

/// A new link to `key` under alice's grant, and its token.
fn share(env: &Granted, key: &str, ask: NewShare) -> (Share, String) {
    let gateway = &env.ctx.gateway;
    let grant = gateway.grants.get(&env.cred.grant_id).expect("the grant");
    let ask = NewShare {
        bucket: env.b.clone(),
        key: key.into(),
        ..ask
    };
    crate::harness::block_on(gateway.shares.create(&grant, ask)).expect("link made")
}

/// A request with no credentials of any kind for this raw path.
fn plain(env: &Granted, method: &str, path: &str, headers: &[(&str, &str)]) -> Signed {
    let mut all = vec![("host".to_owned(), env.host())];
    all.extend(
        headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Signed {
        method: method.into(),
        path: path.into(),
        query: Vec::new(),
        headers: all,
    }
}

/// A token with its last character changed.
fn flipped(token: &str) -> String {
    let mut t = token.to_owned();
    let last = t.pop().unwrap();
    t.push(if last == 'A' { 'B' } else { 'A' });
    t
}

async fn share_links_tampered_or_ended_are_refused(kind: BackendKind) {
    let env = start(kind).await;
    let (_, token) = share(&env, FILE, NewShare::default());
    let (_, other) = share(&env, "out/other.txt", NewShare::default());
    let (id, mac) = token.split_once('.').unwrap();
    let (other_id, other_mac) = other.split_once('.').unwrap();
    let link = |t: &str| format!("{PATH_PREFIX}{t}");

    // (what, the raw path): every one a token this gateway did not make.
    #[rustfmt::skip]
    let tampered = [
        ("its MAC's last character changed", link(&flipped(&token))),
        ("its MAC cut short",                link(&token[..token.len() - 3])),
        ("no MAC at all",                    link(id)),
        ("no MAC after the dot",             link(&format!("{id}."))),
        ("another link's MAC",               link(&format!("{id}.{other_mac}"))),
        ("its MAC on another link",          link(&format!("{other_id}.{mac}"))),
        ("its id in capitals",               link(&format!("{}.{mac}", id.to_uppercase()))),
        ("its MAC in capitals",              link(&format!("{id}.{}", mac.to_uppercase()))),
        ("its id percent-encoded",           link(&format!("{}.{mac}", every_byte_encoded(id)))),
        ("a path after it",                  link(&format!("{token}/extra"))),
        ("another key after it",             link(&format!("{token}/../../{}/secret/s.txt", env.b))),
        ("another key after it, encoded",    link(&format!("{token}%2F..%2F..%2Fsecret%2Fs.txt"))),
        ("a slash before it",                link(&format!("/{token}"))),
        ("a dot segment before it",          link(&format!("./{token}"))),
        ("nothing",                          link("")),
        ("a token of 8 KiB",                 link(&"s".repeat(8192))),
    ];
    let mut attacks: Vec<Attack> = tampered
        .into_iter()
        .map(|(what, path)| {
            Attack::new(
                format!("a link with {what}: {}", &path[..path.len().min(100)]),
                plain(&env, "GET", &path, &[]),
                "AccessDenied",
                NOT_VALID.into(),
            )
        })
        .collect();

    for method in ["PUT", "POST", "DELETE", "PATCH", "OPTIONS"] {
        attacks.push(Attack {
            what: format!("{method} on a working link"),
            request: plain(&env, method, &link(&token), &[("content-length", "6")]),
            body: b"mallet".to_vec(),
            code: "MethodNotAllowed",
            fragment: "share links answer GET and HEAD only".into(),
        });
    }

    // Links that worked once and ended, each for its own reason.
    let (revoked, revoked_token) = share(&env, FILE, NewShare::default());
    env.ctx
        .gateway
        .shares
        .revoke(&revoked.id, "alice")
        .await
        .unwrap();
    let (used, used_token) = share(
        &env,
        FILE,
        NewShare {
            max_downloads: Some(1),
            ..NewShare::default()
        },
    );
    let first = plain(&env, "GET", &link(&used_token), &[])
        .send(env.ctx.gateway.s3_addr, b"")
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    let (short, short_token) = share(
        &env,
        FILE,
        NewShare {
            ttl: Some(time::Duration::minutes(1)),
            ..NewShare::default()
        },
    );
    env.ctx.clock.advance(time::Duration::minutes(2));
    #[rustfmt::skip]
    let ended = [
        ("a revoked link",                    &revoked_token, format!("share link {} was revoked by alice", revoked.id)),
        ("a link used up",                    &used_token,    format!("share link {} has been downloaded its 1 allowed time(s)", used.id)),
        ("an expired link",                   &short_token,   format!("share link {} expired at", short.id)),
        ("a used-up link, asked for a range", &used_token,    format!("share link {} has been downloaded", used.id)),
    ];
    for (what, token, fragment) in ended {
        let range: &[(&str, &str)] = if what.contains("range") {
            &[("range", "bytes=0-0")]
        } else {
            &[]
        };
        let request = plain(&env, "GET", &link(token), range);
        attacks.push(Attack::new(what.into(), request, "AccessDenied", fragment));
    }
    // Paths that are not a link's, carrying a working token: refused as S3 requests (no
    // bucket is named `_share`), and the token kept out of the trail all the same.
    for (what, path) in [
        ("a doubled slash", format!("/{}", link(&token))),
        ("the prefix in capitals", format!("/_SHARE/{token}")),
        ("the prefix percent-encoded", format!("/%5Fshare/{token}")),
    ] {
        attacks.push(Attack::new(
            format!("a working token under {what}: {path}"),
            plain(&env, "GET", &path, &[]),
            "InvalidBucketName",
            "The specified bucket is not valid".into(),
        ));
    }
    refuse_all(&env.ctx, &Watched::buckets(&[&env.b]), attacks).await;
    assert_eq!(env.ctx.gateway.shares.get(&used.id).unwrap().downloads, 1);

    // The grant behind a working link is revoked, or ends: the link ends with it.
    let (live, live_token) = share(&env, FILE, NewShare::default());
    env.ctx.revoke(&env.cred);
    let revoked_grant = [Attack::new(
        "a link whose grant was revoked".into(),
        plain(&env, "GET", &link(&live_token), &[]),
        "AccessDenied",
        format!(
            "share link {} no longer works: grant {} was revoked",
            live.id, env.cred.grant_id
        ),
    )];
    refuse_all(&env.ctx, &Watched::buckets(&[&env.b]), revoked_grant).await;

    // A link never outlives its grant: one asked to live longer ends with it.
    let again = env.ctx.grant(&format!("s3://{}/out/", env.b), &[Read]);
    let grant = env.ctx.gateway.grants.get(&again.grant_id).unwrap();
    let ask = NewShare {
        bucket: env.b.clone(),
        key: FILE.into(),
        ttl: Some(time::Duration::minutes(59)),
        ..NewShare::default()
    };
    let (long, long_token) = env.ctx.gateway.shares.create(&grant, ask).await.unwrap();
    env.ctx.expire_all();
    let expired_grant = [Attack::new(
        "a link whose grant expired".into(),
        plain(&env, "GET", &link(&long_token), &[]),
        "AccessDenied",
        format!(
            "share link {} expired at {}",
            long.id,
            sesame::duration::rfc3339(grant.expires_at)
        ),
    )];
    refuse_all(&env.ctx, &Watched::buckets(&[&env.b]), expired_grant).await;

    // No token is in the trail in clear, refused or not.
    let trail = raw_trail(&env.ctx);
    for t in [
        &token,
        &other,
        &revoked_token,
        &used_token,
        &short_token,
        &live_token,
    ] {
        let (_, mac) = t.split_once('.').unwrap();
        assert!(!trail.contains(mac), "the trail holds the secret of {t}");
    }
}

/// The trail's files as they are on disk.
fn raw_trail(ctx: &Ctx) -> String {
    let files =
        sesame::audit::files::list(&crate::harness::chain_dir(&ctx.config.data_dir)).unwrap();
    files
        .iter()
        .map(|f| std::fs::read_to_string(&f.path).unwrap())
        .collect()
}

/// A use of a link let through: (what, method, query after the token, headers, the status,
/// the body, the downloads it spends).
type Use<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    u16,
    &'a [u8],
    u32,
);

async fn share_links_serve_their_own_object_only(kind: BackendKind) {
    let env = start(kind).await;
    let addr = env.ctx.gateway.s3_addr;
    let (share, token) = share(
        &env,
        FILE,
        NewShare {
            max_downloads: Some(10),
            ..NewShare::default()
        },
    );
    let path = format!("{PATH_PREFIX}{token}");
    let object = format!("/{}/{FILE}", env.b);

    // (what, method, raw path, headers, status, body, downloads spent by it)
    #[rustfmt::skip]
    let rows: [Use<'_>; 7] = [
        ("HEAD, which spends nothing",                  "HEAD", "",                             &[],                             200, b"", 0),
        ("a query naming another key",                  "GET",  "?key=secret/s.txt&bucket=x",   &[],                             200, BODY, 1),
        ("a range past the end, clamped as S3 does",    "GET",  "",                             &[("range", "bytes=6-9999")],    206, &BODY[6..], 1),
        ("a suffix range",                              "GET",  "",                             &[("range", "bytes=-4")],        206, &BODY[BODY.len() - 4..], 1),
        ("a range that cannot be served: nothing spent", "GET", "",                             &[("range", "bytes=9999-")],     416, b"", 0),
        ("an empty suffix range: nothing spent",        "GET",  "",                             &[("range", "bytes=-0")],        416, b"", 0),
        ("an If-Match that fails: nothing spent",       "GET",  "",                             &[("if-match", "\"0000\"")],    412, b"", 0),
    ];
    let mut spent = 0;
    let mut failures = Vec::new();
    for (what, method, query, headers, status, body, spends) in rows {
        env.ctx.take_backend_requests();
        let answer = plain(&env, method, &format!("{path}{query}"), headers)
            .send(addr, b"")
            .await;
        spent += spends;
        let forwarded = env.ctx.take_backend_requests();
        if forwarded.iter().any(|f| f.path != object) {
            failures.push(format!("{what}: the backend was asked {forwarded:?}"));
        }
        if answer.status != status {
            failures.push(format!("{what}: {answer:?}"));
        }
        if status < 300 && method == "GET" && answer.body.as_bytes() != body {
            failures.push(format!("{what}: the body was {:?}", answer.body));
        }
        let downloads = env.ctx.gateway.shares.get(&share.id).unwrap().downloads;
        if downloads != spent {
            failures.push(format!(
                "{what}: {downloads} downloads spent, expected {spent}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
