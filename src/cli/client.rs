//! A small HTTP/1.1 client for the control API (over TLS for an `https://` server, verified
//! against the system's roots or a CA bundle, with a client certificate when given), and how
//! the CLI finds the server and token.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::api::views::ErrorBody;
use crate::server::{ADMIN_TOKEN_FILE, API_URL_FILE};

/// Why a CLI call failed; each maps to its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server could not be found or reached.
    #[error("{0}")]
    Unreachable(String),
    /// The server answered with an error.
    #[error("{message} ({code})")]
    Refused {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("{0}")]
    Usage(String),
    /// Input that was understood but is not valid (a policy file, say).
    #[error("{0}")]
    Invalid(String),
    /// A request the policy would refuse; the text is the full explanation, for stdout.
    #[error("{0}")]
    Denied(String),
}

impl CliError {
    /// 1: refused (by the server, or invalid policies, or denied by policy); 2: bad usage;
    /// 3: server unreachable or not configured; 4: not found.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused { status, .. } if *status == StatusCode::NOT_FOUND => 4,
            CliError::Refused { .. } | CliError::Invalid(_) | CliError::Denied(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable(_) => 3,
        }
    }
}

pub struct Client {
    server: String,
    /// `None`: the client certificate alone says who is calling.
    token: Option<String>,
    /// How an `https://` server is trusted, and the client certificate, as given.
    trust: Trust,
}

/// The CA bundle that an `https://` server's certificate is verified against (else the
/// system's roots) and the client certificate to present, if any.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Trust {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

impl Trust {
    /// What one layer leaves unsaid, `lower` says.
    fn or(self, lower: Trust) -> Trust {
        Trust {
            ca_bundle: self.ca_bundle.or(lower.ca_bundle),
            client_cert: self.client_cert.or(lower.client_cert),
            client_key: self.client_key.or(lower.client_key),
        }
    }

    /// The client certificate and its key, given together or not at all.
    fn identity(&self) -> Result<Option<crate::tls::CertFiles>, CliError> {
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Ok(Some(crate::tls::CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None) => Ok(None),
            _ => Err(CliError::Usage(
                "--client-cert and --client-key (SESAME_CLIENT_CERT, SESAME_CLIENT_KEY) must be given together".into(),
            )),
        }
    }
}

impl Client {
    /// Server, token and trust from flags or environment, else from `sesame login`'s file,
    /// else from the data directory of a local gateway (`api.url` and `admin.token`). With
    /// a client certificate and no token given, the certificate alone is sent.
    pub fn discover(
        server: Option<String>,
        token: Option<String>,
        trust: Trust,
        data_dir: &Path,
    ) -> Result<Client, CliError> {
        let login = read_login();
        let server = match server.or_else(|| login.as_ref().map(|l| l.server.clone())) {
            Some(s) => s,
            None => read_trimmed(&data_dir.join(API_URL_FILE)).map_err(|e| {
                CliError::Unreachable(format!(
                    "no server given and {e}: start `sesame serve`, run `sesame login`, or pass --server / SESAME_SERVER"
                ))
            })?,
        };
        let trust = match &login {
            Some(l) => trust.or(l.trust.clone()),
            None => trust,
        };
        let token = match token.or_else(|| login.and_then(|l| l.token)) {
            Some(t) => Some(t),
            None if trust.client_cert.is_some() => None,
            None => Some(read_trimmed(&data_dir.join(ADMIN_TOKEN_FILE)).map_err(|e| {
                CliError::Unreachable(format!(
                    "no token given and {e}: run `sesame login` or pass --token / SESAME_TOKEN"
                ))
            })?),
        };
        if let Some(token) = &token {
            check_token(token)?;
        }
        Ok(Client {
            server: server.trim_end_matches('/').to_owned(),
            token,
            trust,
        })
    }

    /// Remembers the server and token for later commands (mode 0600).
    pub fn save_login(&self) -> Result<PathBuf, CliError> {
        let path = login_path()
            .ok_or_else(|| CliError::Usage("no home directory to keep the login in".into()))?;
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let text = toml::to_string(&Login {
                server: self.server.clone(),
                token: self.token.clone(),
                trust: self.trust.clone(),
            })
            .map_err(std::io::Error::other)?;
            crate::secret::overwrite_private_file(&path, text.as_bytes())
        };
        write().map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.call(Method::GET, path, Bytes::new()).await
    }

    /// A POST with one of the bodies of `crate::api::bodies`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, CliError> {
        let body = serde_json::to_vec(body).expect("request bodies serialise");
        self.call(Method::POST, path, Bytes::from(body)).await
    }

    /// A POST whose route reads no body (a revocation, new credentials, a reload).
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.call(Method::POST, path, Bytes::new()).await
    }

    /// A GET whose answer is a document (a report) rather than JSON to decode.
    pub async fn get_bytes(&self, path: &str) -> Result<Bytes, CliError> {
        self.call_raw(Method::GET, path, Bytes::new()).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<T, CliError> {
        let body = self.call_raw(method, path, body).await?;
        serde_json::from_slice(&body).map_err(|e| {
            CliError::Unreachable(format!("unexpected answer from {}: {e}", self.server))
        })
    }

    async fn call_raw(&self, method: Method, path: &str, body: Bytes) -> Result<Bytes, CliError> {
        check_path(path)?;
        let (tls, authority) = match (
            self.server.strip_prefix("https://"),
            self.server.strip_prefix("http://"),
        ) {
            (Some(authority), _) => (Some(self.tls_config()?), authority),
            (None, Some(authority)) => (None, authority),
            (None, None) => {
                return Err(CliError::Usage(format!(
                    "server {:?} must be an http:// or https:// URL",
                    self.server
                )));
            }
        };
        let method_name = method.to_string();
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req.body(Full::new(body)).map_err(|e| {
            CliError::Usage(format!(
                "cannot send {method_name} {path} to {}: {e}",
                self.server
            ))
        })?;
        let unreachable = |e: &dyn std::fmt::Display| {
            CliError::Unreachable(format!("cannot reach {}: {e}", self.server))
        };
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|e| unreachable(&e))?;
        let res = match tls {
            None => send(stream, req).await,
            Some(config) => {
                let host = authority
                    .rsplit_once(':')
                    .map_or(authority, |(host, _port)| host)
                    .trim_matches(['[', ']']);
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| CliError::Usage(format!("server {:?}: {e}", self.server)))?;
                let stream = tokio_rustls::TlsConnector::from(config)
                    .connect(name, stream)
                    .await
                    .map_err(|e| {
                        let trusted = self.trust.ca_bundle.as_ref().map_or_else(
                            || "the system's roots (give its CA with --ca-bundle or SESAME_CA_BUNDLE)".to_owned(),
                            |ca| format!("the CA bundle {}", ca.display()),
                        );
                        unreachable(&format!(
                            "the TLS handshake failed: {e}; its certificate is verified against {trusted}"
                        ))
                    })?;
                send(stream, req).await
            }
        }
        .map_err(|e| unreachable(&e))?;
        let status = res.status();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(e) => CliError::Refused {
                    status,
                    code: e.error.code,
                    message: e.error.message,
                },
                Err(_) => CliError::Refused {
                    status,
                    code: status.as_u16().to_string(),
                    message: String::from_utf8_lossy(&body).into_owned(),
                },
            });
        }
        Ok(body)
    }
}

impl Client {
    /// The TLS client for an `https://` server: its roots and client certificate.
    fn tls_config(&self) -> Result<std::sync::Arc<rustls::ClientConfig>, CliError> {
        let usage = |e: crate::tls::TlsError| CliError::Usage(e.0);
        let roots = crate::tls::roots(self.trust.ca_bundle.as_deref()).map_err(usage)?;
        crate::tls::client_config(roots, self.trust.identity()?.as_ref()).map_err(usage)
    }
}

/// One request on a fresh connection.
async fn send<S>(
    stream: S,
    req: Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    sender.send_request(req).await
}

/// A token goes into the `Authorization` header, which cannot carry control characters (a
/// newline pasted with it, say). The error says where, never what the token is.
fn check_token(token: &str) -> Result<(), CliError> {
    match token.chars().position(char::is_control) {
        Some(at) => Err(CliError::Usage(format!(
            "the token holds a control character (character {} of {}; a pasted newline?), which no token has: check --token, SESAME_TOKEN or `sesame login`",
            at + 1,
            token.chars().count()
        ))),
        None => Ok(()),
    }
}

/// Characters an id or a name given on the command line may have in a path segment.
fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '@' | '+')
}

/// Every segment of the path (ids and names come from the command line) is one the server
/// can be sent: no space, no control character, nothing that would start a query.
fn check_path(path: &str) -> Result<(), CliError> {
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    match path.split('/').skip(1).find(|s| !s.chars().all(id_char)) {
        Some(segment) => Err(CliError::Usage(format!(
            "{segment:?} is not an id or name the gateway could have given: ids and names are letters, digits and - . _ ~ @ + (no spaces, slashes or control characters)"
        ))),
        None => Ok(()),
    }
}

/// What `sesame login` keeps.
#[derive(serde::Serialize, serde::Deserialize)]
struct Login {
    server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(flatten)]
    trust: Trust,
}

/// `$XDG_CONFIG_HOME/sesame/login.toml`, else `~/.config/sesame/login.toml`.
fn login_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("sesame/login.toml"))
}

/// Whether `sesame login` remembered a server.
#[must_use]
pub fn has_saved_login() -> bool {
    read_login().is_some()
}

fn read_login() -> Option<Login> {
    let text = std::fs::read_to_string(login_path()?).ok()?;
    toml::from_str(&text).ok()
}

fn read_trimmed(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(result: Result<impl std::fmt::Debug, CliError>) -> String {
        match result {
            Err(CliError::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn an_id_with_a_space_is_a_usage_error_naming_it() {
        let message = usage(check_path("/v1/grants/g 1/revoke"));
        assert_eq!(
            message,
            "\"g 1\" is not an id or name the gateway could have given: ids and names are letters, digits and - . _ ~ @ + (no spaces, slashes or control characters)"
        );
        assert!(usage(check_path("/v1/users/bob\u{7}/mfa/reset")).starts_with("\"bob\\u{7}\""));
        check_path("/v1/users/alice@example.com/mfa/reset").unwrap();
        check_path("/v1/report?format=html&from=2026-03-01T00%3A00%3A00Z").unwrap();
    }

    #[test]
    fn a_token_with_a_control_character_is_a_usage_error_that_does_not_show_it() {
        let dir = tempfile::tempdir().unwrap();
        let found = Client::discover(
            Some("http://127.0.0.1:9441".into()),
            Some("sesame_user_0123\n".into()),
            Trust::default(),
            dir.path(),
        );
        let message = usage(found.map(|_| ()));
        assert_eq!(
            message,
            "the token holds a control character (character 17 of 17; a pasted newline?), which no token has: check --token, SESAME_TOKEN or `sesame login`"
        );
    }

    #[test]
    fn a_login_keeps_the_ca_bundle_and_client_certificate_and_reads_an_older_file() {
        let login = Login {
            server: "https://sesame.example:9441".into(),
            token: None,
            trust: Trust {
                ca_bundle: Some("/etc/sesame/ca.pem".into()),
                client_cert: Some("/etc/sesame/bot.pem".into()),
                client_key: Some("/etc/sesame/bot.key".into()),
            },
        };
        let text = toml::to_string(&login).unwrap();
        let back: Login = toml::from_str(&text).unwrap();
        assert_eq!(back.server, login.server);
        assert_eq!(back.token, None);
        assert_eq!(back.trust.ca_bundle, login.trust.ca_bundle);
        assert_eq!(back.trust.client_key, login.trust.client_key);
        // A file written before TLS: a server and a token.
        let old: Login =
            toml::from_str("server = \"http://127.0.0.1:9441\"\ntoken = \"t\"\n").unwrap();
        assert_eq!(old.token.as_deref(), Some("t"));
        assert!(old.trust.ca_bundle.is_none() && old.trust.client_cert.is_none());
        // A client certificate without its key is bad usage.
        let half = Trust {
            client_cert: Some("/c.pem".into()),
            ..Trust::default()
        };
        assert!(matches!(half.identity(), Err(CliError::Usage(_))));
    }

    #[tokio::test]
    async fn a_bad_id_is_refused_before_anything_is_sent() {
        // Nothing listens on port 9 (discard): reaching for it would be "unreachable".
        let client = Client {
            server: "http://127.0.0.1:9".into(),
            token: Some("t".into()),
            trust: Trust::default(),
        };
        let message = usage(client.get::<serde_json::Value>("/v1/grants/a b").await);
        assert!(message.starts_with("\"a b\" is not an id"), "{message}");
    }
}
