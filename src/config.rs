//! Typed configuration of `sesame serve`. Every setting is declared once, as a field of
//! [`Settings`] or of one of its tables: its doc comment is its `--help`, clap reads it from
//! the command line (`--backend-region`), [`Settings::from_env`] from `SESAME_` and the
//! flag's name (`SESAME_BACKEND_REGION`), and serde from the TOML file (`[backend] region`).
//! The three layers are merged flags over environment over file ([`Layer::over`]); then
//! [`Config::resolve`] applies the defaults and checks every value, once, at start.
//!
//! Secrets have no flag, since every user of the machine sees a flag's value (`ps`): they
//! come from the environment, the file, or a file of their own (`..._file`), and are
//! [`Secret`]s from there on, so no `Debug` of the configuration shows them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::builder::{BoolishValueParser, TypedValueParser as _};
use clap::{Args, FromArgMatches as _};
use serde::Deserialize;

use crate::secret::Secret;

/// Default S3 listener: loopback only.
pub const DEFAULT_S3_ADDR: &str = "127.0.0.1:9440";
/// Default control API listener: loopback only.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:9441";
/// The region clients sign for unless configured. Not one of AWS's: for the older AWS regions
/// (us-east-1 among them) aws-cli v1, boto3 and s3fs presign URLs with SigV2, which Sesame
/// refuses; for a region they do not know they presign with SigV4.
pub const DEFAULT_REGION: &str = "sesame";

/// The backend's region unless configured, when the gateway's region is not configured
/// either: AWS's default, which S3-compatible stores assume too.
pub const DEFAULT_BACKEND_REGION: &str = "us-east-1";

/// Prefix of every setting's environment variable: `SESAME_` and the flag's name.
const ENV_PREFIX: &str = "SESAME_";
/// The backend's secret access key, from the environment (it has no flag).
const BACKEND_SECRET_ENV: &str = "SESAME_BACKEND_SECRET_ACCESS_KEY";
/// The key of forwarded batches' signature, from the environment (it has no flag).
const AUDIT_FORWARD_SECRET_ENV: &str = "SESAME_AUDIT_FORWARD_SECRET";

/// One layer of settings over another: what `self` leaves unsaid, `lower` says.
pub trait Layer {
    #[must_use]
    fn over(self, lower: Self) -> Self;
}

impl<T> Layer for Option<T> {
    fn over(self, lower: Self) -> Self {
        Option::or(self, lower)
    }
}

/// A list is said whole by one layer (the file's `[[webhook]]` tables).
impl<T> Layer for Vec<T> {
    fn over(self, lower: Self) -> Self {
        if self.is_empty() { lower } else { self }
    }
}

/// Declares a struct of settings as written and derives its [`Layer`]: field by field, the
/// upper layer's value where it has one.
macro_rules! layered {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl Layer for $name {
            fn over(self, lower: Self) -> Self {
                $name {
                    $($field: Layer::over(self.$field, lower.$field),)*
                }
            }
        }

        #[cfg(test)]
        impl $name {
            /// Every field, as the file names it.
            pub(crate) const FIELDS: &'static [&'static str] = &[$(stringify!($field),)*];
        }
    };
}

mod audit;

pub use self::audit::AuditSettings;

layered! {
    /// Every setting of `sesame serve`, as one layer says it (the command line, the
    /// environment or the file); `None` where that layer is silent.
    #[derive(Debug, Default, Clone, Args, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct Settings {
        /// Where the store, keys and admin token live [default: ~/.local/share/sesame]
        #[arg(long)]
        pub data_dir: Option<PathBuf>,
        /// Where grants, requests, users and links are kept: a `postgres://` URL of a
        /// database every replica shares (a password is better kept in `SESAME_STORE` or the
        /// file than in a flag, where `ps` shows it) [default: sesame.redb in the data dir]
        #[arg(long, value_name = "URL")]
        pub store: Option<String>,
        /// Refuse S3 requests (503) once the store has not been read for this long: a
        /// revocation made through another gateway may be waiting there [default: 5s]
        #[arg(long)]
        pub store_stale_after: Option<String>,
        /// S3 listener [default: 127.0.0.1:9440]
        #[arg(long)]
        pub s3_addr: Option<SocketAddr>,
        /// Control API listener [default: 127.0.0.1:9441]
        #[arg(long)]
        pub api_addr: Option<SocketAddr>,
        /// Domain for virtual-hosted-style requests (bucket.DOMAIN); path style always works.
        #[arg(long)]
        pub domain: Option<String>,
        /// How clients reach the S3 listener, e.g. `https://s3.example.com` (behind a proxy):
        /// the endpoint given out with credentials and the base of share links
        /// [default: http://<s3-addr>]
        #[arg(long)]
        pub public_url: Option<String>,
        /// The region clients sign for [default: sesame]
        #[arg(long)]
        pub region: Option<String>,
        /// `text` or `json` [default: text]
        #[arg(long)]
        pub log_format: Option<String>,
        /// Folder of policy files [default: ./policies if it exists]
        #[arg(long)]
        pub policies: Option<PathBuf>,
        /// Require a fresh MFA code for every request and approval, whatever the policies say
        /// [default: false]
        #[arg(
            long,
            value_name = "BOOL",
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true",
            value_parser = BoolishValueParser::new(),
        )]
        pub require_mfa: Option<bool>,
        /// Serve plain HTTP on a listener that is not on loopback, where credentials, session
        /// tokens, share links and objects would cross the network in clear: only behind a
        /// proxy that terminates TLS in front of Sesame [default: false]
        #[arg(
            long,
            value_name = "BOOL",
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true",
            value_parser = BoolishValueParser::new(),
        )]
        pub allow_plain_http: Option<bool>,
        #[command(flatten)]
        pub tls: TlsSettings,
        #[command(flatten)]
        pub backend: BackendSettings,
        #[command(flatten)]
        pub audit: AuditSettings,
        #[command(flatten)]
        pub listen: ListenSettings,
        /// `[[webhook]]` tables (file only): where request and grant events are sent.
        #[arg(skip)]
        pub webhook: Vec<crate::notify::Webhook>,
        /// `[oidc]` (file only): accept ID tokens from this identity provider.
        #[arg(skip)]
        pub oidc: Option<crate::identity::oidc::OidcConfig>,
    }
}

layered! {
    /// The `[backend]` table: the S3 server Sesame stands in front of.
    #[derive(Debug, Default, Clone, Args, Deserialize)]
    #[command(next_help_heading = "Backend")]
    #[serde(default, deny_unknown_fields)]
    pub struct BackendSettings {
        /// Backend: an S3 endpoint URL, or a directory whose subfolders are buckets
        /// [default: <data-dir>/objects]
        // In the file: `endpoint`, or `directory` for a folder.
        #[arg(long = "backend", value_name = "URL_OR_DIR")]
        #[serde(alias = "directory")]
        pub endpoint: Option<String>,
        /// Region of the backend [default: `region` if set, else us-east-1]
        #[arg(id = "backend_region", long = "backend-region", value_name = "REGION")]
        pub region: Option<String>,
        /// Address the backend with virtual-hosted style instead of path style (`path_style =
        /// false` in the file) [default: false]
        #[arg(
            long = "backend-virtual-hosted",
            value_name = "BOOL",
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true",
            value_parser = BoolishValueParser::new().map(|virtual_hosted| !virtual_hosted),
        )]
        pub path_style: Option<bool>,
        /// Access key id of the gateway's own backend credentials [default: the usual AWS
        /// sources (environment, profile, instance role)]
        #[arg(long = "backend-access-key-id", value_name = "KEY_ID")]
        pub access_key_id: Option<String>,
        /// The secret for `access_key_id`; no flag: `SESAME_BACKEND_SECRET_ACCESS_KEY`.
        #[arg(skip)]
        pub secret_access_key: Option<Secret>,
        /// File holding the backend's secret access key (or the secret itself in
        /// `SESAME_BACKEND_SECRET_ACCESS_KEY`; never in a flag, where `ps` shows it)
        #[arg(long = "backend-secret-access-key-file", value_name = "FILE")]
        pub secret_access_key_file: Option<PathBuf>,
        /// CA bundle (PEM) an https:// backend's certificate is verified against, in place of
        /// the system's roots [default: the system's roots]
        #[arg(long = "backend-ca", value_name = "FILE")]
        pub ca: Option<PathBuf>,
    }
}

layered! {
    /// The `[tls]` table: certificates of the two listeners (PEM files, reloaded when they
    /// change or on SIGHUP) and client certificates for the control API.
    #[derive(Debug, Default, Clone, Args, Deserialize)]
    #[command(next_help_heading = "TLS")]
    #[serde(default, deny_unknown_fields)]
    pub struct TlsSettings {
        /// Certificate chain (PEM, leaf first) of the S3 listener, and of the control API
        /// unless it has its own
        #[arg(long = "tls-cert", value_name = "FILE")]
        pub cert: Option<PathBuf>,
        /// Private key (PEM) of `--tls-cert`
        #[arg(long = "tls-key", value_name = "FILE")]
        pub key: Option<PathBuf>,
        /// Certificate chain (PEM) of the control API listener [default: --tls-cert]
        #[arg(long = "tls-api-cert", value_name = "FILE")]
        pub api_cert: Option<PathBuf>,
        /// Private key (PEM) of `--tls-api-cert`
        #[arg(long = "tls-api-key", value_name = "FILE")]
        pub api_key: Option<PathBuf>,
        /// CA bundle (PEM) that control API client certificates are verified against; a
        /// verified certificate's name is mapped to a principal by `[tls.api_clients]`
        /// [default: no client certificates]
        #[arg(long = "tls-api-client-ca", value_name = "FILE")]
        pub api_client_ca: Option<PathBuf>,
        /// `[tls.api_clients]` (file only): a client certificate's name (a DNS or URI
        /// subject alternative name) = the local user it authenticates as, or `admin`.
        #[arg(skip)]
        pub api_clients: Option<BTreeMap<String, String>>,
    }
}

layered! {
    /// The `[listen]` table, for both listeners; durations as people write them (`10s`, `1m`).
    #[derive(Debug, Default, Clone, Args, Deserialize)]
    #[command(next_help_heading = "Listeners")]
    #[serde(default, deny_unknown_fields)]
    pub struct ListenSettings {
        /// Close a connection whose request head has not arrived whole within this
        /// [default: 10s]
        #[arg(long = "listen-header-timeout")]
        pub header_timeout: Option<String>,
        /// Close a connection on which no byte moved either way for this long [default: 60s]
        #[arg(long = "listen-idle-timeout")]
        pub idle_timeout: Option<String>,
        /// Connections each listener holds at most; more wait to be accepted [default: 1024]
        #[arg(long = "listen-max-connections")]
        pub max_connections: Option<usize>,
        /// How long requests in flight may finish after SIGTERM or SIGINT [default: 10s]
        #[arg(long = "listen-drain-grace")]
        pub drain_grace: Option<String>,
    }
}

/// The variable that gives a flag's setting: `SESAME_` and its name, `-` as `_`
/// (`--backend-region`: `SESAME_BACKEND_REGION`).
#[must_use]
pub fn env_name(long: &str) -> String {
    format!("{ENV_PREFIX}{}", long.to_uppercase().replace('-', "_"))
}

/// The settings' flags alone, as clap declares them.
fn flags() -> clap::Command {
    Settings::augment_args(clap::Command::new("sesame serve").no_binary_name(true))
}

/// Adds each setting's variable to its `--help` line.
#[must_use]
pub fn document_env(serve: clap::Command) -> clap::Command {
    let settings: Vec<clap::Id> = flags()
        .get_arguments()
        .map(|a| a.get_id().clone())
        .collect();
    serve.mut_args(
        |arg| match (arg.get_long(), settings.contains(arg.get_id())) {
            (Some(long), true) => {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                let env = env_name(long);
                arg.help(format!("{help} [env: {env}]"))
            }
            _ => arg,
        },
    )
}

impl Settings {
    /// The settings the environment gives, `env` looking a variable up (`std::env::var`
    /// outside tests); empty variables count as unset. Each value is parsed as its flag's
    /// would be, and a bad one is named with its variable.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let command = flags();
        let mut layer = Settings::default();
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let name = env_name(long);
            let Some(value) = env(&name) else { continue };
            let one = command
                .clone()
                .try_get_matches_from([format!("--{long}={value}")])
                .and_then(|m| Settings::from_arg_matches(&m))
                .map_err(|e| {
                    let why = std::error::Error::source(&e)
                        .map_or_else(|| e.kind().to_string(), ToString::to_string);
                    ConfigError(format!("{name}={value:?} is not valid: {why}"))
                })?;
            layer = one.over(layer);
        }
        layer.backend.secret_access_key = env(BACKEND_SECRET_ENV).map(Secret::new);
        layer.audit.forward_secret = env(AUDIT_FORWARD_SECRET_ENV).map(Secret::new);
        Ok(layer)
    }

    /// The settings a TOML file gives; a mistake is named with its line.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Settings::from_toml(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// The settings TOML text gives.
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    /// What `sesame serve` runs with: `flags` over the environment (`env`) over the file,
    /// if there is one.
    pub fn layered(
        flags: Settings,
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<&Path>,
    ) -> Result<Settings, ConfigError> {
        let file = file
            .map(Settings::from_file)
            .transpose()?
            .unwrap_or_default();
        Ok(flags.over(Settings::from_env(env)?).over(file))
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub store: StoreLocation,
    /// How long the gateway acts on what it last read from the store.
    pub store_stale_after: std::time::Duration,
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
    pub tls: Tls,
}

/// Where the state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The redb file [`STORE_FILE`] in the data directory, for one gateway (wherever the
    /// data directory is, so a copy of the configuration with another one has its own).
    DataDir,
    /// A PostgreSQL database every replica shares; the URL may hold a password.
    Postgres(crate::secret::Secret),
}

/// A `postgres://` URL, or the file in the data directory when none is given.
fn resolve_store(url: Option<String>) -> Result<StoreLocation, ConfigError> {
    match url {
        None => Ok(StoreLocation::DataDir),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(StoreLocation::Postgres(crate::secret::Secret::new(url)))
        }
        // Only what follows a `user:password@` is shown.
        Some(other) => Err(ConfigError(format!(
            "store {:?} is not a postgres:// URL; leave it out to keep the store in the data directory",
            other.split('@').next_back().unwrap_or_default()
        ))),
    }
}

/// How long the gateway acts on its last read of the store; at least a moment.
fn resolve_stale_after(given: Option<String>) -> Result<std::time::Duration, ConfigError> {
    let Some(text) = given else {
        return Ok(crate::store::STALE_AFTER);
    };
    crate::duration::parse(&text)
        .ok()
        .and_then(|d| std::time::Duration::try_from(d).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            ConfigError(format!(
                "store_stale_after {text:?} is not a duration like 5s or 1m"
            ))
        })
}

/// The store file in the data directory when no store is named.
pub const STORE_FILE: &str = "sesame.redb";

/// TLS on each listener; `None` is plain HTTP.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    pub s3: Option<crate::tls::CertFiles>,
    pub api: Option<crate::tls::CertFiles>,
    /// Client certificates the control API accepts, when any.
    pub api_clients: Option<ClientCertificates>,
}

impl Tls {
    /// Which principal each client certificate name authenticates as; empty without client
    /// certificates.
    #[must_use]
    pub fn principals(&self) -> BTreeMap<String, String> {
        self.api_clients
            .as_ref()
            .map(|c| c.principals.clone())
            .unwrap_or_default()
    }
}

/// Client certificates of the control API: the CA they are verified against, and which
/// principal each name authenticates as.
#[derive(Debug, Clone)]
pub struct ClientCertificates {
    pub ca: PathBuf,
    /// A certificate's name (DNS or URI subject alternative name) to a local user's name,
    /// or `admin`.
    pub principals: BTreeMap<String, String>,
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
        credentials: Option<(String, Secret)>,
        /// The CA bundle an https:// backend is verified against; `None`: the system's roots.
        ca: Option<PathBuf>,
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
                ca,
            } => {
                write!(
                    f,
                    "{url} (region {region}, path style {path_style}, credentials {}",
                    if credentials.is_some() {
                        "from config"
                    } else {
                        "from the AWS environment"
                    }
                )?;
                match ca {
                    Some(ca) => write!(f, ", CA {})", ca.display()),
                    None => write!(f, ")"),
                }
            }
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

/// A secret given inline, else read from its file (`what` names it in the error).
fn secret(
    inline: Option<Secret>,
    file: Option<PathBuf>,
    what: &str,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(secret), _) => Ok(Some(secret)),
        (None, Some(path)) => Secret::from_file(&path)
            .map(Some)
            .map_err(|e| ConfigError(format!("cannot read {what} {e}"))),
        (None, None) => Ok(None),
    }
}

impl Config {
    /// The configuration `sesame serve` runs with (see [`Settings::layered`]).
    pub fn load(
        flags: Settings,
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        Config::resolve(Settings::layered(flags, env, file)?)
    }

    /// The defaults applied to merged settings, and every value checked.
    pub fn resolve(s: Settings) -> Result<Config, ConfigError> {
        let audit = audit::resolve(s.audit)?;
        let listen = resolve_listen(s.listen)?;
        let tls = resolve_tls(s.tls)?;
        let data_dir = s.data_dir.unwrap_or_else(default_data_dir);
        let store = resolve_store(s.store)?;
        let store_stale_after = resolve_stale_after(s.store_stale_after)?;
        let backend = resolve_backend(s.backend, &data_dir, s.region.as_deref())?;
        let region = s.region.unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let log_json = match s.log_format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "log format {other:?} is not text or json"
                )));
            }
        };
        let s3_addr = s
            .s3_addr
            .unwrap_or_else(|| DEFAULT_S3_ADDR.parse().expect("valid default"));
        let api_addr = s
            .api_addr
            .unwrap_or_else(|| DEFAULT_API_ADDR.parse().expect("valid default"));
        if !s.allow_plain_http.unwrap_or(false) {
            plain_only_on_loopback(
                "s3_addr",
                s3_addr,
                tls.s3.as_ref(),
                "--tls-cert and --tls-key",
            )?;
            plain_only_on_loopback(
                "api_addr",
                api_addr,
                tls.api.as_ref(),
                "--tls-cert and --tls-key (or --tls-api-cert and --tls-api-key)",
            )?;
        }
        Ok(Config {
            data_dir,
            store,
            store_stale_after,
            s3_addr,
            api_addr,
            domain: s.domain,
            public_url: public_url(s.public_url)?,
            region,
            backend,
            log_json,
            policies: s.policies.or_else(|| {
                let local = PathBuf::from("policies");
                local.is_dir().then_some(local)
            }),
            require_mfa: s.require_mfa.unwrap_or(false),
            webhooks: s.webhook,
            oidc: s.oidc,
            audit,
            listen,
            tls,
        })
    }
}

/// The backend: a directory unless an `http(s)://` endpoint is given. Its region, unless
/// given, is the gateway's `region` when that is configured, else AWS's default.
fn resolve_backend(
    b: BackendSettings,
    data_dir: &Path,
    region: Option<&str>,
) -> Result<Backend, ConfigError> {
    let backend_region = b
        .region
        .clone()
        .or_else(|| region.map(str::to_owned))
        .unwrap_or_else(|| DEFAULT_BACKEND_REGION.to_owned());
    Ok(match b.endpoint {
        None => Backend::Directory(data_dir.join("objects")),
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            let secret = secret(
                b.secret_access_key,
                b.secret_access_key_file,
                "backend secret",
            )?;
            let credentials = match (b.access_key_id, secret) {
                (Some(id), Some(secret)) => Some((id, secret)),
                (None, None) => None,
                _ => {
                    return Err(ConfigError(
                        "backend access key id and secret access key must be given together".into(),
                    ));
                }
            };
            if b.ca.is_some() && !url.starts_with("https://") {
                return Err(ConfigError(format!(
                    "backend ca is given but the backend {url} is not https://: there is no certificate to verify"
                )));
            }
            Backend::Endpoint {
                url,
                region: backend_region,
                path_style: b.path_style.unwrap_or(true),
                credentials,
                ca: b.ca,
            }
        }
        Some(dir) if b.ca.is_some() => {
            return Err(ConfigError(format!(
                "backend ca is given but the backend {dir} is a directory: there is no certificate to verify"
            )));
        }
        Some(dir) => Backend::Directory(PathBuf::from(dir)),
    })
}

/// A listener off loopback without TLS is refused unless the operator allowed it.
fn plain_only_on_loopback(
    name: &str,
    addr: SocketAddr,
    tls: Option<&crate::tls::CertFiles>,
    give: &str,
) -> Result<(), ConfigError> {
    if tls.is_some() || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(ConfigError(format!(
        "{name} {addr} is not a loopback address, and without TLS the credentials, session tokens, admin and user tokens, share links and objects sent through it would cross the network in clear: give {give}, or --allow-plain-http if a proxy in front of Sesame terminates TLS"
    )))
}

/// A certificate and its key, given together or not at all.
fn cert_files(
    what: &str,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<crate::tls::CertFiles>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(crate::tls::CertFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) | (None, Some(_)) => Err(ConfigError(format!(
            "tls {what}cert and {what}key must be given together"
        ))),
    }
}

/// The `[tls]` settings, checked: pairs given whole, client certificates only over TLS.
fn resolve_tls(t: TlsSettings) -> Result<Tls, ConfigError> {
    let s3 = cert_files("", t.cert, t.key)?;
    let api = cert_files("api_", t.api_cert, t.api_key)?.or_else(|| s3.clone());
    let api_clients = match (t.api_client_ca, t.api_clients) {
        (Some(_), _) if api.is_none() => {
            return Err(ConfigError(
                "tls api_client_ca is given but the control API has no TLS certificate to ask for client certificates with: give --tls-cert and --tls-key (or --tls-api-cert and --tls-api-key)".into(),
            ));
        }
        (Some(ca), principals) => Some(ClientCertificates {
            ca,
            principals: principals.unwrap_or_default(),
        }),
        (None, Some(_)) => {
            return Err(ConfigError(
                "[tls.api_clients] is given but no api_client_ca to verify client certificates against".into(),
            ));
        }
        (None, None) => None,
    };
    Ok(Tls {
        s3,
        api,
        api_clients,
    })
}

/// The `[listen]` settings, checked.
fn resolve_listen(l: ListenSettings) -> Result<crate::listen::Settings, ConfigError> {
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
    let max_connections = l
        .max_connections
        .unwrap_or(crate::listen::DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        return Err(ConfigError(
            "listen max_connections 0 would accept nothing: give at least 1".into(),
        ));
    }
    Ok(crate::listen::Settings {
        header_timeout: duration(
            "header_timeout",
            l.header_timeout,
            crate::listen::DEFAULT_HEADER_TIMEOUT,
        )?,
        idle_timeout: duration(
            "idle_timeout",
            l.idle_timeout,
            crate::listen::DEFAULT_IDLE_TIMEOUT,
        )?,
        max_connections,
        drain_grace: duration(
            "drain_grace",
            l.drain_grace,
            crate::listen::DEFAULT_DRAIN_GRACE,
        )?,
    })
}

#[cfg(test)]
mod tests;
