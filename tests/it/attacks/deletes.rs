//! Delete batches (issue 8): `DeleteObjects` (`POST /bucket?delete`) under a grant that
//! deletes in `team-a/`, with one key outside the scope among many, keys climbing out with
//! `..` (plain or as XML character references), a leading slash, malformed XML, more than
//! the 1000 keys S3 takes, a missing, malformed or wrong `Content-MD5` or checksum. Each
//! refused batch deletes nothing, gets the S3 error S3 gives, is in the trail and never
//! reaches the backend; batches let through (duplicates, percent signs that are part of the
//! key) delete exactly their keys.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use s3s::crypto::{Checksum as _, Crc32, Md5};
use sesame::model::Action::{Delete, List, Read};

use super::{Attack, Granted, Watched, objects, refuse_all};
use crate::harness::BackendKind;
use crate::sigv4::{Knobs, Signed};
use Digest::{Crc32Of, Md5Of, Md5Text, OwnCrc32, OwnMd5, Undeclared};

crate::on_every_backend!(
    delete_batches_reaching_outside_are_refused_whole,
    delete_batches_inside_delete_exactly_their_keys,
);

/// Keys in and around alice's scope, each holding its own name.
const KEYS: &[&str] = &[
    "team-a/k0",
    "team-a/k1",
    "team-a/k2",
    "team-a/k3",
    "team-a/a&b<c>",
    "team-a/%2E%2E/x",
    "team-a-secrets/s.txt",
    "team-a.txt",
];

/// What digest of its body a batch declares.
#[derive(Debug, Clone, Copy)]
enum Digest {
    /// `Content-MD5` of the batch's own body.
    OwnMd5,
    /// `x-amz-checksum-crc32` of the batch's own body.
    OwnCrc32,
    /// `Content-MD5` of another body.
    Md5Of(&'static str),
    /// `Content-MD5: <this text>`, as sent.
    Md5Text(&'static str),
    /// `x-amz-checksum-crc32` of another body.
    Crc32Of(&'static str),
    Undeclared,
}

/// The batch body deleting `keys` (XML-escaped), quietly or not.
fn batch(keys: &[&str], quiet: bool) -> String {
    let mut xml = String::from("<Delete>");
    if quiet {
        xml.push_str("<Quiet>true</Quiet>");
    }
    for key in keys {
        let key = key
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let _ = write!(xml, "<Object><Key>{key}</Key></Object>");
    }
    xml.push_str("</Delete>");
    xml
}

async fn start(kind: BackendKind) -> Granted {
    let objects: Vec<(&str, &[u8])> = KEYS.iter().map(|k| (*k, k.as_bytes())).collect();
    Granted::start(kind, &objects, "team-a/", &[Delete, List, Read]).await
}

/// `POST /b?delete` carrying `body`, declaring `digest`, every header signed.
fn signed(env: &Granted, body: &str, digest: Digest) -> Signed {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let md5 = |of: &str| ("content-md5".to_owned(), b64(&Md5::checksum(of.as_bytes())));
    let crc32 = |of: &str| {
        let sum = Crc32::checksum_u32(of.as_bytes()).to_be_bytes();
        ("x-amz-checksum-crc32".to_owned(), b64(&sum))
    };
    let declared = match digest {
        OwnMd5 => Some(md5(body)),
        OwnCrc32 => Some(crc32(body)),
        Md5Of(of) => Some(md5(of)),
        Crc32Of(of) => Some(crc32(of)),
        Md5Text(text) => Some(("content-md5".to_owned(), text.to_owned())),
        Undeclared => None,
    };
    let mut headers = vec![
        ("host".to_owned(), env.host()),
        ("content-type".to_owned(), "application/xml".to_owned()),
        ("content-length".to_owned(), body.len().to_string()),
    ];
    headers.extend(declared);
    let path = format!("/{}", env.b);
    Knobs::new(&env.cred).sign_header(
        "POST",
        &path,
        &[("delete", "")],
        headers,
        "UNSIGNED-PAYLOAD",
    )
}

const OUTSIDE: &str = "does not cover s3://{b}/team-a-secrets/s.txt for delete";
const DOT_SEGMENT: &str = "has a '.' or '..' segment, which Sesame refuses";
const MALFORMED: &str = "The XML you provided was not well-formed";

/// Batches refused whole: (what, the body, the digest it declares, the code, a fragment of
/// the message). A body of `{1001}` names 1001 keys inside the scope, quietly.
#[rustfmt::skip]
const REFUSED: &[(&str, &str, Digest, &str, &str)] = &[
    ("one key outside among many",          "<Delete><Object><Key>team-a/k0</Key></Object><Object><Key>team-a/k1</Key></Object><Object><Key>team-a-secrets/s.txt</Key></Object><Object><Key>team-a/k2</Key></Object></Delete>", OwnMd5,    "AccessDenied", OUTSIDE),
    ("the key outside first",               "<Delete><Object><Key>team-a-secrets/s.txt</Key></Object><Object><Key>team-a/k0</Key></Object></Delete>", OwnMd5,    "AccessDenied", OUTSIDE),
    ("quietly",                             "<Delete><Quiet>true</Quiet><Object><Key>team-a/k0</Key></Object><Object><Key>team-a-secrets/s.txt</Key></Object></Delete>", OwnMd5,    "AccessDenied", OUTSIDE),
    ("with a version id",                   "<Delete><Object><Key>team-a-secrets/s.txt</Key><VersionId>null</VersionId></Object></Delete>", OwnMd5,    "AccessDenied", OUTSIDE),
    ("a key climbing out with ..",          "<Delete><Object><Key>team-a/k0</Key></Object><Object><Key>team-a/../team-a-secrets/s.txt</Key></Object></Delete>", OwnMd5,    "AccessDenied", DOT_SEGMENT),
    ("dots as character references",        "<Delete><Object><Key>team-a/&#46;&#46;/team-a-secrets/s.txt</Key></Object></Delete>", OwnMd5,    "AccessDenied", DOT_SEGMENT),
    // s3s reads no CDATA: the key is empty to it, and refused as no key at all.
    ("a key in a CDATA section",            "<Delete><Object><Key><![CDATA[team-a-secrets/s.txt]]></Key></Object></Delete>", OwnMd5,    "InvalidArgument", "keys made only of whitespace are not supported through Sesame"),
    ("a leading slash",                     "<Delete><Object><Key>/team-a/k0</Key></Object></Delete>", OwnMd5,    "AccessDenied", "does not cover s3://{b}//team-a/k0 for delete"),
    ("the key beside the scope",            "<Delete><Object><Key>team-a.txt</Key></Object></Delete>", OwnMd5,    "AccessDenied", "does not cover s3://{b}/team-a.txt for delete"),
    ("XML cut short",                       "<Delete><Object><Key>team-a/k0</Key></Object>", OwnMd5,    "MalformedXML", MALFORMED),
    ("no XML at all",                       "team-a/k0", OwnMd5,    "MalformedXML", MALFORMED),
    ("no objects",                          "<Delete></Delete>", OwnMd5,    "MalformedXML", MALFORMED),
    ("more keys than S3 takes",             "{1001}", OwnMd5,    "MalformedXML", "at most 1000 keys"),
    ("no digest at all",                    "<Delete><Object><Key>team-a/k0</Key></Object></Delete>", Undeclared, "InvalidRequest", "Missing required header for this request: Content-MD5"),
    ("a Content-MD5 that is no digest",     "<Delete><Object><Key>team-a/k0</Key></Object></Delete>", Md5Text("not-base64"), "InvalidDigest", "is not the base64 of a 16-byte md5 digest"),
    ("another batch's Content-MD5",         "<Delete><Object><Key>team-a/k0</Key></Object><Object><Key>team-a-secrets/s.txt</Key></Object></Delete>", Md5Of("<Delete><Object><Key>team-a/k0</Key></Object></Delete>"), "BadDigest", "does not match"),
    ("another batch's CRC32",               "<Delete><Object><Key>team-a/k0</Key></Object></Delete>", Crc32Of("<Delete><Object><Key>team-a/k1</Key></Object></Delete>"), "BadDigest", "x-amz-checksum-crc32"),
];

async fn delete_batches_reaching_outside_are_refused_whole(kind: BackendKind) {
    let env = start(kind).await;
    let huge: Vec<String> = (0..1001).map(|i| format!("team-a/n{i}")).collect();
    let huge = batch(&huge.iter().map(String::as_str).collect::<Vec<_>>(), true);
    let attacks = REFUSED.iter().map(|(what, body, digest, code, fragment)| {
        let body = if *body == "{1001}" {
            huge.as_str()
        } else {
            body
        };
        Attack {
            what: format!("{what}: {}", &body[..body.len().min(120)]),
            request: signed(&env, body, *digest),
            body: body.as_bytes().to_vec(),
            code,
            fragment: fragment.replace("{b}", &env.b),
        }
    });
    refuse_all(&env.ctx, &Watched::buckets(&[&env.b]), attacks).await;
}

/// Batches let through: (what, the keys, how they are declared). Each deletes exactly the
/// keys it names that exist; everything else stays.
#[rustfmt::skip]
const LET_THROUGH: &[(&str, &[&str], bool)] = &[
    ("two keys, with Content-MD5",          &["team-a/k0", "team-a/k1"],        true),
    ("a key twice, with a CRC32",           &["team-a/k2", "team-a/k2"],        false),
    ("XML-escaped characters",              &["team-a/a&b<c>"],                 true),
    ("percent signs that are the key's",    &["team-a/%2E%2E/x"],               true),
    ("percent signs meaning .. elsewhere",  &["team-a/%2E%2E/team-a-secrets/s.txt"], true),
    ("keys that are not there",             &["team-a/none", "team-a/nodir/x"],    false),
];

async fn delete_batches_inside_delete_exactly_their_keys(kind: BackendKind) {
    let env = start(kind).await;
    let addr = env.ctx.gateway.s3_addr;
    let mut expected: BTreeMap<String, Vec<u8>> = objects(&env.ctx, &env.b).await;
    for (what, keys, md5) in LET_THROUGH {
        let body = batch(keys, false);
        let digest = if *md5 { OwnMd5 } else { OwnCrc32 };
        env.ctx.take_backend_requests();
        let answer = signed(&env, &body, digest)
            .send(addr, body.as_bytes())
            .await;
        assert_eq!(answer.status, 200, "{what}: {answer:?}");
        assert!(!answer.body.contains("<Error>"), "{what}: {}", answer.body);
        let forwarded = env.ctx.take_backend_requests();
        assert!(
            forwarded
                .iter()
                .all(|f| f.method == "POST" && f.query.contains("delete")),
            "{what}: {forwarded:?}"
        );
        for key in *keys {
            expected.remove(*key);
        }
        assert_eq!(
            objects(&env.ctx, &env.b).await,
            expected,
            "{what} deleted other keys"
        );
    }
    assert_eq!(
        env.ctx
            .backend_object(&env.b, "team-a-secrets/s.txt")
            .await
            .as_deref(),
        Some(b"team-a-secrets/s.txt".as_slice())
    );
}
