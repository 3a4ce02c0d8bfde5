//! The real object store behind the gateway, reached with aws-sdk-s3 and the gateway's own
//! credentials, which never leave this process. A directory backend is an s3s-fs server
//! started in-process on a loopback port with a random key pair, so both kinds of backend
//! go through the same client and the same code path.
//!
//! An https:// backend's certificate is always verified: against the system's roots, or
//! against the CA bundle given (`--backend-ca`) in their place. At start a TLS handshake
//! with the backend is tried; one that fails stops the start with an error naming the
//! backend and the reason (a backend that does not answer yet is only a warning, as it may
//! come up later).

use std::net::SocketAddr;
use std::path::Path;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use rand::RngCore;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use crate::config::Backend;

/// Connects to the configured backend, starting the directory server when needed.
pub async fn connect(backend: &Backend) -> std::io::Result<aws_sdk_s3::Client> {
    match backend {
        Backend::Directory(dir) => {
            let (addr, access_key, secret) = start_directory_server(dir).await?;
            Ok(client(
                &format!("http://{addr}"),
                crate::config::DEFAULT_REGION,
                true,
                Some((access_key, secret)),
            )
            .await)
        }
        Backend::Endpoint {
            url,
            region,
            path_style,
            credentials,
            ca,
        } => {
            let credentials = credentials
                .as_ref()
                .map(|(id, secret)| (id.clone(), secret.expose().to_owned()));
            let trust = Trust::of(url, ca.as_deref())?;
            if let Trust::Verified { roots, .. } = &trust {
                probe(url, roots.clone(), ca.as_deref()).await?;
            }
            Ok(build(url, region, *path_style, credentials, &trust).await)
        }
    }
}

/// How the backend's certificate is verified.
enum Trust {
    /// An http:// backend: no certificate.
    Plain,
    /// The CA bundle's certificates (PEM, checked), or the system's roots.
    Verified {
        roots: rustls::RootCertStore,
        pem: Option<Vec<u8>>,
    },
}

impl Trust {
    fn of(url: &str, ca: Option<&Path>) -> std::io::Result<Trust> {
        if !url.starts_with("https://") {
            if !loopback_host(url) {
                tracing::warn!(
                    backend = url,
                    "the backend is reached over plain HTTP, off loopback: objects and the backend's requests cross the network in clear; use an https:// backend"
                );
            }
            return Ok(Trust::Plain);
        }
        let invalid =
            |e: crate::tls::TlsError| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.0);
        let roots = crate::tls::roots(ca).map_err(invalid)?;
        let pem = ca.map(std::fs::read).transpose()?;
        Ok(Trust::Verified { roots, pem })
    }
}

/// Whether a URL's host is a loopback address (or `localhost`).
fn loopback_host(url: &str) -> bool {
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        return false;
    };
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// How long the start-up handshake with the backend may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One TLS handshake with the backend, verified as the client will verify it. A failed
/// handshake is an error naming the backend and the reason; a backend that cannot be
/// reached is a warning.
async fn probe(url: &str, roots: rustls::RootCertStore, ca: Option<&Path>) -> std::io::Result<()> {
    let refused = |why: String| {
        let trusted = ca.map_or_else(
            || "the system's roots (give its CA with --backend-ca FILE)".to_owned(),
            |ca| format!("the CA bundle {}", ca.display()),
        );
        std::io::Error::other(format!(
            "backend {url}: the TLS handshake failed: {why}; its certificate is verified against {trusted}"
        ))
    };
    let uri: hyper::Uri = url.parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("backend {url}: {e}"),
        )
    })?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
        refused(format!(
            "{host:?} is not a name a certificate can have: {e}"
        ))
    })?;
    let config = crate::tls::client_config(roots, None).map_err(|e| refused(e.0))?;
    let attempt = async {
        let tcp = match tokio::net::TcpStream::connect((host.as_str(), port)).await {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::warn!(backend = url, error = %e, "the backend cannot be reached yet; its certificate is checked on first use");
                return Ok(());
            }
        };
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map(drop)
            .map_err(|e| refused(e.to_string()))
    };
    if let Ok(done) = tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        done
    } else {
        tracing::warn!(
            backend = url,
            "the backend did not finish a TLS handshake within 10s; its certificate is checked on first use"
        );
        Ok(())
    }
}

/// An HTTPS client for the AWS SDK that trusts only the CA certificates in `pem` (checked
/// PEM: the SDK panics on a malformed one).
#[must_use]
pub fn http_client_trusting(pem: &[u8]) -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let store = tls::TrustStore::empty().with_pem_certificate(pem.to_vec());
    let context = tls::TlsContext::builder()
        .with_trust_store(store)
        .build()
        .expect("a TLS context from a trust store builds");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https()
}

/// An S3 client tuned for relaying: checksums only where the API requires them (the client's
/// own checksum headers are forwarded as they came), and no stalled-stream cut-off, because
/// pauses come from the user's client and are not the backend's fault. An https:// URL is
/// verified against the system's roots.
pub async fn client(
    url: &str,
    region: &str,
    path_style: bool,
    credentials: Option<(String, String)>,
) -> aws_sdk_s3::Client {
    build(url, region, path_style, credentials, &Trust::Plain).await
}

async fn build(
    url: &str,
    region: &str,
    path_style: bool,
    credentials: Option<(String, String)>,
    trust: &Trust,
) -> aws_sdk_s3::Client {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_owned()));
    if let Some((id, secret)) = credentials {
        loader =
            loader.credentials_provider(Credentials::new(id, secret, None, None, "sesame-backend"));
    }
    if let Trust::Verified { pem: Some(pem), .. } = trust {
        loader = loader.http_client(http_client_trusting(pem));
    }
    let shared = loader.load().await;
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .endpoint_url(url)
        .force_path_style(path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Serves `dir` with s3s-fs, through the wrapper that makes it answer as S3 does, on a free
/// loopback port; returns its address and key pair.
pub async fn start_directory_server(dir: &Path) -> std::io::Result<(SocketAddr, String, String)> {
    std::fs::create_dir_all(dir)?;
    let fs = super::directory::Directory::new(dir)?;
    let access_key = format!("embedded-{}", random_hex(8));
    let secret = random_hex(20);
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(access_key.clone(), secret.clone()));
    let service = builder.build();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(super::serve_plain(listener, service));
    Ok((addr, access_key, secret))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// What a client hears when the backend refused or failed a request it was sent. The code
/// and status stay (`NoSuchKey`, `PreconditionFailed`, a 304 with its validators: S3
/// semantics the client acts on), in Sesame's own words; the backend's message and request
/// id, which can name its hosts, versions and internals, go to the log only. A backend that
/// could not be reached at all is `ServiceUnavailable`.
#[must_use]
pub fn client_error(backend: s3s::S3Error) -> s3s::S3Error {
    use s3s::{S3Error, S3ErrorCode};
    let status = backend.status_code();
    tracing::info!(
        code = backend.code().as_str(),
        status = ?status,
        message = backend.message(),
        backend_request_id = backend.request_id(),
        source = ?backend.source(),
        "the backend refused or failed a request"
    );
    // The backend client's error is a "service error" when the backend answered (with or
    // without a message: a 304 has none); anything else (a dispatch failure, a timeout, a
    // response it could not read) means no S3 answer came back at all.
    let answered = backend.message().is_some()
        || backend
            .source()
            .is_some_and(|e| e.to_string().starts_with("service error"));
    if !answered {
        let mut answer = S3Error::with_message(
            S3ErrorCode::ServiceUnavailable,
            "the backend could not be reached; try again (the gateway's log has the detail)",
        );
        answer.set_source(Box::new(backend));
        return answer;
    }
    let status = status.unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let code = backend.code().clone();
    let message = if code == S3ErrorCode::NotImplemented {
        "the backend does not implement this operation".to_owned()
    } else if status.is_server_error() {
        format!(
            "the backend failed this request ({}); try again (the gateway's log has the detail)",
            code.as_str()
        )
    } else {
        format!("the backend answered {}: {}", code.as_str(), meaning(&code))
    };
    let mut answer = S3Error::with_message(code, message);
    answer.set_status_code(status);
    if let Some(headers) = backend.headers() {
        answer.set_headers(headers.clone());
    }
    // Kept as the source, for the log only.
    answer.set_source(Box::new(backend));
    answer
}

/// Headers a 304 Not Modified must carry (RFC 9110 §15.4.5). A backend's 304 becomes an
/// error without headers (the proxy's, or [`sdk_error`]'s); they are copied back from the
/// backend's response, which the error keeps as its source.
pub fn with_validator_headers<E>(mut err: s3s::S3Error) -> s3s::S3Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    if err.status_code() != Some(hyper::StatusCode::NOT_MODIFIED) {
        return err;
    }
    let Some(sdk) = err.source().and_then(|s| s.downcast_ref::<SdkError<E>>()) else {
        return err;
    };
    let Some(raw) = sdk.raw_response() else {
        return err;
    };
    let mut headers = hyper::HeaderMap::new();
    for name in ["etag", "last-modified", "cache-control", "expires", "vary"] {
        if let Some(value) = raw
            .headers()
            .get(name)
            .and_then(|v| hyper::header::HeaderValue::from_str(v).ok())
        {
            headers.insert(name, value);
        }
    }
    err.set_headers(headers);
    err
}

/// An error of the backend client.
type SdkError<E> = aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>;

/// What a client hears when the backend refused or failed a request Sesame sent with its own
/// client (a share link's download): the error read as `s3s_aws::Proxy` reads the ones of
/// the requests it forwards (the backend's code, message and status, the client's error as
/// the source), a 304's validators put back, then told as [`client_error`] tells them.
pub fn sdk_error<E>(e: SdkError<E>) -> s3s::S3Error
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use s3s::{S3Error, S3ErrorCode};
    let mut err = S3Error::new(S3ErrorCode::InternalError);
    if let aws_sdk_s3::error::SdkError::ServiceError(service) = &e {
        let meta = service.err();
        if let Some(code) = meta
            .code()
            .and_then(|c| S3ErrorCode::from_bytes(c.as_bytes()))
        {
            err.set_code(code);
        }
        if let Some(message) = meta.message() {
            err.set_message(message.to_owned());
        }
        if let Ok(status) = hyper::StatusCode::from_u16(service.raw().status().as_u16()) {
            err.set_status_code(status);
        }
    }
    err.set_source(Box::new(e));
    client_error(with_validator_headers::<E>(err))
}

/// A few words on what a backend's refusal means; S3's codes are an open set, so anything
/// not named here gets a general phrase.
fn meaning(code: &s3s::S3ErrorCode) -> &'static str {
    use s3s::S3ErrorCode as C;
    match code {
        C::NoSuchKey => "no object has this key",
        C::NoSuchBucket => "the bucket does not exist",
        C::NoSuchUpload => "the upload does not exist (it was completed or aborted)",
        C::PreconditionFailed => {
            "a condition of the request (If-Match, If-Unmodified-Since) does not hold"
        }
        C::NotModified => "the object has not changed",
        C::InvalidRange => "the range does not fit the object",
        C::InvalidPart | C::InvalidPartOrder => "the parts listed do not match the uploaded parts",
        C::EntityTooSmall => "a part other than the last is smaller than the backend allows",
        C::EntityTooLarge => "the object is larger than the backend allows",
        C::BadDigest | C::InvalidDigest => "a digest sent with the request does not match",
        C::AccessDenied => "the backend's own permissions refused it (ask the operator)",
        // The embedded directory backend (and MinIO on a filesystem) cannot hold an object
        // and a folder of one name.
        C::Custom(name) if &**name == "XMinioParentIsObject" => {
            "a prefix of this key is an object, and a directory cannot also hold objects under it"
        }
        C::Custom(name) if &**name == "XMinioObjectExistsAsDirectory" => {
            "objects are stored under this key, and a directory cannot also hold an object of its name"
        }
        _ => "the backend refused the request",
    }
}

#[cfg(test)]
mod tests {
    use super::client_error;
    use s3s::{S3Error, S3ErrorCode};

    #[test]
    fn backend_errors_keep_their_code_and_status_but_not_their_words() {
        let mut refused = S3Error::with_message(
            S3ErrorCode::NoSuchKey,
            "Key not found on node garage-7.internal:3901",
        );
        refused.set_status_code(hyper::StatusCode::NOT_FOUND);
        refused.set_request_id("backend-req-42");
        let answer = client_error(refused);
        assert_eq!(
            (answer.code(), answer.status_code()),
            (&S3ErrorCode::NoSuchKey, Some(hyper::StatusCode::NOT_FOUND))
        );
        let message = answer.message().unwrap();
        assert!(message.contains("no object has this key"), "{message}");
        assert!(!message.contains("garage-7") && answer.request_id().is_none());

        let mut failed = S3Error::with_message(S3ErrorCode::InternalError, "panic at db.rs:42");
        failed.set_status_code(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        let answer = client_error(failed);
        assert_eq!(
            answer.status_code(),
            Some(hyper::StatusCode::INTERNAL_SERVER_ERROR)
        );
        assert!(!answer.message().unwrap().contains("db.rs"));

        // No S3 answer at all: the backend is down or unreachable (the client's error has no
        // message; its detail is in the source).
        let unreachable = S3Error::with_source(
            S3ErrorCode::InternalError,
            "dispatch failure: connection refused (10.0.0.5:9000)".into(),
        );
        let answer = client_error(unreachable);
        assert_eq!(answer.code(), &S3ErrorCode::ServiceUnavailable);
        assert!(!answer.message().unwrap().contains("10.0.0.5"));

        let mut missing = S3Error::new(S3ErrorCode::NotImplemented);
        missing.set_message("ListMultipartUploads is not implemented yet");
        let answer = client_error(missing);
        assert!(answer.message().unwrap().contains("does not implement"));
    }

    /// A request Sesame sent itself (a share link's download) is answered as the proxy's
    /// are: the backend's code and status, Sesame's words, and a 304's validators.
    #[test]
    fn errors_of_sesames_own_requests_are_told_as_the_proxys_are() {
        use aws_sdk_s3::config::http::HttpResponse;
        use aws_sdk_s3::error::{ErrorMetadata, SdkError};
        use aws_sdk_s3::operation::get_object::GetObjectError;
        use aws_sdk_s3::primitives::SdkBody;

        let refused = |status: u16, code: Option<&str>| {
            let mut meta = ErrorMetadata::builder();
            if let Some(code) = code {
                meta = meta
                    .code(code)
                    .message("Key not found on node garage-7.internal:3901");
            }
            let mut raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
            raw.headers_mut().insert("etag", "\"abc\"");
            SdkError::service_error(GetObjectError::generic(meta.build()), raw)
        };
        let answer = super::sdk_error(refused(404, Some("NoSuchKey")));
        assert_eq!(
            (answer.code(), answer.status_code()),
            (&S3ErrorCode::NoSuchKey, Some(hyper::StatusCode::NOT_FOUND))
        );
        let message = answer.message().unwrap();
        assert!(message.contains("no object has this key"), "{message}");
        assert!(!message.contains("garage-7"), "{message}");

        let not_modified = super::sdk_error(refused(304, None));
        assert_eq!(
            not_modified.status_code(),
            Some(hyper::StatusCode::NOT_MODIFIED)
        );
        let etag = not_modified.headers().and_then(|h| h.get("etag"));
        assert_eq!(etag.map(|v| v.to_str().unwrap()), Some("\"abc\""));
    }
}
