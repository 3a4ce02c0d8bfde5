//! The policies the desk decides by: the set in force, where it came from, and reloading it,
//! where an invalid folder changes nothing in force.

use std::sync::Arc;

use super::Workflow;
use crate::policy::PolicySet;
use crate::record::{Lifecycle, Note};

/// Where the policies come from and how the last reload went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyStatus {
    pub dir: Option<String>,
    pub rules: usize,
    pub labels: usize,
    /// Counts successful loads; it moves when a reload took effect.
    pub generation: u64,
    /// Why the newest files were refused; the previous set stays in force meanwhile.
    pub last_error: Option<String>,
}

impl Workflow {
    #[must_use]
    pub fn policies(&self) -> Arc<PolicySet> {
        self.policies
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    #[must_use]
    pub fn policy_status(&self) -> PolicyStatus {
        self.policy_status
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    #[must_use]
    pub fn policy_dir(&self) -> Option<&std::path::Path> {
        self.policy_dir.as_deref()
    }

    /// Reloads the policy folder. An invalid folder changes nothing in force: the last good
    /// set stays, and the error is kept in the status and logged loudly.
    pub fn reload_policies(&self) -> Result<PolicyStatus, crate::policy::PolicyError> {
        let Some(dir) = &self.policy_dir else {
            return Err(crate::policy::PolicyError(vec![
                "no policy folder was configured (--policies)".into(),
            ]));
        };
        let mut status = self
            .policy_status
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match crate::policy::load_dir(dir) {
            Ok(set) => {
                status.rules = set.rules.len();
                status.labels = set.labels.len();
                status.generation += 1;
                status.last_error = None;
                *self
                    .policies
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
                tracing::info!(dir = %dir.display(), rules = status.rules, labels = status.labels, "policies reloaded");
                let summary = format!(
                    "policies reloaded from {}: {} rules, {} labels",
                    dir.display(),
                    status.rules,
                    status.labels
                );
                self.notifier.record(Lifecycle::PolicyReloaded(Note {
                    at: self.clock.now(),
                    summary,
                }));
                Ok(status.clone())
            }
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "POLICIES ARE INVALID: keeping the last good set");
                status.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }
}
