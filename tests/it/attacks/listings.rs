//! Listings (issue 8): `ListObjects`, `ListObjectsV2`, `ListObjectVersions` and
//! `ListMultipartUploads` under a grant that lists `team-a/`, with no prefix, a prefix
//! outside the scope or only beside it, encoded, doubly encoded, with a leading slash, sent
//! twice; with delimiters, `encoding-type=url`, markers, `start-after` and continuation
//! tokens pointing outside the scope, and `max-keys` abuse. A listing whose prefix leaves the
//! scope is refused before the backend; one let through shows nothing outside the scope,
//! and the relay sees the backend asked only for a prefix inside it.

use sesame::model::Action::{List, Read, Write};

use super::{Attack, Granted, Watched, refuse_all};
use crate::harness::BackendKind;
use crate::sigv4::{Answer, Knobs, Signed};
use Listing::{Uploads, V1, V2, Versions};

crate::on_every_backend!(
    listings_outside_the_scope_are_refused,
    listings_let_through_show_only_the_scope,
);

/// The listing operations, by the query that names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    V1,
    V2,
    Versions,
    Uploads,
}

impl Listing {
    const ALL: [Listing; 4] = [V1, V2, Versions, Uploads];

    fn query(self) -> &'static [(&'static str, &'static str)] {
        match self {
            V1 => &[],
            V2 => &[("list-type", "2")],
            Versions => &[("versions", "")],
            Uploads => &[("uploads", "")],
        }
    }

    /// The marker parameter that says where a page starts.
    fn marker(self) -> &'static str {
        match self {
            V1 => "marker",
            V2 => "start-after",
            Versions | Uploads => "key-marker",
        }
    }
}

/// A bucket with keys inside, beside and outside alice's scope (`team-a/`), and uploads
/// in progress inside and outside it.
async fn start(kind: BackendKind) -> Granted {
    #[rustfmt::skip]
    let keys: [(&str, &[u8]); 6] = [
        ("team-a/x.txt", b"x"), ("team-a/sub/y.txt", b"y"), ("team-a/a b+c.txt", b"z"),
        ("team-a-secrets/s.txt", b"secret"), ("team-a.txt", b"beside"), ("top.txt", b"top"),
    ];
    let env = Granted::start(kind, &keys, "team-a/", &[List, Read, Write]).await;
    let bob = env
        .ctx
        .grant_to("bob", &format!("s3://{}/team-a-secrets/", env.b), &[Write]);
    for (who, key) in [
        (&env.cred, "team-a/up.bin"),
        (&bob, "team-a-secrets/up.bin"),
    ] {
        if kind != BackendKind::Fs {
            env.ctx
                .sdk(who)
                .create_multipart_upload()
                .bucket(&env.b)
                .key(key)
                .send()
                .await
                .expect("an upload starts");
        }
    }
    env
}

/// A listing of `b` with `params` (raw, as sent) after the ones naming the operation.
fn signed(env: &Granted, listing: Listing, params: &[(&str, &str)]) -> Signed {
    let mut query: Vec<(&str, &str)> = listing.query().to_vec();
    query.extend_from_slice(params);
    let headers = vec![("host".into(), env.host())];
    let path = format!("/{}", env.b);
    Knobs::new(&env.cred).sign_header("GET", &path, &query, headers, "UNSIGNED-PAYLOAD")
}

const OUTSIDE: &str = "does not cover listing s3://{b}/";

/// Raw query parameters of a row, as sent.
type Params = &'static [(&'static str, &'static str)];

/// Listings refused before the backend: (what, the raw query parameters, the S3 error
/// code, a fragment of its message). `{b}` is the bucket; `{m}` the operation's marker.
#[rustfmt::skip]
const REFUSED: &[(&str, Params, &str, &str)] = &[
    ("the whole bucket",                    &[],                                         "AccessDenied", "does not cover listing s3://{b}/: list with a prefix inside the grant"),
    ("an empty prefix",                     &[("prefix", "")],                           "AccessDenied", OUTSIDE),
    ("the scope without its slash",         &[("prefix", "team-a")],                     "AccessDenied", "does not cover listing s3://{b}/team-a:"),
    ("the secret prefix beside the scope",  &[("prefix", "team-a-secrets/")],            "AccessDenied", "does not cover listing s3://{b}/team-a-secrets/:"),
    ("the secret prefix, encoded",          &[("prefix", "team-a%2Dsecrets%2F")],        "AccessDenied", "does not cover listing s3://{b}/team-a-secrets/:"),
    ("the scope doubly encoded",            &[("prefix", "team-a%252F")],                "AccessDenied", "does not cover listing s3://{b}/team-a%2F:"),
    ("a leading slash",                     &[("prefix", "%2Fteam-a%2F")],               "AccessDenied", "does not cover listing s3://{b}//team-a/:"),
    ("the whole bucket by delimiter",       &[("delimiter", "%2F")],                     "AccessDenied", OUTSIDE),
    ("a prefix beside, by delimiter",       &[("prefix", "team-a"), ("delimiter", "-")], "AccessDenied", "does not cover listing s3://{b}/team-a:"),
    ("the whole bucket, url-encoded",       &[("encoding-type", "url")],                 "AccessDenied", OUTSIDE),
    ("a prefix outside, url-encoded",       &[("prefix", "team-a-secrets/"), ("encoding-type", "url")], "AccessDenied", "team-a-secrets/:"),
    ("a prefix outside, marker inside",     &[("prefix", "top"), ("{m}", "team-a/x.txt")], "AccessDenied", "does not cover listing s3://{b}/top:"),
    ("two prefixes, the first inside",      &[("prefix", "team-a/"), ("prefix", "team-a-secrets/")], "InvalidRequest", "duplicate query: prefix"),
    ("two prefixes, the first outside",     &[("prefix", "team-a-secrets/"), ("prefix", "team-a/")], "InvalidRequest", "duplicate query: prefix"),
];

/// `max-keys` that is not a count (the prefix is inside the scope): s3s refuses it once the
/// request is authorised, before the backend.
#[rustfmt::skip]
const BAD_COUNTS: &[(&str, &str)] = &[
    ("max-keys that is not a number", "ten"),
    ("max-keys past 32 bits",         "4294967296"),
];

async fn listings_outside_the_scope_are_refused(kind: BackendKind) {
    let env = start(kind).await;
    let fill =
        |s: &str, listing: Listing| s.replace("{b}", &env.b).replace("{m}", listing.marker());
    let mut attacks = Vec::new();
    for listing in Listing::ALL {
        for (what, params, code, fragment) in REFUSED {
            let params: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| (fill(k, listing), fill(v, listing)))
                .collect();
            let params: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            attacks.push(Attack::new(
                format!("{listing:?} of {what}: {params:?}"),
                signed(&env, listing, &params),
                code,
                fill(fragment, listing),
            ));
        }
        let count = if listing == Uploads {
            "max-uploads"
        } else {
            "max-keys"
        };
        for (what, value) in BAD_COUNTS {
            attacks.push(Attack::new(
                format!("{listing:?} with {what}"),
                signed(&env, listing, &[("prefix", "team-a/"), (count, value)]),
                "InvalidArgument",
                format!("invalid query: {count}: {value}"),
            ));
        }
    }
    refuse_all(&env.ctx, &Watched::buckets(&[&env.b]), attacks).await;
}

/// Listings let through: (what, the raw query parameters). Whatever each answers, it names
/// nothing outside `team-a/`, and the backend is asked only for a prefix inside it.
#[rustfmt::skip]
const LET_THROUGH: &[(&str, Params)] = &[
    ("the scope",                           &[("prefix", "team-a/")]),
    ("the scope, encoded",                  &[("prefix", "%74eam-a%2F")]),
    ("the scope, by delimiter /",           &[("prefix", "team-a/"), ("delimiter", "/")]),
    ("the scope, by a multi-byte delimiter", &[("prefix", "team-a/"), ("delimiter", "%C3%A9")]),
    ("the scope, by delimiter -",           &[("prefix", "team-a/"), ("delimiter", "-")]),
    ("the scope, url-encoded",              &[("prefix", "team-a/"), ("encoding-type", "url")]),
    ("a prefix climbing out with ..",       &[("prefix", "team-a/../team-a-secrets/")]),
    ("a prefix climbing out, encoded",      &[("prefix", "team-a%2F..%2Fteam-a-secrets%2F")]),
    ("starting before the scope",           &[("prefix", "team-a/"), ("{m}", "team-a-secrets/s.txt")]),
    ("starting after the scope",            &[("prefix", "team-a/"), ("{m}", "top.txt")]),
    ("starting at nothing",                 &[("prefix", "team-a/"), ("{m}", "")]),
    ("a continuation token outside",        &[("prefix", "team-a/"), ("continuation-token", "team-a-secrets%2Fs.txt")]),
    ("an upload id marker outside",         &[("prefix", "team-a/"), ("key-marker", "team-a-secrets/up.bin"), ("upload-id-marker", "x")]),
    ("no keys asked for",                   &[("prefix", "team-a/"), ("{n}", "0")]),
    ("one key asked for",                   &[("prefix", "team-a/"), ("{n}", "1")]),
    ("a negative count",                    &[("prefix", "team-a/"), ("{n}", "-1")]),
    ("a count past any page",               &[("prefix", "team-a/"), ("{n}", "2147483647")]),
];

async fn listings_let_through_show_only_the_scope(kind: BackendKind) {
    let env = start(kind).await;
    let addr = env.ctx.gateway.s3_addr;
    let mut failures = Vec::new();
    let mut shown = 0;
    for listing in Listing::ALL {
        let count = if listing == Uploads {
            "max-uploads"
        } else {
            "max-keys"
        };
        let fill = |s: &str| {
            s.replace("{b}", &env.b)
                .replace("{m}", listing.marker())
                .replace("{n}", count)
        };
        for (what, params) in LET_THROUGH {
            let params: Vec<(String, String)> =
                params.iter().map(|(k, v)| (fill(k), fill(v))).collect();
            let params: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let what = format!("{listing:?} of {what}: {params:?}");
            env.ctx.take_backend_requests();
            let answer = signed(&env, listing, &params).send(addr, b"").await;
            for f in env.ctx.take_backend_requests() {
                let prefix = query_value(&f.query, "prefix").unwrap_or_default();
                if !prefix.starts_with("team-a/") {
                    failures.push(format!("{what}: the backend was asked {f:?}"));
                }
            }
            let url_encoded = params.contains(&("encoding-type", "url"));
            let named = names(&answer, url_encoded);
            if let Some(outside) = named.iter().find(|n| !n.starts_with("team-a/")) {
                failures.push(format!(
                    "{what}: the answer names {outside:?}: {}",
                    answer.body
                ));
            }
            match (answer.status, answer.code()) {
                (200, _) => shown += named.len(),
                // Neither backend keeps versions; s3s-fs keeps no upload list.
                (501, Some("NotImplemented")) if listing == Versions => {}
                (501, Some("NotImplemented")) if listing == Uploads && kind == BackendKind::Fs => {}
                // A token or marker the backend did not make, or a count it will not take,
                // is the backend's to refuse (inside the scope, it names nothing).
                (400 | 404, Some(_)) => {}
                _ => failures.push(format!("{what}: {answer:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(shown > 20, "the listings showed only {shown} names");
    // What the scope holds is shown whole, encoded as asked.
    for encoding in [&[][..], &[("encoding-type", "url")][..]] {
        let mut params = vec![("prefix", "team-a/")];
        params.extend_from_slice(encoding);
        let answer = signed(&env, V2, &params).send(addr, b"").await;
        assert_eq!(
            names(&answer, !encoding.is_empty()),
            ["team-a/a b+c.txt", "team-a/sub/y.txt", "team-a/x.txt"],
            "{answer:?}"
        );
    }
}

/// The decoded value of a query parameter, as the backend reads it.
fn query_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Every key and common prefix a listing names (objects, versions, uploads), decoded when
/// the listing was asked for `encoding-type=url`.
fn names(answer: &Answer, url_encoded: bool) -> Vec<String> {
    let mut names = elements(&answer.body, "Key");
    for common in elements(&answer.body, "CommonPrefixes") {
        names.extend(elements(&common, "Prefix"));
    }
    if url_encoded {
        for name in &mut names {
            *name = form_urlencoded::parse(format!("k={name}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
        }
    }
    names
}

/// The text of every `<name>` element in `xml`, XML entities undone.
fn elements(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        found.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    found
}
