//! The `[audit]` table: how the trail is kept (rotation, retention, forwarding) and where
//! (the trail root every replica's chain lives under), checked into [`crate::audit::Settings`].

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use super::{ConfigError, Layer, secret};
use crate::secret::Secret;

layered! {
    /// The `[audit]` table: rotation, retention and forwarding of the trail.
    #[derive(Debug, Default, Clone, Args, Deserialize)]
    #[command(next_help_heading = "Audit trail")]
    #[serde(default, deny_unknown_fields)]
    pub struct AuditSettings {
        /// Start a new audit trail file once the current one is this many bytes
        /// [default: 67108864 (64 MiB)]
        #[arg(long = "audit-rotate-bytes")]
        pub rotate_bytes: Option<u64>,
        /// Delete audit trail files whose newest record is older than this many days
        /// [default: keep all]
        #[arg(long = "audit-retain-days")]
        pub retain_days: Option<u32>,
        /// Also POST every committed batch of audit records here (application/x-ndjson).
        #[arg(long = "audit-forward-url")]
        pub forward_url: Option<String>,
        /// Key of the forwarded batches' `X-Sesame-Signature`; no flag:
        /// `SESAME_AUDIT_FORWARD_SECRET`.
        #[arg(skip)]
        pub forward_secret: Option<Secret>,
        /// File holding the key for the X-Sesame-Signature HMAC of forwarded audit records (or
        /// the key itself in `SESAME_AUDIT_FORWARD_SECRET`; never in a flag, where `ps` shows it)
        #[arg(long = "audit-forward-secret-file", value_name = "FILE")]
        pub forward_secret_file: Option<PathBuf>,
        /// The trail root: each replica writes its own chain in the folder named by its
        /// replica id (`replica.id` in its data directory), so replicas may share one root
        /// [default: <data-dir>/audit]
        #[arg(long = "audit-dir", value_name = "DIR")]
        pub dir: Option<PathBuf>,
    }
}

/// The `[audit]` settings, checked.
pub(super) fn resolve(a: AuditSettings) -> Result<crate::audit::Settings, ConfigError> {
    let rotate_bytes = a.rotate_bytes.unwrap_or(crate::audit::DEFAULT_ROTATE_BYTES);
    if rotate_bytes == 0 {
        return Err(ConfigError(
            "audit rotate_bytes 0 is too small: give at least 1".into(),
        ));
    }
    if a.retain_days == Some(0) {
        return Err(ConfigError(
            "audit retain_days 0 would delete the trail as it is written: give at least 1, or leave it out to keep everything".into(),
        ));
    }
    let secret = secret(
        a.forward_secret,
        a.forward_secret_file,
        "audit forward secret",
    )?;
    let forward = match (a.forward_url, secret) {
        (Some(url), secret) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "audit forward_url {url:?} must be http:// or https://"
                )));
            }
            Some(crate::audit::forward::Target::new(url, secret))
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
        retain_days: a.retain_days,
        forward,
        root: a.dir,
    })
}
