//! Starts a gateway: data directory, store, keys, backend, and the two listeners. Used by
//! `sesame serve` and, with a manual clock, by the integration tests.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::audit::AuditLog;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::desk::Workflow;
use crate::grant::Grants;
use crate::grant::usage::{Ledger, Meter};
use crate::identity::Users;
use crate::schedule::{run_grant_notices, run_owed_records, run_timeouts, watch_policies};
use crate::secret::{Key, Secret, create_private_dir, write_private_file};
use crate::store::SharedStore;

/// Files in the data directory.
pub const CREDENTIAL_KEY_FILE: &str = "credential.key";
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The audit trail's root in the data directory, unless `audit.dir` names another.
pub const AUDIT_DIR: &str = "audit";
/// The replica id of the gateway using this data directory.
pub const REPLICA_ID_FILE: &str = "replica.id";
/// Where the CLI finds the control API of the gateway using this data directory.
pub const API_URL_FILE: &str = "api.url";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("backend: {0}")]
    Backend(String),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("webhooks: {0}")]
    Webhooks(String),
    #[error("oidc: {0}")]
    Oidc(String),
    #[error("policies are invalid, so Sesame refuses to start:\n{0}")]
    Policies(#[from] crate::policy::PolicyError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// A running gateway; dropping it stops the listeners and cuts their connections at once,
/// [`Running::drain`] lets them finish first.
pub struct Running {
    pub s3_addr: SocketAddr,
    pub api_addr: SocketAddr,
    /// What clients are told to use: `--public-url`, else `http(s)://<s3 address>`.
    pub s3_endpoint: String,
    /// The control API's URL, as the CLI finds it in the data directory.
    pub api_url: String,
    pub grants: Arc<Grants>,
    pub workflow: Arc<Workflow>,
    pub shares: Arc<crate::share::Shares>,
    pub admin_token: Secret,
    pub admin_token_path: std::path::PathBuf,
    /// This gateway's id among those sharing the store ([`replica_id`]).
    pub replica_id: String,
    /// Writes this gateway's usage row; at once with [`Flusher::flush_now`].
    ///
    /// [`Flusher::flush_now`]: crate::grant::usage::Flusher::flush_now
    pub usage: crate::grant::usage::Flusher,
    /// This gateway's audit chain; [`crate::audit::AuditLog::flushed`] commits what waits.
    pub audit: crate::audit::AuditLog,
    shutdown: crate::listen::Shutdown,
    /// The S3 and control API listeners: they end once drained.
    listeners: Vec<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops both listeners accepting, and waits for their connections to finish (each for
    /// at most the configured drain grace, after which the rest are cut); then writes the
    /// usage row with everything they did.
    pub async fn drain(mut self) {
        self.shutdown.begin();
        for listener in std::mem::take(&mut self.listeners) {
            if let Err(e) = listener.await {
                tracing::error!(error = %e, "a listener failed while draining");
            }
        }
        if let Err(e) = self.usage.flush_now().await {
            tracing::error!(error = %e, "usage not written at shutdown; the next start counts it from the trail");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in self.listeners.iter().chain(&self.tasks) {
            task.abort();
        }
    }
}

pub async fn start(config: &Config, clock: SharedClock) -> Result<Running, StartError> {
    let dir = &config.data_dir;
    let dir_error = |source| StartError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    create_private_dir(dir).map_err(dir_error)?;
    let replica_id = replica_id(dir).map_err(dir_error)?;
    let (store, key) = open_store(config).await?;
    let admin_token_path = dir.join(ADMIN_TOKEN_FILE);
    let admin_token = load_or_create_admin_token(&admin_token_path).map_err(dir_error)?;
    let grants = Grants::open(store.clone(), clock.clone(), key.clone()).await?;
    let grants = Arc::new(grants.with_stale_after(config.store_stale_after));
    let shares = Arc::new(crate::share::Shares::open(store.clone(), clock.clone(), &key).await?);
    let users = Arc::new(Users::open(store.clone(), key).await?);
    let uploads = Arc::new(crate::s3::Uploads::open(store.clone()).await?);
    let (policies, policy_sources) = load_policies(config)?;
    let (audit, meter, ledger) = open_trail(config, &store, &replica_id, &clock).await?;
    let notifier = crate::notify::Notifier::new(audit.clone());
    let webhooks = crate::notify::webhook::start(config.webhooks.clone(), &audit, &clock)
        .map_err(StartError::Webhooks)?;
    let workflow = Arc::new(
        Workflow::open(
            store.clone(),
            grants.clone(),
            users.clone(),
            policies,
            config.policies.clone(),
            clock.clone(),
            config.require_mfa,
        )
        .await?
        .with_notifier(notifier.clone())
        .with_replica(&replica_id),
    );
    share_policies(&workflow, policy_sources).await?;
    let deadlines_changed = Arc::new(tokio::sync::Notify::new());

    // Boxed: the start-up handshake with an https:// backend would make every caller's
    // future larger by its TLS state.
    let backend = Box::pin(crate::s3::connect_backend(&config.backend))
        .await
        .map_err(|e| StartError::Backend(e.to_string()))?;
    let books = crate::feed::Books {
        grants: grants.clone(),
        shares: shares.clone(),
        users: users.clone(),
        workflow: workflow.clone(),
        uploads,
        meter: meter.clone(),
    };
    let door = front_door(config, &books, &audit, &meter, backend, &clock)?;

    let tls = Tls::load(config)?;
    let (s3_listener, s3_addr) = bind(config.s3_addr).await?;
    let (api_listener, api_addr) = bind(config.api_addr).await?;
    let s3_endpoint = config
        .public_url
        .clone()
        .unwrap_or_else(|| url(tls.s3.is_some(), s3_addr));
    let api_url = url(tls.api.is_some(), api_addr);

    let oidc = oidc(config, &clock)?;
    let api_state = Arc::new(crate::api::ApiState {
        grants: grants.clone(),
        workflow: workflow.clone(),
        admin_token: admin_token.clone(),
        s3_endpoint: s3_endpoint.clone(),
        client_principals: config.tls.principals(),
        tls: tls.api.is_some(),
        region: config.region.clone(),
        deadlines_changed: deadlines_changed.clone(),
        oidc,
        shares: shares.clone(),
        audit: audit.clone(),
        meter: meter.clone(),
        audit_dir: audit_root(&config.data_dir, config.audit.root.as_deref()),
    });
    std::fs::write(dir.join(API_URL_FILE), format!("{api_url}\n")).map_err(dir_error)?;
    let (shutdown, listeners) =
        serve_both(config, &tls, (s3_listener, door), (api_listener, api_state));
    let mut tasks = background(&workflow, &grants, notifier, &clock, deadlines_changed);
    // Started last, once nothing can fail: a start that fails leaves no task holding the store.
    let (ledger_task, usage) = ledger.spawn(&audit);
    tasks.push(ledger_task);
    tasks.push(tokio::spawn(crate::feed::follow(store, books)));
    tasks.push(tokio::spawn(crate::tls::watch(tls.certificates)));
    tasks.extend(webhooks);
    Ok(Running {
        s3_addr,
        api_addr,
        s3_endpoint,
        api_url,
        grants,
        workflow,
        shares,
        admin_token,
        admin_token_path,
        replica_id,
        usage,
        audit,
        shutdown,
        listeners,
        tasks,
    })
}

/// This data directory's replica id, `r-` and 8 hex digits: made at random at first start and
/// kept in `replica.id`, so every gateway sharing a store, each with a data directory of its
/// own, is told apart (its audit chain, its metering).
pub fn replica_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join(REPLICA_ID_FILE);
    let id = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("r-{:08x}", rand::random::<u32>());
            crate::audit::files::replace(data_dir, REPLICA_ID_FILE, format!("{id}\n").as_bytes())?;
            tracing::info!(path = %path.display(), replica = %id, "made this gateway's replica id");
            id
        }
        Err(e) => return Err(e),
    };
    if !crate::audit::replicas::is_replica_id(&id) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: {id:?} is not a replica id (r- and 8 hex digits); remove the file to make a new one",
                path.display()
            ),
        ));
    }
    Ok(id)
}

/// The trail root: `configured` (`audit.dir`), else `<data dir>/audit`.
#[must_use]
pub fn audit_root(data_dir: &Path, configured: Option<&Path>) -> std::path::PathBuf {
    configured.map_or_else(|| data_dir.join(AUDIT_DIR), Path::to_owned)
}

/// The store the configuration names, and the key every gateway sharing it uses. A data
/// directory from before keys lived in the store hands its key over, so the credentials and
/// links it issued keep working.
async fn open_store(config: &Config) -> Result<(SharedStore, Key), StartError> {
    let store = match &config.store {
        crate::config::StoreLocation::DataDir => {
            crate::store::open_file(&config.data_dir.join(crate::config::STORE_FILE)).await?
        }
        crate::config::StoreLocation::Postgres(url) => {
            crate::store::open_postgres(url.expose()).await?
        }
    };
    let path = config.data_dir.join(CREDENTIAL_KEY_FILE);
    let local = Key::read_file(&path).map_err(|source| StartError::DataDir {
        path: path.display().to_string(),
        source,
    })?;
    let first = local.unwrap_or_else(Key::random);
    let key = crate::store::shared_key(&*store, "credential-key", first).await?;
    Ok((store, key))
}

/// The audit trail, and what this gateway counted under each grant: its usage row holds it
/// through one trail record, and one read of the trail both verifies it and counts what came
/// after; retention keeps every record the row does not hold yet.
async fn open_trail(
    config: &Config,
    store: &SharedStore,
    replica_id: &str,
    clock: &SharedClock,
) -> Result<(AuditLog, Arc<Meter>, Ledger), StartError> {
    let mut usage =
        crate::grant::usage::Resumed::load(store.clone(), replica_id, crate::s3::effect_of).await?;
    let dir = &config.data_dir;
    let root = audit_root(dir, config.audit.root.as_deref());
    // The trail from before replicas is counted once: before this gateway's usage row holds it.
    let replay_before = usage.is_fresh();
    let audit = AuditLog::open_replica(
        crate::audit::Replica {
            root: &root,
            id: replica_id,
            signing_key: &dir.join(crate::audit::SIGNING_KEY_FILE),
        },
        &config.audit,
        clock.clone(),
        (usage.hold(), replay_before),
        |record| usage.add(record),
    )?;
    let (meter, ledger) = usage.finish(&audit);
    Ok((audit, meter, ledger))
}

/// The work that runs beside the listeners: request timeouts, the policy folder watch,
/// records owed to the trail, and grant notices.
fn background(
    workflow: &Arc<Workflow>,
    grants: &Arc<Grants>,
    notifier: crate::notify::Notifier,
    clock: &SharedClock,
    deadlines_changed: Arc<tokio::sync::Notify>,
) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(run_timeouts(
            workflow.clone(),
            clock.clone(),
            deadlines_changed,
        )),
        tokio::spawn(watch_policies(workflow.clone())),
        tokio::spawn(run_owed_records(workflow.clone())),
        tokio::spawn(run_grant_notices(grants.clone(), notifier, clock.clone())),
    ]
}

/// Starts the S3 and control API listeners under the configured policy and one shutdown.
fn serve_both(
    config: &Config,
    tls: &Tls,
    (s3, door): (TcpListener, crate::s3::FrontDoor),
    (api, api_state): (TcpListener, Arc<crate::api::ApiState>),
) -> (crate::listen::Shutdown, Vec<JoinHandle<()>>) {
    let shutdown = crate::listen::Shutdown::default();
    let listen = |socket, tls: &Option<Arc<rustls::ServerConfig>>| crate::listen::Listener {
        socket,
        settings: config.listen,
        shutdown: shutdown.clone(),
        tls: tls.clone(),
    };
    let listeners = vec![
        tokio::spawn(crate::s3::serve(listen(s3, &tls.s3), door)),
        tokio::spawn(crate::api::serve(listen(api, &tls.api), api_state)),
    ];
    (shutdown, listeners)
}

/// Each listener's TLS configuration, and the certificates to watch for reloads.
struct Tls {
    s3: Option<Arc<rustls::ServerConfig>>,
    api: Option<Arc<rustls::ServerConfig>>,
    certificates: Vec<Arc<crate::tls::Certificate>>,
}

impl Tls {
    /// Loads every certificate and key named, once each (the two listeners share a pair
    /// given once); a file that cannot be used stops the start, naming it.
    fn load(config: &Config) -> Result<Tls, StartError> {
        let mut certificates: Vec<Arc<crate::tls::Certificate>> = Vec::new();
        let mut certificate = |files: &crate::tls::CertFiles| {
            if let Some(loaded) = certificates.iter().find(|c| c.files() == files) {
                return Ok::<_, StartError>(loaded.clone());
            }
            let loaded = crate::tls::Certificate::load(files.clone())?;
            certificates.push(loaded.clone());
            Ok(loaded)
        };
        let s3 = match &config.tls.s3 {
            Some(files) => Some(crate::tls::server_config(certificate(files)?, None)?),
            None => None,
        };
        let client_ca = config.tls.api_clients.as_ref().map(|c| c.ca.as_path());
        let api = match &config.tls.api {
            Some(files) => Some(crate::tls::server_config(certificate(files)?, client_ca)?),
            None => None,
        };
        Ok(Tls {
            s3,
            api,
            certificates,
        })
    }
}

/// The URL a listener is reached at: `https://` with TLS; an unspecified address
/// (`0.0.0.0`, `[::]`) is reached on loopback from this machine.
fn url(tls: bool, addr: SocketAddr) -> String {
    let scheme = if tls { "https" } else { "http" };
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("{scheme}://{addr}")
}

/// The policy folder's rules, or none (nothing can be requested) when no folder is set.
/// The policy folder's set and the files it was read from; none without a folder.
fn load_policies(
    config: &Config,
) -> Result<
    (
        crate::policy::PolicySet,
        Option<Vec<crate::policy::PolicySource>>,
    ),
    StartError,
> {
    Ok(if let Some(dir) = &config.policies {
        let sources = crate::policy::read_dir(dir)?;
        let set = crate::policy::parse_sources(&sources)?;
        tracing::info!(dir = %dir.display(), rules = set.rules.len(), labels = set.labels.len(), "policies loaded");
        (set, Some(sources))
    } else {
        tracing::warn!(
            "no policy folder (--policies): the policies in force are those another gateway sharing the store put there, if any; the admin can still grant directly"
        );
        (crate::policy::PolicySet::default(), None)
    })
}

/// Puts the folder's policies in force among the gateways sharing the store, or takes in
/// the stored set without a folder.
async fn share_policies(
    workflow: &Workflow,
    sources: Option<Vec<crate::policy::PolicySource>>,
) -> Result<(), StartError> {
    match workflow.share_policies(sources).await {
        Ok(_) => Ok(()),
        Err(crate::desk::WorkflowError::Policies(e)) => Err(StartError::Policies(e)),
        Err(crate::desk::WorkflowError::Store(e)) => Err(StartError::Store(e)),
        Err(other) => Err(StartError::Store(crate::store::StoreError::Db(
            other.to_string(),
        ))),
    }
}

/// Listens on `addr` and says which address that turned out to be (port 0 picks one).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr, source })?;
    Ok((listener, bound))
}

/// The S3 listener's front door: the S3 service and share links, over the same backend,
/// trail and usage meter.
fn front_door(
    config: &Config,
    books: &crate::feed::Books,
    audit: &crate::audit::AuditLog,
    meter: &Arc<crate::grant::usage::Meter>,
    backend: aws_sdk_s3::Client,
    clock: &SharedClock,
) -> Result<crate::s3::FrontDoor, StartError> {
    let service = crate::s3::service(
        books.grants.clone(),
        backend.clone(),
        clock.clone(),
        config.domain.as_deref(),
        audit.clone(),
        meter.clone(),
        books.uploads.clone(),
    )
    .map_err(StartError::Backend)?;
    Ok(crate::s3::FrontDoor {
        service,
        region: config.region.clone(),
        audit: audit.clone(),
        clock: clock.clone(),
        links: crate::s3::LinkServer {
            shares: books.shares.clone(),
            grants: books.grants.clone(),
            backend,
            audit: audit.clone(),
            meter: meter.clone(),
        },
    })
}

/// The ID-token verifier, when an identity provider is configured.
fn oidc(
    config: &Config,
    clock: &SharedClock,
) -> Result<Option<Arc<crate::identity::oidc::Oidc>>, StartError> {
    config
        .oidc
        .clone()
        .map(|c| crate::identity::oidc::Oidc::new(c, clock.clone()).map(Arc::new))
        .transpose()
        .map_err(StartError::Oidc)
}

fn load_or_create_admin_token(path: &Path) -> std::io::Result<Secret> {
    match std::fs::read_to_string(path) {
        Ok(token) => Ok(Secret::new(token.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = Secret::new_token("sesame_admin_");
            write_private_file(path, format!("{}\n", token.expose()).as_bytes())?;
            tracing::info!(path = %path.display(), "created the admin token");
            Ok(token)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::{REPLICA_ID_FILE, replica_id};

    #[test]
    fn a_replica_id_is_made_at_first_start_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let id = replica_id(dir.path()).unwrap();
        assert!(
            id.len() == 10
                && id.starts_with("r-")
                && id[2..].chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
        assert_eq!(replica_id(dir.path()).unwrap(), id);
        // One that is not an id (its chain's folder would not be found) stops the start.
        let path = dir.path().join(REPLICA_ID_FILE);
        std::fs::write(&path, "gw eu\n").unwrap();
        assert_eq!(
            replica_id(dir.path()).unwrap_err().to_string(),
            format!(
                "{}: \"gw eu\" is not a replica id (r- and 8 hex digits); remove the file to make a new one",
                path.display()
            )
        );
    }
}
