//! The policies the desk decides by: the set in force, where it came from, and reloading it,
//! where an invalid folder changes nothing in force. Gateways sharing a store share one set:
//! a load on any of them (at start, on a change to its folder, on `policy reload`) publishes
//! the files to the store, and every gateway takes in what the store holds through the feed.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Workflow, WorkflowError};
use crate::policy::{PolicySet, PolicySource};
use crate::record::{Lifecycle, Note};
use crate::store::{Change, Revision, Step, StoreError, Stored, Table};

/// Where the policies come from and how the last reload went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyStatus {
    pub dir: Option<String>,
    pub rules: usize,
    pub labels: usize,
    /// Counts the loads that changed the set in force, among all the gateways sharing the
    /// store; it moves when a reload took effect.
    pub generation: u64,
    /// The replica whose load put the set in force (none: this process's own folder, not
    /// shared yet).
    pub loaded_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub loaded_at: Option<OffsetDateTime>,
    /// Why the newest files were refused; the previous set stays in force meanwhile.
    pub last_error: Option<String>,
}

/// The policy files in force among the gateways sharing the store, as the load that put
/// them there read them. Each gateway parses them itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InForce {
    pub generation: u64,
    pub dir: String,
    pub sources: Vec<PolicySource>,
    pub loaded_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub loaded_at: OffsetDateTime,
}

/// The one row of [`Table::Policies`].
const IN_FORCE: &str = "in-force";

impl Stored for InForce {
    const TABLE: Table = Table::Policies;
    const WHAT: &'static str = "policy set";
    fn row_id(&self) -> String {
        IN_FORCE.to_owned()
    }
}

/// The set this process decides by, its status, and the store revision it came from (0:
/// this process's own start-up load, not from the store).
pub(super) struct Held {
    set: Arc<PolicySet>,
    status: PolicyStatus,
    revision: Revision,
}

impl Held {
    pub(super) fn at_start(set: PolicySet, dir: Option<&std::path::Path>) -> Held {
        Held {
            status: PolicyStatus {
                dir: dir.map(|d| d.display().to_string()),
                rules: set.rules.len(),
                labels: set.labels.len(),
                generation: 1,
                loaded_by: None,
                loaded_at: None,
                last_error: None,
            },
            set: Arc::new(set),
            revision: 0,
        }
    }
}

impl Workflow {
    #[must_use]
    pub fn policies(&self) -> Arc<PolicySet> {
        self.held().set.clone()
    }

    #[must_use]
    pub fn policy_status(&self) -> PolicyStatus {
        self.held().status.clone()
    }

    #[must_use]
    pub fn policy_dir(&self) -> Option<&std::path::Path> {
        self.policy_dir.as_deref()
    }

    /// At start: with a policy folder, its files (`sources`, already validated) become the
    /// set in force for every gateway unless the store holds the same ones; without one,
    /// this gateway takes in the set the store holds, if any.
    pub async fn share_policies(
        &self,
        sources: Option<Vec<PolicySource>>,
    ) -> Result<PolicyStatus, WorkflowError> {
        if let Some(sources) = sources {
            let set = crate::policy::parse_sources(&sources)?;
            return self.publish(sources, set).await;
        }
        if let Some((revision, stored)) =
            crate::store::get::<InForce>(&*self.store, IN_FORCE).await?
        {
            self.take_in(revision, &stored);
        }
        Ok(self.policy_status())
    }

    /// Reloads the policy folder and puts it in force on every gateway sharing the store.
    /// An invalid folder changes nothing in force: the last good set stays, and the error is
    /// kept in the status and logged loudly.
    pub async fn reload_policies(&self) -> Result<PolicyStatus, WorkflowError> {
        let Some(dir) = &self.policy_dir else {
            return Err(crate::policy::PolicyError(vec![
                "no policy folder was configured (--policies)".into(),
            ])
            .into());
        };
        let loaded = crate::policy::read_dir(dir)
            .and_then(|sources| Ok((crate::policy::parse_sources(&sources)?, sources)));
        match loaded {
            Ok((set, sources)) => self.publish(sources, set).await,
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "POLICIES ARE INVALID: keeping the last good set");
                self.held_mut().status.last_error = Some(e.to_string());
                Err(e.into())
            }
        }
    }

    /// Takes in the set another gateway (or this one) put in force.
    pub fn apply_policies(&self, change: &Change) -> Result<(), StoreError> {
        if let Some(bytes) = &change.value {
            let stored: InForce = crate::store::decode(&change.id, bytes)?;
            self.take_in(change.revision, &stored);
        }
        Ok(())
    }

    /// Stores `sources` as the set in force unless the store holds the same files, and
    /// holds it here; a change is recorded in the trail.
    async fn publish(
        &self,
        sources: Vec<PolicySource>,
        set: PolicySet,
    ) -> Result<PolicyStatus, WorkflowError> {
        let dir = self
            .policy_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let at = self.clock.now();
        let updated =
            crate::store::update::<InForce, (), StoreError>(&*self.store, IN_FORCE, |current| {
                if current.is_some_and(|c| c.sources == sources) {
                    return Ok(Step::Keep(()));
                }
                Ok(Step::Write {
                    next: InForce {
                        generation: current.map_or(0, |c| c.generation) + 1,
                        dir: dir.clone(),
                        sources: sources.clone(),
                        loaded_by: self.replica.clone(),
                        loaded_at: at,
                    },
                    also: Vec::new(),
                    answer: (),
                })
            })
            .await?;
        let stored = updated.value.expect("the row was read or written");
        let mut status = self.hold(updated.revision, &stored, set);
        // These files loaded: whatever was wrong with earlier ones is over.
        self.held_mut().status.last_error = None;
        status.last_error = None;
        if updated.wrote {
            tracing::info!(dir = %dir, rules = status.rules, labels = status.labels, generation = stored.generation, "policies reloaded");
            self.notifier.record(Lifecycle::PolicyReloaded(Note {
                at,
                summary: format!(
                    "policies reloaded from {dir} on {}: {} rules, {} labels (generation {})",
                    self.replica, status.rules, status.labels, stored.generation
                ),
            }));
        }
        Ok(status)
    }

    /// Parses a stored set and holds it; a set this build cannot read leaves the one in
    /// force, loudly.
    fn take_in(&self, revision: Revision, stored: &InForce) {
        if revision <= self.held().revision {
            return;
        }
        match crate::policy::parse_sources(&stored.sources) {
            Ok(set) => {
                let status = self.hold(revision, stored, set);
                tracing::info!(loaded_by = %stored.loaded_by, rules = status.rules, labels = status.labels, generation = stored.generation, "policies taken in from the store");
            }
            Err(e) => {
                tracing::error!(loaded_by = %stored.loaded_by, error = %e, "POLICIES IN THE STORE ARE INVALID HERE: keeping the last good set");
                self.held_mut().status.last_error = Some(format!(
                    "the set put in force by {} does not load on this gateway:\n{e}",
                    stored.loaded_by
                ));
            }
        }
    }

    /// Holds `set`, stored at `revision` as `stored`, unless a later one is held already.
    fn hold(&self, revision: Revision, stored: &InForce, set: PolicySet) -> PolicyStatus {
        let mut held = self.held_mut();
        if revision > held.revision {
            *held = Held {
                status: PolicyStatus {
                    dir: Some(stored.dir.clone()).filter(|d| !d.is_empty()),
                    rules: set.rules.len(),
                    labels: set.labels.len(),
                    generation: stored.generation,
                    loaded_by: Some(stored.loaded_by.clone()),
                    loaded_at: Some(stored.loaded_at),
                    last_error: None,
                },
                set: Arc::new(set),
                revision,
            };
        }
        held.status.clone()
    }

    fn held(&self) -> std::sync::RwLockReadGuard<'_, Held> {
        self.policies
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn held_mut(&self) -> std::sync::RwLockWriteGuard<'_, Held> {
        self.policies
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
