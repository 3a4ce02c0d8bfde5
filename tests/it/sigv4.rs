//! A SigV4 signer of the test's own, for requests no SDK will send on purpose: aws-chunked
//! bodies with wrong trailers or oversized chunks, and attacks on the front door's parse
//! (raw, already-encoded query pairs; presigned URLs; algorithm, service, region and expiry
//! knobs; parameters renamed or repeated after signing). It computes what s3s 0.14 verifies:
//! the canonical query from the decoded pairs, re-encoded and sorted.

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use sesame::clock::{Clock, SystemClock};
use sesame::grant::IssuedCredential;
use sha2::{Digest, Sha256};

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Signs `headers` (lowercase names; `host` included) for `method path` with an empty query,
/// adding `x-amz-date` and the security token; returns the full header list with
/// `authorization`.
pub fn sign(
    cred: &IssuedCredential,
    region: &str,
    method: &str,
    path: &str,
    headers: Vec<(String, String)>,
    payload_hash: &str,
) -> Vec<(String, String)> {
    let knobs = Knobs {
        region: region.into(),
        ..Knobs::new(cred)
    };
    knobs
        .sign_header(method, path, &[], headers, payload_hash)
        .headers
}

/// How to sign: the scope and algorithm written into the request, which an attack may
/// change. The signature itself is always what s3s computes for that scope.
#[derive(Clone)]
pub struct Knobs<'a> {
    pub cred: &'a IssuedCredential,
    /// As written in the `Authorization` header or `X-Amz-Algorithm`.
    pub algorithm: String,
    pub region: String,
    pub service: String,
    /// `X-Amz-Expires` of a presigned URL, in seconds.
    pub expires: u64,
}

/// A signed request, ready to send or to spoil further.
#[derive(Debug, Clone)]
pub struct Signed {
    pub method: String,
    pub path: String,
    /// Raw pairs, exactly as they go on the wire.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

impl Signed {
    /// `path?query` as it goes on the request line.
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}?{}", self.path, query.join("&"))
    }

    /// Writes the query parameter `from` as `to`: a different encoding of the same name
    /// leaves the signature valid, since s3s signs decoded names.
    pub fn rename(mut self, from: &str, to: &str) -> Self {
        let param = self.query.iter_mut().find(|(k, _)| k == from);
        param
            .unwrap_or_else(|| panic!("no query parameter {from}"))
            .0 = to.into();
        self
    }

    /// Adds a raw query pair after signing.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Rewrites part of a header after signing (`SignedHeaders=` in `authorization`, say).
    pub fn edit(mut self, name: &str, from: &str, to: &str) -> Self {
        let header = self.headers.iter_mut().find(|(k, _)| k == name);
        let header = header.unwrap_or_else(|| panic!("no header {name}"));
        assert!(header.1.contains(from), "{from:?} not in {}", header.1);
        header.1 = header.1.replacen(from, to, 1);
        self
    }

    /// Adds a header after signing: it is not part of the signature.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends it with `body` (and its `content-length`, which no signature covers here).
    pub async fn send(&self, addr: std::net::SocketAddr, body: &[u8]) -> Answer {
        let mut headers = self.headers.clone();
        if !body.is_empty() && !headers.iter().any(|(k, _)| k == "content-length") {
            headers.push(("content-length".into(), body.len().to_string()));
        }
        Answer::of(&send(addr, &self.method, &self.target(), &headers, body).await)
    }
}

impl<'a> Knobs<'a> {
    /// Signed as every SDK signs: for S3 in the test region, valid for 15 minutes.
    pub fn new(cred: &'a IssuedCredential) -> Self {
        Knobs {
            cred,
            algorithm: "AWS4-HMAC-SHA256".into(),
            region: crate::harness::REGION.into(),
            service: "s3".into(),
            expires: 900,
        }
    }

    /// Header auth: `headers` (lowercase, `host` included) and the raw `query` are signed;
    /// `x-amz-date`, `x-amz-content-sha256` and the session token are added.
    pub fn sign_header(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        mut headers: Vec<(String, String)>,
        payload_hash: &str,
    ) -> Signed {
        let (amz_date, scope) = self.scope();
        headers.push(("x-amz-date".into(), amz_date.clone()));
        headers.push(("x-amz-content-sha256".into(), payload_hash.into()));
        headers.push((
            "x-amz-security-token".into(),
            self.cred.session_token.expose().into(),
        ));
        headers.sort();
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let names: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
        let signature = self.signature(
            &amz_date,
            &canonical(method, path, &query, &headers, &names, payload_hash),
        );
        headers.push((
            "authorization".into(),
            format!(
                "{} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
                self.algorithm,
                self.cred.access_key_id,
                names.join(";")
            ),
        ));
        Signed {
            method: method.into(),
            path: path.into(),
            query,
            headers,
        }
    }

    /// A presigned URL (query auth) for `method path?query`, signing only `host`.
    pub fn presign(&self, method: &str, path: &str, query: &[(&str, &str)], host: &str) -> Signed {
        let (amz_date, scope) = self.scope();
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let credential = format!("{}/{scope}", self.cred.access_key_id);
        for (name, value) in [
            ("X-Amz-Algorithm", self.algorithm.as_str()),
            ("X-Amz-Credential", &credential),
            ("X-Amz-Date", &amz_date),
            ("X-Amz-Expires", &self.expires.to_string()),
            ("X-Amz-SignedHeaders", "host"),
            ("X-Amz-Security-Token", self.cred.session_token.expose()),
        ] {
            pairs.push((name.into(), encode(value)));
        }
        let headers = vec![("host".to_owned(), host.to_owned())];
        let canonical = canonical(
            method,
            path,
            &pairs,
            &headers,
            &["host".to_owned()],
            "UNSIGNED-PAYLOAD",
        );
        let signature = self.signature(&amz_date, &canonical);
        pairs.push(("X-Amz-Signature".into(), signature));
        Signed {
            method: method.into(),
            path: path.into(),
            query: pairs,
            headers,
        }
    }

    /// `x-amz-date` now, and the credential scope for it.
    fn scope(&self) -> (String, String) {
        let now = SystemClock.now();
        let amz_date = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let scope = format!(
            "{}/{}/{}/aws4_request",
            &amz_date[..8],
            self.region,
            self.service
        );
        (amz_date, scope)
    }

    /// What s3s computes: the string to sign always names AWS4-HMAC-SHA256, whatever the
    /// request says.
    fn signature(&self, amz_date: &str, canonical: &str) -> String {
        let date = &amz_date[..8];
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{}/{}/aws4_request\n{}",
            self.region,
            self.service,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut key = hmac(
            format!("AWS4{}", self.cred.secret_access_key.expose()).as_bytes(),
            date,
        );
        for part in [self.region.as_str(), self.service.as_str(), "aws4_request"] {
            key = hmac(&key, part);
        }
        hex::encode(hmac(&key, &to_sign))
    }
}

/// A SigV2 presigned URL (`AWSAccessKeyId`, `Expires`, `Signature`) as s3s verifies it, with
/// the session token as a header. Sesame must refuse it, however its names are written.
pub fn presign_v2(
    cred: &IssuedCredential,
    method: &str,
    path: &str,
    host: &str,
    expires: i64,
) -> Signed {
    use base64::Engine as _;
    let token = cred.session_token.expose();
    let to_sign = format!("{method}\n\n\n{expires}\nx-amz-security-token:{token}\n{path}");
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(cred.secret_access_key.expose().as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    Signed {
        method: method.into(),
        path: path.into(),
        query: vec![
            ("AWSAccessKeyId".into(), cred.access_key_id.clone()),
            ("Expires".into(), expires.to_string()),
            ("Signature".into(), encode(&signature)),
        ],
        headers: vec![
            ("host".into(), host.into()),
            ("x-amz-security-token".into(), token.into()),
        ],
    }
}

/// The canonical request as s3s builds it: the query decoded as s3s decodes it, each name and
/// value re-encoded, sorted by name (ties keep their order, X-Amz-Signature left out); the
/// signed headers that are present, values trimmed.
fn canonical(
    method: &str,
    path: &str,
    raw_query: &[(String, String)],
    headers: &[(String, String)],
    signed: &[String],
    payload_hash: &str,
) -> String {
    let mut query: Vec<(String, String)> = raw_query
        .iter()
        .flat_map(|(k, v)| {
            form_urlencoded::parse(format!("{k}={v}").as_bytes())
                .into_owned()
                .collect::<Vec<_>>()
        })
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (encode(&k), encode(&v)))
        .collect();
    query.sort_by(|a, b| a.0.cmp(&b.0));
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut canonical_headers = String::new();
    let mut present = Vec::new();
    for name in signed {
        let values: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .collect();
        if !values.is_empty() {
            let _ = writeln!(canonical_headers, "{name}:{}", values.join(","));
            present.push(name.as_str());
        }
    }
    format!(
        "{method}\n{path}\n{}\n{canonical_headers}\n{}\n{payload_hash}",
        query.join("&"),
        present.join(";")
    )
}

/// SigV4's URI encoding: unreserved characters as they are, every other byte as `%XX`.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An HTTP answer, split.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    fn of(raw: &str) -> Answer {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Answer {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The S3 error message in the body, XML entities undone.
    pub fn message(&self) -> String {
        let Some(start) = self.body.find("<Message>") else {
            return String::new();
        };
        let rest = &self.body[start + "<Message>".len()..];
        let end = rest.find("</Message>").unwrap_or(rest.len());
        rest[..end]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    /// The S3 error code in the body, if any.
    pub fn code(&self) -> Option<&str> {
        let start = self.body.find("<Code>")? + "<Code>".len();
        let end = self.body[start..].find("</Code>")?;
        Some(&self.body[start..start + end])
    }
}

/// Sends a raw HTTP/1.1 request and returns the status line and body of the answer.
pub async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer and close before taking the whole body.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The SigV4 signing key of `cred` for `date` (`YYYYMMDD`) in `region`, for S3.
fn signing_key(cred: &IssuedCredential, date: &str, region: &str) -> Vec<u8> {
    let mut key = hmac(
        format!("AWS4{}", cred.secret_access_key.expose()).as_bytes(),
        date,
    );
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    key
}

/// Like [`sign`], for `method path?query` where `query` is already canonical (names sorted,
/// names and values encoded), as an `UploadPart` target is.
pub fn sign_with_query(
    cred: &IssuedCredential,
    region: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: Vec<(String, String)>,
    payload_hash: &str,
) -> Vec<(String, String)> {
    let pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let knobs = Knobs {
        region: region.into(),
        ..Knobs::new(cred)
    };
    knobs
        .sign_header(method, path, &pairs, headers, payload_hash)
        .headers
}

/// The chunk signatures of an aws-chunked body (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`) whose
/// request was signed into `headers`: one per chunk of `chunks`, each chained to the one
/// before it from the request's own (seed) signature. Put the final empty chunk in `chunks`.
pub fn chunk_signatures(
    cred: &IssuedCredential,
    region: &str,
    headers: &[(String, String)],
    chunks: &[&[u8]],
) -> Vec<String> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or_else(|| panic!("no {name} header"), |(_, v)| v.clone())
    };
    let amz_date = header("x-amz-date");
    let date = &amz_date[..8];
    let authorization = header("authorization");
    let seed = authorization
        .rsplit("Signature=")
        .next()
        .expect("a signature")
        .to_owned();
    let key = signing_key(cred, date, region);
    let empty = hex::encode(Sha256::digest(b""));
    let mut previous = seed;
    chunks
        .iter()
        .map(|chunk| {
            let to_sign = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{date}/{region}/s3/aws4_request\n{previous}\n{empty}\n{}",
                hex::encode(Sha256::digest(chunk))
            );
            previous = hex::encode(hmac(&key, &to_sign));
            previous.clone()
        })
        .collect()
}
