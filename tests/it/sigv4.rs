//! A minimal SigV4 header signer, for requests no SDK will send on purpose: aws-chunked bodies
//! with wrong trailers or oversized chunks.

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
    mut headers: Vec<(String, String)>,
    payload_hash: &str,
) -> Vec<(String, String)> {
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
    let date = &amz_date[..8];
    headers.push(("x-amz-date".into(), amz_date.clone()));
    headers.push(("x-amz-content-sha256".into(), payload_hash.into()));
    headers.push((
        "x-amz-security-token".into(),
        cred.session_token.expose().into(),
    ));
    headers.sort();
    let mut canonical_headers = String::new();
    for (k, v) in &headers {
        let _ = writeln!(canonical_headers, "{k}:{}", v.trim());
    }
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical = format!("{method}\n{path}\n\n{canonical_headers}\n{signed}\n{payload_hash}");
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", cred.secret_access_key.expose()).as_bytes(),
        date,
    );
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex::encode(hmac(&key, &to_sign));
    headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            cred.access_key_id
        ),
    ));
    headers
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
    mut headers: Vec<(String, String)>,
    payload_hash: &str,
) -> Vec<(String, String)> {
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
    let date = &amz_date[..8];
    headers.push(("x-amz-date".into(), amz_date.clone()));
    headers.push(("x-amz-content-sha256".into(), payload_hash.into()));
    headers.push((
        "x-amz-security-token".into(),
        cred.session_token.expose().into(),
    ));
    headers.sort();
    let mut canonical_headers = String::new();
    for (k, v) in &headers {
        let _ = writeln!(canonical_headers, "{k}:{}", v.trim());
    }
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical =
        format!("{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{payload_hash}");
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let signature = hex::encode(hmac(&signing_key(cred, date, region), &to_sign));
    headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            cred.access_key_id
        ),
    ));
    headers
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
