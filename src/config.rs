//! Typed configuration: one TOML file, overridden by `SESAME_*` environment variables and
//! command-line flags (clap reads both), resolved once at start into a [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default S3 listener: loopback only.
pub const DEFAULT_S3_ADDR: &str = "127.0.0.1:9440";
/// Default control API listener: loopback only.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:9441";
pub const DEFAULT_REGION: &str = "us-east-1";

/// The file as written; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub s3_addr: Option<SocketAddr>,
    pub api_addr: Option<SocketAddr>,
    /// Domain for virtual-hosted-style requests (`bucket.DOMAIN`); path style always works.
    pub domain: Option<String>,
    /// How clients reach the S3 listener (`https://s3.example.com`), when not at its address:
    /// the endpoint printed with credentials and the base of share links.
    pub public_url: Option<String>,
    /// Region clients sign for.
    pub region: Option<String>,
    /// `json` for JSON logs.
    pub log_format: Option<String>,
    /// Folder of policy files (`*.toml`).
    pub policies: Option<PathBuf>,
    /// Require a fresh MFA code for every request and approval, whatever the policies say.
    pub require_mfa: Option<bool>,
    pub backend: Option<BackendFile>,
    /// `[[webhook]]` tables: where request and grant events are sent.
    #[serde(default)]
    pub webhook: Vec<crate::notify::Webhook>,
    /// `[oidc]`: accept ID tokens from this identity provider.
    pub oidc: Option<crate::identity::oidc::OidcConfig>,
    /// `[audit]`: rotation, retention and forwarding of the audit trail.
    pub audit: Option<AuditFile>,
    /// `[listen]`: limits and timeouts of both listeners, and the drain on shutdown.
    pub listen: Option<ListenFile>,
}

/// The `[listen]` table; durations as people write them (`10s`, `1m`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenFile {
    /// A request head must arrive whole within this [default: 10s].
    pub header_timeout: Option<String>,
    /// Close a connection on which no byte moved either way for this long [default: 60s].
    pub idle_timeout: Option<String>,
    /// Connections each listener holds at most; more wait to be accepted [default: 1024].
    pub max_connections: Option<usize>,
    /// How long requests in flight may finish after SIGTERM or SIGINT [default: 10s].
    pub drain_grace: Option<String>,
}

/// The `[audit]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// Start a new trail file once the current one is this big [default: 64 MiB].
    pub rotate_bytes: Option<u64>,
    /// Delete trail files whose newest record is older than this [default: keep all].
    pub retain_days: Option<u32>,
    /// POST every committed batch of records here as `application/x-ndjson`.
    pub forward_url: Option<String>,
    /// Key for the `X-Sesame-Signature` HMAC of forwarded batches.
    pub forward_secret_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendFile {
    /// `http(s)://host:port` of an S3 server, or a directory served in-process.
    pub endpoint: Option<String>,
    pub directory: Option<PathBuf>,
    pub region: Option<String>,
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
}

/// What the command line and environment said; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub s3_addr: Option<SocketAddr>,
    pub api_addr: Option<SocketAddr>,
    pub backend: Option<String>,
    pub domain: Option<String>,
    pub public_url: Option<String>,
    pub backend_region: Option<String>,
    pub backend_access_key_id: Option<String>,
    pub backend_secret_access_key: Option<String>,
    pub backend_secret_access_key_file: Option<PathBuf>,
    pub backend_path_style: Option<bool>,
    pub log_format: Option<String>,
    pub policies: Option<PathBuf>,
    pub require_mfa: Option<bool>,
    pub audit_rotate_bytes: Option<u64>,
    pub audit_retain_days: Option<u32>,
    pub audit_forward_url: Option<String>,
    pub audit_forward_secret: Option<String>,
    pub audit_forward_secret_file: Option<PathBuf>,
    pub listen_header_timeout: Option<String>,
    pub listen_idle_timeout: Option<String>,
    pub listen_max_connections: Option<usize>,
    pub listen_drain_grace: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub s3_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub domain: Option<String>,
    /// `None`: `http://<s3 address>`.
    pub public_url: Option<String>,
    pub region: String,
    pub backend: Backend,
    pub log_json: bool,
    /// `None`: no policy folder, so nothing can be requested (grants come from the admin).
    pub policies: Option<PathBuf>,
    pub require_mfa: bool,
    pub webhooks: Vec<crate::notify::Webhook>,
    pub oidc: Option<crate::identity::oidc::OidcConfig>,
    pub audit: crate::audit::Settings,
    pub listen: crate::listen::Settings,
}

#[derive(Clone)]
pub enum Backend {
    /// A directory whose subfolders are buckets, served in-process.
    Directory(PathBuf),
    Endpoint {
        url: String,
        region: String,
        path_style: bool,
        /// `None`: the usual AWS sources (environment, profile, instance role).
        credentials: Option<(String, String)>,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Directory(dir) => write!(f, "directory {}", dir.display()),
            Backend::Endpoint {
                url,
                region,
                path_style,
                credentials,
            } => write!(
                f,
                "{url} (region {region}, path style {path_style}, credentials {})",
                if credentials.is_some() {
                    "from config"
                } else {
                    "from the AWS environment"
                }
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// An `http(s)://host[:port][/path]` base without its trailing slash.
fn public_url(url: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(url) = url else { return Ok(None) };
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['?', '#', ' ']) => {
            Ok(Some(trimmed.to_owned()))
        }
        _ => Err(ConfigError(format!(
            "public URL {url:?} is not like https://s3.example.com"
        ))),
    }
}

/// `$SESAME_DATA_DIR`, else `$XDG_DATA_HOME/sesame`, else `~/.local/share/sesame`.
#[must_use]
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SESAME_DATA_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("sesame");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/sesame")
}

impl Config {
    /// Reads the file (if any) and applies the overrides on top of it.
    pub fn load(file: Option<&Path>, o: Overrides) -> Result<Config, ConfigError> {
        let f = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
            }
            None => FileConfig::default(),
        };
        Config::resolve(f, o)
    }

    pub fn resolve(f: FileConfig, o: Overrides) -> Result<Config, ConfigError> {
        let audit = resolve_audit(f.audit.unwrap_or_default(), &o)?;
        let listen = resolve_listen(f.listen.unwrap_or_default(), &o)?;
        let data_dir = o.data_dir.or(f.data_dir).unwrap_or_else(default_data_dir);
        let fb = f.backend.unwrap_or_default();
        let region = f.region.unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let location = o.backend.or(fb.endpoint).map(|s| {
            if s.starts_with("http://") || s.starts_with("https://") {
                Location::Url(s)
            } else {
                Location::Dir(PathBuf::from(s))
            }
        });
        let location = location.or(fb.directory.map(Location::Dir));
        let backend = match location {
            None => Backend::Directory(data_dir.join("objects")),
            Some(Location::Dir(dir)) => Backend::Directory(dir),
            Some(Location::Url(url)) => {
                let secret = match (
                    o.backend_secret_access_key.or(fb.secret_access_key),
                    o.backend_secret_access_key_file
                        .or(fb.secret_access_key_file),
                ) {
                    (Some(s), _) => Some(s),
                    (None, Some(path)) => Some(
                        std::fs::read_to_string(&path)
                            .map_err(|e| {
                                ConfigError(format!(
                                    "cannot read backend secret {}: {e}",
                                    path.display()
                                ))
                            })?
                            .trim()
                            .to_owned(),
                    ),
                    (None, None) => None,
                };
                let credentials = match (o.backend_access_key_id.or(fb.access_key_id), secret) {
                    (Some(id), Some(secret)) => Some((id, secret)),
                    (None, None) => None,
                    _ => {
                        return Err(ConfigError(
                            "backend access key id and secret access key must be given together"
                                .into(),
                        ));
                    }
                };
                Backend::Endpoint {
                    url,
                    region: o
                        .backend_region
                        .or(fb.region)
                        .unwrap_or_else(|| region.clone()),
                    path_style: o.backend_path_style.or(fb.path_style).unwrap_or(true),
                    credentials,
                }
            }
        };
        let log_json = match o.log_format.or(f.log_format).as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "log format {other:?} is not text or json"
                )));
            }
        };
        Ok(Config {
            data_dir,
            s3_addr: o
                .s3_addr
                .or(f.s3_addr)
                .unwrap_or_else(|| DEFAULT_S3_ADDR.parse().expect("valid default")),
            api_addr: o
                .api_addr
                .or(f.api_addr)
                .unwrap_or_else(|| DEFAULT_API_ADDR.parse().expect("valid default")),
            domain: o.domain.or(f.domain),
            public_url: public_url(o.public_url.or(f.public_url))?,
            region,
            backend,
            log_json,
            policies: o.policies.or(f.policies).or_else(|| {
                let local = PathBuf::from("policies");
                local.is_dir().then_some(local)
            }),
            require_mfa: o.require_mfa.or(f.require_mfa).unwrap_or(false),
            webhooks: f.webhook,
            oidc: f.oidc,
            audit,
            listen,
        })
    }
}

/// The `[listen]` table with the `SESAME_LISTEN_*` overrides applied, checked.
fn resolve_listen(f: ListenFile, o: &Overrides) -> Result<crate::listen::Settings, ConfigError> {
    let duration = |name: &str, given: Option<String>, default| match given {
        None => Ok(default),
        Some(text) => crate::duration::parse(&text)
            .ok()
            .and_then(|d| std::time::Duration::try_from(d).ok())
            .ok_or_else(|| {
                ConfigError(format!(
                    "listen {name} {text:?} is not a duration like 10s or 1m"
                ))
            }),
    };
    let max_connections = o
        .listen_max_connections
        .or(f.max_connections)
        .unwrap_or(crate::listen::DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        return Err(ConfigError(
            "listen max_connections 0 would accept nothing: give at least 1".into(),
        ));
    }
    Ok(crate::listen::Settings {
        header_timeout: duration(
            "header_timeout",
            o.listen_header_timeout.clone().or(f.header_timeout),
            crate::listen::DEFAULT_HEADER_TIMEOUT,
        )?,
        idle_timeout: duration(
            "idle_timeout",
            o.listen_idle_timeout.clone().or(f.idle_timeout),
            crate::listen::DEFAULT_IDLE_TIMEOUT,
        )?,
        max_connections,
        drain_grace: duration(
            "drain_grace",
            o.listen_drain_grace.clone().or(f.drain_grace),
            crate::listen::DEFAULT_DRAIN_GRACE,
        )?,
    })
}

/// The `[audit]` table with the `SESAME_AUDIT_*` overrides applied, checked.
fn resolve_audit(f: AuditFile, o: &Overrides) -> Result<crate::audit::Settings, ConfigError> {
    let rotate_bytes = o
        .audit_rotate_bytes
        .or(f.rotate_bytes)
        .unwrap_or(crate::audit::DEFAULT_ROTATE_BYTES);
    if rotate_bytes == 0 {
        return Err(ConfigError(
            "audit rotate_bytes 0 is too small: give at least 1".into(),
        ));
    }
    let retain_days = o.audit_retain_days.or(f.retain_days);
    if retain_days == Some(0) {
        return Err(ConfigError(
            "audit retain_days 0 would delete the trail as it is written: give at least 1, or leave it out to keep everything".into(),
        ));
    }
    let url = o.audit_forward_url.clone().or(f.forward_url);
    let secret_file = o
        .audit_forward_secret_file
        .clone()
        .or(f.forward_secret_file);
    let secret = match (o.audit_forward_secret.clone(), secret_file) {
        (Some(s), _) => Some(s),
        (None, Some(path)) => Some(
            std::fs::read_to_string(&path)
                .map_err(|e| {
                    ConfigError(format!(
                        "cannot read audit forward secret {}: {e}",
                        path.display()
                    ))
                })?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    let forward = match (url, secret) {
        (Some(url), secret) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "audit forward_url {url:?} must be http:// or https://"
                )));
            }
            Some(crate::audit::forward::Target::new(
                url,
                secret.map(crate::secret::Secret::new),
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError(
                "an audit forward secret is given but no forward_url to send to".into(),
            ));
        }
        (None, None) => None,
    };
    Ok(crate::audit::Settings {
        rotate_bytes,
        retain_days,
        forward,
    })
}

enum Location {
    Url(String),
    Dir(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_local_directory_on_loopback() {
        let c = Config::resolve(
            FileConfig::default(),
            Overrides {
                data_dir: Some("/d".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert!(matches!(&c.backend, Backend::Directory(p) if p == Path::new("/d/objects")));
        assert!(c.s3_addr.ip().is_loopback() && c.api_addr.ip().is_loopback());
    }

    #[test]
    fn flags_override_the_file() {
        let f: FileConfig = toml::from_str(
            r#"
            s3_addr = "127.0.0.1:1000"
            [backend]
            endpoint = "http://127.0.0.1:3900"
            access_key_id = "GK1"
            secret_access_key = "s"
            "#,
        )
        .unwrap();
        let o = Overrides {
            s3_addr: Some("127.0.0.1:2000".parse().unwrap()),
            ..Overrides::default()
        };
        let c = Config::resolve(f, o).unwrap();
        assert_eq!(c.s3_addr.port(), 2000);
        assert!(
            matches!(&c.backend, Backend::Endpoint { url, credentials: Some(_), path_style: true, .. } if url == "http://127.0.0.1:3900")
        );
    }

    #[test]
    fn the_audit_table_has_defaults_and_env_overrides_it() {
        let c = Config::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(c.audit.rotate_bytes, crate::audit::DEFAULT_ROTATE_BYTES);
        assert!(c.audit.retain_days.is_none() && c.audit.forward.is_none());

        let f: FileConfig = toml::from_str(
            r#"
            [audit]
            rotate_bytes = 4096
            retain_days = 90
            forward_url = "https://siem.example/ingest"
            "#,
        )
        .unwrap();
        let o = Overrides {
            audit_retain_days: Some(30),
            audit_forward_secret: Some("k".into()),
            ..Overrides::default()
        };
        let c = Config::resolve(f, o).unwrap();
        assert_eq!(
            (c.audit.rotate_bytes, c.audit.retain_days),
            (4096, Some(30))
        );
        let forward = c.audit.forward.unwrap();
        assert_eq!(forward.url, "https://siem.example/ingest");
        assert_eq!(forward.secret.unwrap().expose(), "k");
    }

    #[test]
    fn audit_mistakes_name_the_value() {
        let resolve = |toml: &str| {
            Config::resolve(toml::from_str(toml).unwrap(), Overrides::default())
                .unwrap_err()
                .0
        };
        assert!(resolve("[audit]\nrotate_bytes = 0").contains("rotate_bytes 0"));
        assert!(resolve("[audit]\nretain_days = 0").contains("retain_days 0"));
        assert!(
            resolve("[audit]\nforward_url = \"siem:514\"").contains("\"siem:514\" must be http")
        );
        assert!(
            resolve("[audit]\nforward_secret_file = \"/nonexistent/k\"").contains("/nonexistent/k")
        );
        let err = toml::from_str::<FileConfig>("[audit]\nretain = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("retain"), "{err}");
    }

    #[test]
    fn the_listen_table_has_defaults_and_env_overrides_it() {
        let c = Config::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(c.listen, crate::listen::Settings::default());
        let f: FileConfig =
            toml::from_str("[listen]\nheader_timeout = \"5s\"\nmax_connections = 64").unwrap();
        let o = Overrides {
            listen_header_timeout: Some("1s".into()),
            listen_drain_grace: Some("1m".into()),
            ..Overrides::default()
        };
        let l = Config::resolve(f, o).unwrap().listen;
        assert_eq!(l.header_timeout, std::time::Duration::from_secs(1));
        assert_eq!(l.max_connections, 64);
        assert_eq!(l.drain_grace, std::time::Duration::from_mins(1));
        let resolve = |toml: &str| {
            Config::resolve(toml::from_str(toml).unwrap(), Overrides::default())
                .unwrap_err()
                .0
        };
        assert_eq!(
            resolve("[listen]\nidle_timeout = \"soon\""),
            "listen idle_timeout \"soon\" is not a duration like 10s or 1m"
        );
        assert!(resolve("[listen]\nmax_connections = 0").contains("max_connections 0"));
    }

    #[test]
    fn mistakes_are_named() {
        let err = toml::from_str::<FileConfig>("s3_adr = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("s3_adr"), "{err}");
        let o = Overrides {
            backend: Some("http://x".into()),
            backend_access_key_id: Some("id".into()),
            ..Overrides::default()
        };
        assert!(
            Config::resolve(FileConfig::default(), o)
                .unwrap_err()
                .0
                .contains("together")
        );
    }

    #[test]
    fn the_public_url_is_checked_and_loses_its_trailing_slash() {
        let resolve = |url: &str| {
            Config::resolve(
                FileConfig::default(),
                Overrides {
                    public_url: Some(url.to_owned()),
                    ..Overrides::default()
                },
            )
        };
        assert_eq!(
            resolve("https://files.example.com/")
                .unwrap()
                .public_url
                .as_deref(),
            Some("https://files.example.com")
        );
        let err = resolve("files.example.com").unwrap_err();
        assert_eq!(
            err.0,
            "public URL \"files.example.com\" is not like https://s3.example.com"
        );
    }
}
