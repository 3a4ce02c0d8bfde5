//! The book of grants and credentials: written to the store first, then published in memory
//! so the data path reads without touching the store. Each grant is published through a
//! `watch` channel, so transfers under it see a revocation the moment it happens.

use rand::RngCore;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::IssuedCredential;
use super::credential::{new_access_key_id, secret_for, session_token_for, verify_session_token};
use crate::clock::SharedClock;
use crate::model::request::AccessRequest;
use crate::model::{Credential, Grant, GrantState, Limits, Scope};
use crate::secret::{Key, Secret};
use crate::store::{
    Change as StoreChange, Expect, Freshness, OwedRecord, Published, Revision, SharedStore, Step,
    StoreError, Table, Write,
};

/// The current version of one grant; cloned receivers follow revocations and extensions.
pub type LiveGrant = watch::Receiver<Grant>;

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("grant {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("grant {id} is {state}: no new credentials can be issued for it")]
    Ended { id: String, state: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Longest grant an operator can create directly; policy narrows it further later.
pub const MAX_GRANT_DURATION: time::Duration = time::Duration::days(7);

/// The grants and credentials of the store, kept in memory so the data path never waits
/// for the store. Writes go to the store first, as serialised updates of the stored version
/// ([`crate::store::update`]); what is committed (here, or by another gateway sharing the
/// store) is published through [`Grants::apply`].
pub struct Grants {
    store: SharedStore,
    clock: SharedClock,
    /// Woken whenever a grant is created, extended or revoked: deadlines moved.
    changed: std::sync::Arc<tokio::sync::Notify>,
    key: Key,
    published: Published<Grant>,
    credentials: Published<Credential>,
    /// How current these copies are; the feed marks it, the data path checks it.
    freshness: Freshness,
}

/// What an approval, or the admin, does to the book; applied by [`Grants::commit`] to the
/// stored version, never to a copy read earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new grant, from [`Grants::draft`].
    Create(Box<Grant>),
    /// Moves the end of a grant that has not ended to `expires_at`; nothing when it already
    /// ends then or later.
    Extend {
        id: String,
        expires_at: OffsetDateTime,
    },
}

impl Change {
    /// The grant this change creates or extends.
    #[must_use]
    pub fn grant_id(&self) -> &str {
        match self {
            Change::Create(grant) => &grant.id,
            Change::Extend { id, .. } => id,
        }
    }
}

/// The request whose approval makes a change, written in the same transaction as the grant,
/// on condition that it is still as the approver read it.
pub struct Approval<'a> {
    pub request: &'a AccessRequest,
    pub expect: Expect,
}

impl Approval<'_> {
    fn write(&self) -> Write {
        Write::put(self.request, self.expect)
    }
}

/// What a revocation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// Revoked by this call.
    Now(Grant),
    /// It had already ended (revoked or expired); nothing changed and nothing is recorded.
    Already(Grant),
}

impl Revoked {
    #[must_use]
    pub fn grant(&self) -> &Grant {
        match self {
            Revoked::Now(grant) | Revoked::Already(grant) => grant,
        }
    }
}

/// What the S3 front end learns from an access key.
pub struct Bound {
    pub credential: Credential,
    pub grant: LiveGrant,
}

impl Grants {
    /// Loads every stored grant and credential; nothing is lost across a restart.
    pub async fn open(
        store: SharedStore,
        clock: SharedClock,
        key: Key,
    ) -> Result<Grants, StoreError> {
        let freshness = Freshness::new(store.describe(), crate::store::STALE_AFTER);
        let book = Grants {
            store,
            clock,
            key,
            changed: std::sync::Arc::default(),
            published: Published::default(),
            credentials: Published::default(),
            freshness,
        };
        for (revision, grant) in crate::store::load::<Grant>(&*book.store).await? {
            book.published.publish(revision, grant);
        }
        for (revision, credential) in crate::store::load::<Credential>(&*book.store).await? {
            book.credentials.publish(revision, credential);
        }
        Ok(book)
    }

    #[must_use]
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The book refusing the data path once its last read of the store is older than `bound`
    /// (instead of [`crate::store::STALE_AFTER`]).
    #[must_use]
    pub fn with_stale_after(mut self, bound: std::time::Duration) -> Self {
        self.freshness = Freshness::new(self.store.describe(), bound);
        self
    }

    /// How current the book's copies of the store are.
    #[must_use]
    pub fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    /// Notified whenever a deadline may have moved.
    #[must_use]
    pub fn changed(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// Takes in a committed change of a grant or a credential (from this process or another
    /// sharing the store); an older version than the one published is ignored.
    pub fn apply(&self, change: &StoreChange) -> Result<(), StoreError> {
        match change.table {
            Table::Grants => {
                if self.published.apply(change)? {
                    self.changed.notify_one();
                }
            }
            Table::Credentials => {
                self.credentials.apply(change)?;
            }
            Table::Users
            | Table::Requests
            | Table::Shares
            | Table::Owed
            | Table::Uploads
            | Table::Keys
            | Table::Claims
            | Table::Usage
            | Table::Policies => {}
        }
        Ok(())
    }

    /// Publishes `grant` as committed at `revision`, unless a later version already is.
    fn publish(&self, revision: Revision, grant: Grant) {
        if self.published.publish(revision, grant) {
            self.changed.notify_one();
        }
    }

    /// Records that a deadline notice is being sent for a grant, on the stored version.
    /// `false`: nothing to send (already sent, or the grant was revoked).
    pub async fn mark_notified(&self, id: &str, notice: &str) -> Result<bool, GrantError> {
        self.update(id, |current| {
            if current.revoked_at.is_some() || current.notices.iter().any(|n| n == notice) {
                return Ok(Step::Keep(false));
            }
            let mut next = current.clone();
            next.notices.push(notice.to_owned());
            Ok(Step::Write {
                next,
                also: vec![],
                answer: true,
            })
        })
        .await
    }

    /// A grant with no limits beyond its scope and window.
    pub async fn create(
        &self,
        principal: &str,
        scope: Scope,
        starts_at: Option<OffsetDateTime>,
        duration: time::Duration,
    ) -> Result<Grant, GrantError> {
        self.create_limited(principal, scope, starts_at, duration, Limits::default())
            .await
    }

    pub async fn create_limited(
        &self,
        principal: &str,
        scope: Scope,
        starts_at: Option<OffsetDateTime>,
        duration: time::Duration,
        limits: Limits,
    ) -> Result<Grant, GrantError> {
        let grant = self.draft(principal, scope, starts_at, duration, limits)?;
        let (grant, _) = self.commit(Change::Create(Box::new(grant)), None).await?;
        Ok(grant)
    }

    /// A new grant, checked but not yet written: [`Grants::commit`] writes it.
    pub fn draft(
        &self,
        principal: &str,
        scope: Scope,
        starts_at: Option<OffsetDateTime>,
        duration: time::Duration,
        limits: Limits,
    ) -> Result<Grant, GrantError> {
        let now = self.clock.now();
        if principal.trim().is_empty() {
            return Err(GrantError::Invalid(
                "a grant needs a principal (who it is for)".into(),
            ));
        }
        if duration <= time::Duration::ZERO || duration > MAX_GRANT_DURATION {
            return Err(GrantError::Invalid(format!(
                "duration must be between 1s and {}h, got {}s",
                MAX_GRANT_DURATION.whole_hours(),
                duration.whole_seconds()
            )));
        }
        let starts_at = starts_at.unwrap_or(now).max(now);
        Ok(Grant {
            id: new_id("g-"),
            principal: principal.trim().to_owned(),
            scope,
            created_at: now,
            starts_at,
            expires_at: starts_at + duration,
            revoked_at: None,
            revoked_by: None,
            notices: Vec::new(),
            limits,
        })
    }

    /// Moves the end of a grant that has not ended to `expires_at` (later only). Transfers
    /// under it see the new deadline at once.
    pub async fn extend(&self, id: &str, expires_at: OffsetDateTime) -> Result<Grant, GrantError> {
        let change = Change::Extend {
            id: id.to_owned(),
            expires_at,
        };
        let (grant, _) = self.commit(change, None).await?;
        Ok(grant)
    }

    /// Applies a change to the stored version and writes it (with the request that approved
    /// it, in the same transaction, on condition the request is as the approver read it),
    /// then publishes it. An extension of a grant that ended meanwhile (revoked, say) is
    /// refused, and nothing is written. A conflict on the request is returned for the desk
    /// to decide again. Returns the grant and the revision of the commit.
    pub async fn commit(
        &self,
        change: Change,
        approval: Option<Approval<'_>>,
    ) -> Result<(Grant, Revision), GrantError> {
        match change {
            Change::Create(grant) => {
                let grant = *grant;
                let mut writes = vec![Write::put(&grant, Expect::Absent)];
                writes.extend(approval.as_ref().map(Approval::write));
                let revision = self.store.commit(writes).await?;
                self.publish(revision, grant.clone());
                tracing::info!(grant = %grant.id, principal = %grant.principal, scope = %grant.scope.uri(), expires_at = %grant.expires_at, "grant created");
                Ok((grant, revision))
            }
            Change::Extend { id, expires_at } => {
                let now = self.clock.now();
                let also: Vec<Write> = approval.as_ref().map(Approval::write).into_iter().collect();
                let updated =
                    crate::store::update::<Grant, (), GrantError>(&*self.store, &id, |current| {
                        let current = current.ok_or_else(|| GrantError::NotFound(id.clone()))?;
                        Ok(match extended(current, expires_at, now)? {
                            Some(next) => Step::Write {
                                next,
                                also: also.clone(),
                                answer: (),
                            },
                            None => Step::Keep(()),
                        })
                    })
                    .await?;
                let grant = updated.value.expect("an extended grant exists");
                let mut revision = updated.revision;
                if updated.wrote {
                    self.publish(revision, grant.clone());
                    tracing::info!(grant = %grant.id, expires_at = %grant.expires_at, "grant extended");
                } else if !also.is_empty() {
                    // Already ends then or later: only the approval is written.
                    revision = self.store.commit(also).await?;
                }
                Ok((grant, revision))
            }
        }
    }

    /// Revokes a grant; one that already ended stays as it was, and the caller is told so.
    pub async fn revoke(&self, id: &str, by: &str) -> Result<Revoked, GrantError> {
        self.revoke_inner(id, by, None::<fn(&Grant) -> OwedRecord>)
            .await
    }

    /// [`Grants::revoke`], storing the lifecycle record `owe` makes of the revoked grant in
    /// the same transaction, so the record survives a trail that cannot be written (and a
    /// crash) until it is moved into the trail.
    pub async fn revoke_owing(
        &self,
        id: &str,
        by: &str,
        owe: impl Fn(&Grant) -> OwedRecord,
    ) -> Result<Revoked, GrantError> {
        self.revoke_inner(id, by, Some(owe)).await
    }

    async fn revoke_inner(
        &self,
        id: &str,
        by: &str,
        owe: Option<impl Fn(&Grant) -> OwedRecord>,
    ) -> Result<Revoked, GrantError> {
        let now = self.clock.now();
        let revoked = self
            .update(id, |current| {
                match current.state(now) {
                    GrantState::Revoked | GrantState::Expired => {
                        return Ok(Step::Keep(false));
                    }
                    GrantState::Active | GrantState::Scheduled => {}
                }
                let next = Grant {
                    revoked_at: Some(now),
                    revoked_by: Some(by.to_owned()),
                    ..current.clone()
                };
                let also = owe
                    .as_ref()
                    .map(|owe| Write::put(&owe(&next), Expect::Absent))
                    .into_iter()
                    .collect();
                Ok(Step::Write {
                    next,
                    also,
                    answer: true,
                })
            })
            .await?;
        let grant = self.get(id)?;
        if revoked {
            tracing::info!(grant = %id, by, "grant revoked");
            Ok(Revoked::Now(grant))
        } else {
            Ok(Revoked::Already(grant))
        }
    }

    /// One serialised update of a grant that exists, published once committed. The one rule
    /// every writer shares holds here: a revocation is never undone.
    async fn update<R>(
        &self,
        id: &str,
        decide: impl FnMut(&Grant) -> Result<Step<Grant, R>, GrantError>,
    ) -> Result<R, GrantError> {
        Ok(self.update_at(id, decide).await?.0)
    }

    /// [`Grants::update`], also saying at which revision the grant now is.
    async fn update_at<R>(
        &self,
        id: &str,
        mut decide: impl FnMut(&Grant) -> Result<Step<Grant, R>, GrantError>,
    ) -> Result<(R, Revision), GrantError> {
        let missing = || GrantError::NotFound(id.to_owned());
        let done = self
            .published
            .update(&*self.store, id, missing, |current| {
                let step = decide(current)?;
                if let Step::Write { next, .. } = &step
                    && current.revoked_at.is_some()
                    && next.revoked_at != current.revoked_at
                {
                    return Err(GrantError::Ended {
                        id: current.id.clone(),
                        state: GrantState::Revoked.as_str(),
                    });
                }
                Ok(step)
            })
            .await?;
        // Deadlines may have moved.
        self.changed.notify_one();
        Ok(done)
    }

    pub fn get(&self, id: &str) -> Result<Grant, GrantError> {
        self.published
            .get(id)
            .ok_or_else(|| GrantError::NotFound(id.to_owned()))
    }

    /// All grants, newest first.
    #[must_use]
    pub fn list(&self) -> Vec<Grant> {
        let mut all = self.published.values();
        all.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        all
    }

    /// Issues a new credential bound to a grant that has not ended.
    pub async fn issue_credential(&self, grant_id: &str) -> Result<IssuedCredential, GrantError> {
        let credential = self.draft_credential(grant_id)?;
        self.commit_credential(credential).await
    }

    /// A new credential for a grant that has not ended, checked but not yet stored: the
    /// control API records it in the trail first, then [`Grants::commit_credential`] stores it.
    pub fn draft_credential(&self, grant_id: &str) -> Result<Credential, GrantError> {
        let grant = self.get(grant_id)?;
        still_open(&grant, self.clock.now())?;
        Ok(Credential {
            access_key_id: new_access_key_id(),
            grant_id: grant.id.clone(),
            principal: grant.principal.clone(),
            created_at: self.clock.now(),
        })
    }

    /// Stores a drafted credential, if its grant has still not ended, and hands out its
    /// secret and session token (derived, never stored). The grant is written back unchanged
    /// in the same transaction, so a revocation committed meanwhile refuses the credential.
    pub async fn commit_credential(
        &self,
        credential: Credential,
    ) -> Result<IssuedCredential, GrantError> {
        let now = self.clock.now();
        let stored = Write::put(&credential, Expect::Absent);
        let (grant, revision) = self
            .update_at(&credential.grant_id, |current| {
                still_open(current, now)?;
                Ok(Step::Write {
                    next: current.clone(),
                    also: vec![stored.clone()],
                    answer: current.clone(),
                })
            })
            .await?;
        self.credentials.publish(revision, credential.clone());
        Ok(IssuedCredential {
            secret_access_key: secret_for(&self.key, &credential.access_key_id),
            session_token: session_token_for(&self.key, &credential.access_key_id, &grant.id),
            access_key_id: credential.access_key_id,
            expiration: grant.expires_at,
            grant_id: grant.id,
        })
    }

    /// The secret a request signed with `access_key_id` must have used.
    #[must_use]
    pub fn secret_for(&self, access_key_id: &str) -> Option<Secret> {
        self.credentials
            .contains(access_key_id)
            .then(|| secret_for(&self.key, access_key_id))
    }

    /// [`Grants::secret_for`], also for a credential issued through another gateway a moment
    /// ago whose change the feed has not brought yet: a key this book does not hold is looked
    /// up in the store once (with its grant), and kept when it is there.
    pub async fn secret_for_any(&self, access_key_id: &str) -> Option<Secret> {
        if let Some(secret) = self.secret_for(access_key_id) {
            return Some(secret);
        }
        let fetched = async {
            let (revision, credential) =
                crate::store::get::<Credential>(&*self.store, access_key_id)
                    .await?
                    .ok_or(None)?;
            let (at, grant) = crate::store::get::<Grant>(&*self.store, &credential.grant_id)
                .await?
                .ok_or(None)?;
            self.publish(at, grant);
            self.credentials.publish(revision, credential);
            Ok::<_, Option<StoreError>>(())
        };
        if let Err(Some(e)) = fetched.await {
            tracing::warn!(error = %e, "the store could not be asked for an access key");
        }
        self.secret_for(access_key_id)
    }

    /// The credential and the live grant behind an access key, if the session token matches.
    pub fn bind(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<Bound, BindError> {
        let credential = self
            .credentials
            .get(access_key_id)
            .ok_or(BindError::UnknownKey)?;
        let token = session_token.ok_or(BindError::MissingToken)?;
        if !verify_session_token(&self.key, access_key_id, &credential.grant_id, token) {
            return Err(BindError::BadToken);
        }
        let grant = self
            .published
            .subscribe(&credential.grant_id)
            .ok_or(BindError::UnknownKey)?;
        Ok(Bound { credential, grant })
    }

    /// Follows one grant, for what lives under it without a credential (share links).
    #[must_use]
    pub fn subscribe(&self, id: &str) -> Option<LiveGrant> {
        self.published.subscribe(id)
    }
}

/// Refuses a grant that has ended (expired or revoked): nothing new may be bound to it.
fn still_open(grant: &Grant, now: OffsetDateTime) -> Result<(), GrantError> {
    let state = grant.state(now);
    match state {
        GrantState::Active | GrantState::Scheduled => Ok(()),
        GrantState::Expired | GrantState::Revoked => Err(GrantError::Ended {
            id: grant.id.clone(),
            state: state.as_str(),
        }),
    }
}

/// `current` with its end moved to `expires_at`, checked; `None` when it already ends then or
/// later.
fn extended(
    current: &Grant,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Option<Grant>, GrantError> {
    still_open(current, now)?;
    if expires_at <= current.expires_at {
        return Ok(None);
    }
    if expires_at - current.starts_at.max(now) > MAX_GRANT_DURATION {
        return Err(GrantError::Invalid(format!(
            "grant {} would last more than {}h",
            current.id,
            MAX_GRANT_DURATION.whole_hours()
        )));
    }
    Ok(Some(Grant {
        expires_at,
        ..current.clone()
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindError {
    UnknownKey,
    MissingToken,
    BadToken,
}

fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests;
