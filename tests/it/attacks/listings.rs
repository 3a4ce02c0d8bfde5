//! Listings (issue 8): `ListObjects`, `ListObjectsV2`, `ListObjectVersions` and
//! `ListMultipartUploads` under a grant that lists `team-a/`, with no prefix, a prefix
//! outside the scope or only beside it, encoded, doubly encoded, with a leading slash, sent
//! twice; with delimiters, `encoding-type=url`, markers, `start-after` and continuation
//! tokens pointing outside the scope, and `max-keys` abuse. A listing whose prefix leaves the
//! scope is refused before the backend; one let through shows nothing outside the scope,
//! and the relay sees the backend asked only for a prefix inside it. A property test does the
//! same over generated prefixes, markers and delimiters in every encoding.

use proptest::strategy::Strategy;
use sesame::model::Action::{List, Read, Write};

use super::keys::{raw_key, samples};
use super::{Attack, Granted, Tally, Watched, refuse_all};
use crate::harness::BackendKind;
use crate::relay::Forwarded;
use crate::sigv4::{Answer, Knobs, Signed};
use Listing::{Uploads, V1, V2, Versions};

crate::on_every_backend!(
    listings_outside_the_scope_are_refused,
    listings_let_through_show_only_the_scope,
    no_encoding_of_a_list_prefix_reaches_outside_the_grant,
);

/// Alice's scope in the bucket [`start`] fills.
const SCOPE: &str = "team-a/";

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
        env.ctx
            .sdk(who)
            .create_multipart_upload()
            .bucket(&env.b)
            .key(key)
            .send()
            .await
            .expect("an upload starts");
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
                // Neither backend keeps versions.
                (501, Some("NotImplemented")) if listing == Versions => {}
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

/// Generated parameters of a listing, raw as sent.
#[derive(Debug)]
struct Generated {
    prefix: Option<String>,
    marker: Option<String>,
    delimiter: Option<&'static str>,
    url_encoded: bool,
}

impl Generated {
    /// The raw query parameters of `listing` (its marker named as it names it).
    fn params(&self, listing: Listing) -> Vec<(&str, &str)> {
        let mut params = Vec::new();
        if let Some(prefix) = &self.prefix {
            params.push(("prefix", prefix.as_str()));
        }
        if let Some(marker) = &self.marker {
            params.push((listing.marker(), marker.as_str()));
        }
        if let Some(delimiter) = self.delimiter {
            params.push(("delimiter", delimiter));
        }
        if self.url_encoded {
            params.push(("encoding-type", "url"));
        }
        params
    }
}

/// Delimiters an attacker would group by: the slash (encoded or not), a piece of the scope's
/// name, a multi-byte one, `+` (a space), none at all.
const DELIMITERS: &[&str] = &["/", "%2F", "-", "a", "%C3%A9", "+", "%2B", "..", ""];

/// The first `units` characters of a raw value, an escape `%XX` counting as one.
fn cut(raw: &str, units: usize) -> &str {
    let mut end = 0;
    for _ in 0..units {
        let Some(c) = raw[end..].chars().next() else {
            break;
        };
        end += if c == '%' {
            3.min(raw.len() - end)
        } else {
            c.len_utf8()
        };
    }
    &raw[..end]
}

/// Generated listings: a prefix as `keys` generates keys, half of them cut short (so some
/// name the scope's objects, some stop before its boundary), some doubly encoded, some with
/// `+` for a space, a few absent or empty; perhaps a marker the same way, a delimiter and
/// `encoding-type=url`.
fn generated(count: usize) -> Vec<Generated> {
    let prefix = (
        raw_key(),
        proptest::option::weighted(0.5, 5..12usize),
        proptest::bool::weighted(0.15),
        proptest::bool::weighted(0.3),
        0..10u8,
    )
        .prop_map(|(key, units, double, plus, form)| match form {
            0 => None,
            1 => Some(String::new()),
            _ => {
                let key = units.map_or(key.as_str(), |n| cut(&key, n));
                let key = if double {
                    key.replace('%', "%25")
                } else {
                    key.to_owned()
                };
                Some(if plus { key.replace("%20", "+") } else { key })
            }
        });
    let strategy = (
        prefix,
        proptest::option::weighted(0.4, raw_key()),
        proptest::option::weighted(0.4, proptest::sample::select(DELIMITERS)),
        proptest::bool::weighted(0.25),
    )
        .prop_map(|(prefix, marker, delimiter, url_encoded)| Generated {
            prefix,
            marker,
            delimiter,
            url_encoded,
        });
    samples(&strategy, count)
}

/// More objects, named after the pieces generated keys are made of, so that generated
/// prefixes find some inside the scope and would find some outside it.
#[rustfmt::skip]
const BESIDE_THE_PIECES: &[&str] = &[
    "team-a/team-a/x.txt", "team-a/team-a-secrets/x.txt", "team-a/é/x.txt", "team-a/+/x.txt",
    "team-a/~/x.txt", "team-a/src.bin", "team-a/%/x.txt", "team-a./x.txt",
    "team-a-secrets/team-a/x.txt", "team-a-secrets/é",
];

/// What a forwarded request asked the backend to list, and whether that lies inside the
/// scope: a GET of the bucket itself with a prefix (decoded as the backend reads it) that
/// starts with the scope.
fn listed(env: &Granted, forwarded: &Forwarded) -> (String, bool) {
    let path = percent_encoding::percent_decode_str(&forwarded.path).decode_utf8_lossy();
    let prefix = query_value(&forwarded.query, "prefix");
    let inside = forwarded.method == "GET"
        && path.trim_end_matches('/') == format!("/{}", env.b)
        && prefix.as_deref().is_some_and(|p| p.starts_with(SCOPE));
    let what = format!("{} {path} with prefix {prefix:?}", forwarded.method);
    (what, inside)
}

/// Generated `ListObjects` and `ListObjectsV2` requests: one is let through only if the
/// backend is asked for a prefix inside the scope (the very prefix the request decodes to),
/// one refused never reaches the backend, one whose prefix decodes to one inside the scope
/// is let through, and no answer names a key outside the scope.
async fn no_encoding_of_a_list_prefix_reaches_outside_the_grant(kind: BackendKind) {
    let env = start(kind).await;
    for key in BESIDE_THE_PIECES {
        env.ctx.put(&env.b, key, b"p").await;
    }
    let addr = env.ctx.gateway.s3_addr;
    let mut tally = Tally::default();
    let mut shown = 0;
    for generated in generated(60) {
        for listing in [V1, V2] {
            let params = generated.params(listing);
            let raw: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let meant = query_value(&raw.join("&"), "prefix");
            let what = format!("{listing:?} ?{}", raw.join("&"));
            env.ctx.take_backend_requests();
            let answer = signed(&env, listing, &params).send(addr, b"").await;
            let forwarded = env.ctx.take_backend_requests();
            let asked: Vec<(String, bool)> = forwarded.iter().map(|f| listed(&env, f)).collect();
            let meant_inside = meant.as_deref().is_some_and(|p| p.starts_with(SCOPE));
            tally.add(&what, &answer, &forwarded, &asked, meant_inside);
            for f in &forwarded {
                let backend = query_value(&f.query, "prefix");
                if backend != meant {
                    let how = format!("decided on prefix {meant:?}, the backend got {backend:?}");
                    tally.broke(&what, &how);
                }
            }
            let named = names(&answer, generated.url_encoded);
            if let Some(outside) = named.iter().find(|n| !n.starts_with(SCOPE)) {
                tally.broke(
                    &what,
                    &format!("the answer names {outside:?}: {}", answer.body),
                );
            }
            shown += named.len();
        }
    }
    tally.assert_held();
    assert!(shown > 20, "the listings showed only {shown} names");
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
