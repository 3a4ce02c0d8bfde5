//! The request desk: files requests against the policies, records approvals, denials and
//! withdrawals through the state machine in `request.rs`, and creates the grant when a
//! request is approved. Every change is durable before it is answered.

use std::sync::{Arc, RwLock};

use rand::RngCore;
use time::OffsetDateTime;

use crate::clock::SharedClock;
use crate::grant::{Approval, Change, GrantError, Grants, Revoked};
use crate::identity::{IdentityError, Users};
use crate::model::Principal;
use crate::model::Scope;
use crate::model::request::{
    self, AccessRequest, Actor, Event, Needs, Outcome, RequestError, RequestState,
};
use crate::notify::Notifier;
use crate::policy::{Ask, Decision, PolicySet};
use crate::record::{Lifecycle, Note};
use crate::store::{
    Change as StoreChange, Expect, Published, SharedStore, StoreError, Table, Write,
};

pub use self::policies::PolicyStatus;

/// How long a request may stay pending before it times out.
pub const DEFAULT_PENDING_TIMEOUT: time::Duration = time::Duration::hours(24);

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("{0}")]
    Denied(String),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("request {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("this request needs a fresh MFA code from the requester (--totp)")]
    RequesterMfa,
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Policies(#[from] crate::policy::PolicyError),
    /// The decision could not be recorded in the trail, so it was not taken. The trail's
    /// own error, as text: the desk sits below the trail and does not know its types.
    #[error("{0}")]
    Unrecorded(String),
}

/// What [`Workflow::revoke`] did.
#[derive(Debug)]
pub struct Revocation {
    pub revoked: Revoked,
    /// Why the revocation's record is not in the trail yet: it is kept in the store and
    /// written as soon as the trail can be.
    pub record_owed: Option<WorkflowError>,
}

/// Whether the request being settled was filed by this very call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filed {
    Now,
    Earlier,
}

/// What a requester asks for.
pub struct NewRequest {
    pub scope: Scope,
    pub duration: time::Duration,
    pub starts_at: Option<OffsetDateTime>,
    pub justification: Option<String>,
    pub totp: Option<String>,
}

pub struct Workflow {
    store: SharedStore,
    grants: Arc<Grants>,
    users: Arc<Users>,
    policies: RwLock<policies::Held>,
    policy_dir: Option<std::path::PathBuf>,
    requests: Published<AccessRequest>,
    /// Held from reading a request to storing what became of it, so two decisions on one
    /// request in this process (an approval and a denial, two approvals, an approval and the
    /// timeout) are applied one after the other, each to the other's result, and the trail
    /// holds only decisions taken. Another gateway's decision is caught by the store's
    /// compare-and-set instead, and this one decided again on top of it.
    desk: tokio::sync::Mutex<()>,
    /// Held while owed records move into the trail, so none is written twice by this
    /// process; leases in the store keep other gateways from writing them too.
    flushing: tokio::sync::Mutex<()>,
    /// This process as the holder of leases on work done once among the gateways.
    holder: String,
    /// The replica this gateway is, as records and the policy status name it.
    replica: String,
    clock: SharedClock,
    pending_timeout: time::Duration,
    /// Every request and approval needs a fresh MFA code, whatever the policy says.
    mfa_everywhere: bool,
    notifier: Notifier,
}

impl Workflow {
    pub async fn open(
        store: SharedStore,
        grants: Arc<Grants>,
        users: Arc<Users>,
        policies: PolicySet,
        policy_dir: Option<std::path::PathBuf>,
        clock: SharedClock,
        mfa_everywhere: bool,
    ) -> Result<Workflow, StoreError> {
        let requests = Published::default();
        for (revision, request) in crate::store::load::<AccessRequest>(&*store).await? {
            requests.publish(revision, request);
        }
        Ok(Workflow {
            store,
            grants,
            users,
            policies: RwLock::new(policies::Held::at_start(policies, policy_dir.as_deref())),
            policy_dir,
            requests,
            desk: tokio::sync::Mutex::new(()),
            flushing: tokio::sync::Mutex::new(()),
            holder: format!("p-{}", &new_id()[2..]),
            replica: "local".to_owned(),
            clock,
            pending_timeout: DEFAULT_PENDING_TIMEOUT,
            mfa_everywhere,
            notifier: Notifier::default(),
        })
    }

    /// Records request and grant events through `notifier` (into its trail) from now on.
    #[must_use]
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Names this gateway `replica` in what it stores for the others (the policy status).
    #[must_use]
    pub fn with_replica(mut self, replica: &str) -> Self {
        replica.clone_into(&mut self.replica);
        self
    }

    #[must_use]
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    #[must_use]
    pub fn users(&self) -> &Arc<Users> {
        &self.users
    }

    /// Files a request: the policy decides, the requester proves MFA where asked, and a
    /// request needing no approval becomes a grant at once.
    pub async fn file(
        &self,
        who: &Principal,
        new: NewRequest,
    ) -> Result<AccessRequest, WorkflowError> {
        let request = self
            .prepare(
                who,
                new.scope,
                new.duration,
                new.starts_at,
                new.justification,
                new.totp.as_deref(),
            )
            .await?;
        let (request, outcome) = request::file(request, self.clock.now());
        let _deciding = self.desk.lock().await;
        self.settle(request, outcome, Filed::Now, Expect::Absent)
            .await
    }

    /// A new request as the policy would take it: refused, or with what it needs.
    async fn prepare(
        &self,
        who: &Principal,
        scope: Scope,
        duration: time::Duration,
        starts_at: Option<OffsetDateTime>,
        justification: Option<String>,
        totp: Option<&str>,
    ) -> Result<AccessRequest, WorkflowError> {
        if who.admin {
            return Err(WorkflowError::Forbidden(
                "the admin token cannot file requests; use a user's token".into(),
            ));
        }
        let now = self.clock.now();
        let policies = self.policies();
        let ask = Ask {
            user: &who.name,
            groups: &who.groups,
            scope: &scope,
            duration,
            justification: justification.as_deref(),
        };
        let needs = match policies.decide(&ask) {
            Decision::Allowed(req) => req,
            Decision::Denied(why) => return Err(WorkflowError::Denied(why)),
        };
        if needs.requester_mfa || self.mfa_everywhere {
            let code = totp.ok_or(WorkflowError::RequesterMfa)?;
            self.users.verify_totp(&who.name, code, now).await?;
        }
        Ok(AccessRequest {
            id: new_id(),
            requester: who.name.clone(),
            scope,
            duration_seconds: duration.whole_seconds(),
            starts_at,
            justification,
            needs: Needs {
                rule: needs.rule,
                approvals: needs.approvals,
                approver_groups: needs.approver_groups,
                approver_mfa: needs.approver_mfa || self.mfa_everywhere,
                limits: needs.limits,
            },
            created_at: now,
            pending_until: now + self.pending_timeout,
            approvals: Vec::new(),
            state: RequestState::Pending,
            extends: None,
            grant_id: None,
        })
    }

    pub async fn approve(
        &self,
        who: &Principal,
        id: &str,
        totp: Option<&str>,
    ) -> Result<AccessRequest, WorkflowError> {
        let mfa = self.check_mfa(who, totp).await?;
        self.decide(
            id,
            &Event::Approve(Actor {
                user: &who.name,
                groups: &who.groups,
                mfa,
            }),
        )
        .await
    }

    pub async fn deny(
        &self,
        who: &Principal,
        id: &str,
        reason: &str,
        totp: Option<&str>,
    ) -> Result<AccessRequest, WorkflowError> {
        let mfa = self.check_mfa(who, totp).await?;
        let by = Actor {
            user: &who.name,
            groups: &who.groups,
            mfa,
        };
        self.decide(
            id,
            &Event::Deny {
                by,
                reason: reason.to_owned(),
            },
        )
        .await
    }

    pub async fn withdraw(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<AccessRequest, WorkflowError> {
        self.decide(
            id,
            &Event::Withdraw(Actor {
                user: &who.name,
                groups: &who.groups,
                mfa: false,
            }),
        )
        .await
    }

    /// The earliest deadline of a pending request, for the scheduler.
    #[must_use]
    pub fn next_deadline(&self) -> Option<OffsetDateTime> {
        self.requests
            .values()
            .into_iter()
            .filter(|r| r.state == RequestState::Pending)
            .map(|r| r.pending_until)
            .min()
    }

    pub fn get(&self, id: &str) -> Result<AccessRequest, WorkflowError> {
        self.requests
            .get(id)
            .ok_or_else(|| WorkflowError::NotFound(id.to_owned()))
    }

    /// Every request, for reports.
    #[must_use]
    pub fn all_requests(&self) -> Vec<AccessRequest> {
        self.requests.values()
    }

    /// What a caller may see: the admin everything, a user their own requests and those they
    /// could approve; newest first.
    #[must_use]
    pub fn list(&self, who: &Principal, pending_only: bool) -> Vec<AccessRequest> {
        let mut out: Vec<AccessRequest> = self
            .requests
            .values()
            .into_iter()
            .filter(|r| !pending_only || r.state == RequestState::Pending)
            .filter(|r| {
                who.admin
                    || r.requester == who.name
                    || who
                        .groups
                        .iter()
                        .any(|g| r.needs.approver_groups.contains(g))
            })
            .collect();
        out.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        out
    }

    /// Whether `who` approves for requests like the one that created `grant_id`.
    #[must_use]
    pub fn is_approver_of_grant(&self, who: &Principal, grant_id: &str) -> bool {
        self.requests
            .find(|r| {
                r.grant_id.as_deref() == Some(grant_id)
                    && who
                        .groups
                        .iter()
                        .any(|g| r.needs.approver_groups.contains(g))
            })
            .is_some()
    }

    async fn check_mfa(&self, who: &Principal, totp: Option<&str>) -> Result<bool, WorkflowError> {
        match totp {
            Some(code) => {
                self.users
                    .verify_totp(&who.name, code, self.clock.now())
                    .await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Applies one event to the request as stored, under the desk lock, and stores the
    /// result on condition that nobody (another gateway) changed the request meanwhile; when
    /// someone did, the event is applied again to what they stored (as often as
    /// [`crate::store::update`] tries).
    async fn decide(&self, id: &str, event: &Event<'_>) -> Result<AccessRequest, WorkflowError> {
        let _deciding = self.desk.lock().await;
        for _ in 0..crate::store::UPDATE_ATTEMPTS {
            let (revision, current) = crate::store::get::<AccessRequest>(&*self.store, id)
                .await?
                .ok_or_else(|| WorkflowError::NotFound(id.to_owned()))?;
            let (next, outcome) = request::apply(&current, event, self.clock.now())?;
            match self
                .settle(next, outcome, Filed::Earlier, Expect::At(revision))
                .await
            {
                Err(e) if lost_race(&e) => {
                    tracing::info!(request = %id, "request changed by another gateway meanwhile; deciding again");
                }
                done => return done,
            }
        }
        Err(StoreError::Conflict {
            table: Table::Requests,
            id: id.to_owned(),
        }
        .into())
    }

    /// Stores the request (on condition `expect`); an approved one gets its grant in the
    /// same transaction. The caller holds the desk lock.
    async fn settle(
        &self,
        mut request: AccessRequest,
        outcome: Outcome,
        filed: Filed,
        expect: Expect,
    ) -> Result<AccessRequest, WorkflowError> {
        let grant = match outcome {
            Outcome::Approved => {
                let change = self.grant_for(&request)?;
                request.grant_id = Some(change.grant_id().to_owned());
                Some(change)
            }
            Outcome::StillPending { .. }
            | Outcome::Denied
            | Outcome::Withdrawn
            | Outcome::TimedOut => None,
            Outcome::Unchanged => return Ok(request),
        };
        // Recorded before it is stored: a decision the trail cannot hold is not taken. The
        // webhooks hear of it from the committed trail.
        let notices = self.notices(&request, outcome, filed);
        self.notifier
            .record_durably(&notices)
            .map_err(|e| WorkflowError::Unrecorded(e.to_string()))?;
        let stored = match grant {
            // The grant and its approval are written together, or not at all.
            Some(change) => {
                let approval = Approval {
                    request: &request,
                    expect,
                };
                self.grants
                    .commit(change, Some(approval))
                    .await
                    .map(|(_, revision)| revision)
            }
            None => self
                .store
                .commit(vec![Write::put(&request, expect)])
                .await
                .map_err(GrantError::from),
        };
        let revision = match stored {
            Ok(revision) => revision,
            Err(e) => {
                let summary = format!(
                    "the change to request {} recorded just before was not stored: {e}",
                    request.id
                );
                self.notifier.record(Lifecycle::RequestNotStored(Note {
                    at: self.clock.now(),
                    summary,
                }));
                return Err(e.into());
            }
        };
        tracing::info!(request = %request.id, state = request.state.name(), requester = %request.requester, "request updated");
        self.requests.publish(revision, request.clone());
        Ok(request)
    }

    /// Takes in a committed change of a request, from this process or another gateway.
    pub fn apply(&self, change: &StoreChange) -> Result<(), StoreError> {
        self.requests.apply(change).map(|_| ())
    }

    /// What an approved request does to the grant book, for [`Grants::commit`] to apply: an
    /// extension moves its grant's end; a request overlapping a grant the requester already
    /// holds on the same scope merges into it (the later end wins) rather than cutting it
    /// short; otherwise a new grant.
    fn grant_for(&self, request: &AccessRequest) -> Result<Change, WorkflowError> {
        let duration = time::Duration::seconds(request.duration_seconds);
        let now = self.clock.now();
        if let Some(id) = &request.extends {
            let current = self.grants.get(id)?;
            return Ok(Change::Extend {
                id: id.clone(),
                expires_at: current.expires_at.max(now) + duration,
            });
        }
        let starts = request.starts_at.unwrap_or(now).max(now);
        let ends = starts + duration;
        let overlapping = self.grants.list().into_iter().find(|g| {
            g.principal == request.requester
                && g.scope == request.scope
                && matches!(
                    g.state(now),
                    crate::model::GrantState::Active | crate::model::GrantState::Scheduled
                )
                && g.starts_at <= ends
                && starts <= g.expires_at
        });
        match overlapping {
            Some(g) if g.starts_at <= starts => Ok(Change::Extend {
                id: g.id,
                expires_at: g.expires_at.max(ends),
            }),
            Some(_) | None => {
                let grant = self.grants.draft(
                    &request.requester,
                    request.scope.clone(),
                    request.starts_at,
                    duration,
                    request.needs.limits,
                )?;
                Ok(Change::Create(Box::new(grant)))
            }
        }
    }

    /// Asks to extend a grant the caller holds by `extra`; the policy sees the whole window
    /// that would remain, so an extension cannot exceed what a fresh request could get.
    pub async fn extend(
        &self,
        who: &Principal,
        grant_id: &str,
        extra: time::Duration,
        justification: Option<String>,
        totp: Option<&str>,
    ) -> Result<AccessRequest, WorkflowError> {
        let grant = self.grants.get(grant_id)?;
        if grant.principal != who.name {
            return Err(WorkflowError::Forbidden(format!(
                "grant {grant_id} belongs to {}; only they can extend it",
                grant.principal
            )));
        }
        let now = self.clock.now();
        match grant.state(now) {
            crate::model::GrantState::Active | crate::model::GrantState::Scheduled => {}
            state @ (crate::model::GrantState::Expired | crate::model::GrantState::Revoked) => {
                return Err(GrantError::Ended {
                    id: grant_id.to_owned(),
                    state: state.as_str(),
                }
                .into());
            }
        }
        let window = (grant.expires_at - now.max(grant.starts_at)) + extra;
        let mut request = self
            .prepare(who, grant.scope.clone(), window, None, justification, totp)
            .await?;
        request.duration_seconds = extra.whole_seconds();
        request.extends = Some(grant_id.to_owned());
        let (request, outcome) = request::file(request, now);
        let _deciding = self.desk.lock().await;
        self.settle(request, outcome, Filed::Now, Expect::Absent)
            .await
    }
}

/// Whether a decision failed only because the request was changed by someone else after it
/// was read.
fn lost_race(e: &WorkflowError) -> bool {
    matches!(
        e,
        WorkflowError::Grant(GrantError::Store(StoreError::Conflict {
            table: Table::Requests,
            ..
        })) | WorkflowError::Store(StoreError::Conflict {
            table: Table::Requests,
            ..
        })
    )
}

fn new_id() -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("r-{}", hex::encode(bytes))
}

mod announce;
mod once;
mod policies;
#[cfg(test)]
mod races;
#[cfg(test)]
mod recorded;
#[cfg(test)]
mod tests;
