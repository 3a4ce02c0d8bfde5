//! The book of grants and credentials: written to the store first, then published in memory
//! so the data path reads without touching the store. Each grant is published through a
//! `watch` channel, so transfers under it see a revocation the moment it happens.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use rand::RngCore;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::IssuedCredential;
use super::credential::{new_access_key_id, secret_for, session_token_for, verify_session_token};
use crate::clock::SharedClock;
use crate::model::request::AccessRequest;
use crate::model::{Credential, Grant, GrantState, Limits, Scope};
use crate::secret::{Key, Secret};
use crate::store::{OwedRecord, Store, StoreError};

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

pub struct Grants {
    store: Store,
    clock: SharedClock,
    /// Woken whenever a grant is created, extended or revoked: deadlines moved.
    changed: std::sync::Arc<tokio::sync::Notify>,
    key: Key,
    live: RwLock<Live>,
    /// Held across every read-modify-write of a grant (read the current version, store the
    /// next, publish it), so no writer works from a copy another has already replaced.
    writer: Mutex<()>,
}

/// What an approval, or the admin, does to the book; applied by [`Grants::commit`] to the
/// version current under the write lock, never to a copy read earlier.
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

/// What is written in the same transaction as a grant.
#[derive(Clone, Copy)]
enum Also<'a> {
    Nothing,
    /// The request whose approval made the change.
    Approval(&'a AccessRequest),
    /// The lifecycle record of the change, until the trail has it.
    Owed(&'a OwedRecord),
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

#[derive(Default)]
struct Live {
    grants: HashMap<String, watch::Sender<Grant>>,
    credentials: HashMap<String, Credential>,
}

/// What the S3 front end learns from an access key.
pub struct Bound {
    pub credential: Credential,
    pub grant: LiveGrant,
}

impl Grants {
    /// Loads every stored grant and credential; nothing is lost across a restart.
    pub fn open(store: Store, clock: SharedClock, key: Key) -> Result<Grants, StoreError> {
        let mut live = Live::default();
        for grant in store.load_grants()? {
            live.grants
                .insert(grant.id.clone(), watch::Sender::new(grant));
        }
        for credential in store.load_credentials()? {
            live.credentials
                .insert(credential.access_key_id.clone(), credential);
        }
        Ok(Grants {
            store,
            clock,
            key,
            changed: std::sync::Arc::default(),
            live: RwLock::new(live),
            writer: Mutex::new(()),
        })
    }

    #[must_use]
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Notified whenever a deadline may have moved.
    #[must_use]
    pub fn changed(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// Records that a deadline notice is being sent for a grant, on the current version under
    /// the write lock. `false`: nothing to send (already sent, or the grant was revoked).
    pub fn mark_notified(&self, id: &str, notice: &str) -> Result<bool, GrantError> {
        let _writing = self.lock_writer();
        let current = self.get(id)?;
        if current.revoked_at.is_some() || current.notices.iter().any(|n| n == notice) {
            return Ok(false);
        }
        let mut next = current.clone();
        next.notices.push(notice.to_owned());
        self.replace(&current, next, Also::Nothing)?;
        Ok(true)
    }

    /// A grant with no limits beyond its scope and window.
    pub fn create(
        &self,
        principal: &str,
        scope: Scope,
        starts_at: Option<OffsetDateTime>,
        duration: time::Duration,
    ) -> Result<Grant, GrantError> {
        self.create_limited(principal, scope, starts_at, duration, Limits::default())
    }

    pub fn create_limited(
        &self,
        principal: &str,
        scope: Scope,
        starts_at: Option<OffsetDateTime>,
        duration: time::Duration,
        limits: Limits,
    ) -> Result<Grant, GrantError> {
        let grant = self.draft(principal, scope, starts_at, duration, limits)?;
        self.commit(Change::Create(Box::new(grant)), None)
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
    pub fn extend(&self, id: &str, expires_at: OffsetDateTime) -> Result<Grant, GrantError> {
        self.commit(
            Change::Extend {
                id: id.to_owned(),
                expires_at,
            },
            None,
        )
    }

    /// Applies a change to the current version under the write lock, writes it (with the
    /// request that approved it, in the same transaction) and publishes it: a new grant is
    /// added, a new version reaches every transfer under it. An extension of a grant that
    /// ended meanwhile (revoked, say) is refused, and nothing is written.
    pub fn commit(
        &self,
        change: Change,
        approved_by: Option<&AccessRequest>,
    ) -> Result<Grant, GrantError> {
        let _writing = self.lock_writer();
        match change {
            Change::Create(grant) => {
                let grant = *grant;
                match approved_by {
                    Some(request) => self.store.put_grant_and_request(&grant, request)?,
                    None => self.store.put_grant(&grant)?,
                }
                self.write()
                    .grants
                    .insert(grant.id.clone(), watch::Sender::new(grant.clone()));
                tracing::info!(grant = %grant.id, principal = %grant.principal, scope = %grant.scope.uri(), expires_at = %grant.expires_at, "grant created");
                self.changed.notify_one();
                Ok(grant)
            }
            Change::Extend { id, expires_at } => {
                let current = self.get(&id)?;
                let Some(next) = extended(&current, expires_at, self.clock.now())? else {
                    // Already ends then or later: only the approval is written.
                    if let Some(request) = approved_by {
                        self.store.put_request(request)?;
                    }
                    return Ok(current);
                };
                let also = approved_by.map_or(Also::Nothing, Also::Approval);
                let grant = self.replace(&current, next, also)?;
                tracing::info!(grant = %grant.id, expires_at = %grant.expires_at, "grant extended");
                Ok(grant)
            }
        }
    }

    /// Revokes a grant; one that already ended stays as it was, and the caller is told so.
    pub fn revoke(&self, id: &str, by: &str) -> Result<Revoked, GrantError> {
        self.revoke_inner(id, by, None::<fn(&Grant) -> OwedRecord>)
    }

    /// [`Grants::revoke`], storing the lifecycle record `owe` makes of the revoked grant in
    /// the same transaction, so the record survives a trail that cannot be written (and a
    /// crash) until it is moved into the trail.
    pub fn revoke_owing(
        &self,
        id: &str,
        by: &str,
        owe: impl FnOnce(&Grant) -> OwedRecord,
    ) -> Result<Revoked, GrantError> {
        self.revoke_inner(id, by, Some(owe))
    }

    fn revoke_inner(
        &self,
        id: &str,
        by: &str,
        owe: Option<impl FnOnce(&Grant) -> OwedRecord>,
    ) -> Result<Revoked, GrantError> {
        let _writing = self.lock_writer();
        let now = self.clock.now();
        let current = self.get(id)?;
        match current.state(now) {
            GrantState::Revoked | GrantState::Expired => return Ok(Revoked::Already(current)),
            GrantState::Active | GrantState::Scheduled => {}
        }
        let next = Grant {
            revoked_at: Some(now),
            revoked_by: Some(by.to_owned()),
            ..current.clone()
        };
        let owed = owe.map(|owe| owe(&next));
        let also = owed.as_ref().map_or(Also::Nothing, Also::Owed);
        let revoked = self.replace(&current, next, also)?;
        tracing::info!(grant = %id, by, "grant revoked");
        Ok(Revoked::Now(revoked))
    }

    /// Stores `next` in place of `current` (with `also`, in the same transaction) and
    /// publishes it; the caller holds the write lock and read `current` under it. The one
    /// rule every writer shares: a revocation is never undone.
    fn replace(&self, current: &Grant, next: Grant, also: Also<'_>) -> Result<Grant, GrantError> {
        if current.revoked_at.is_some() && next.revoked_at != current.revoked_at {
            return Err(GrantError::Ended {
                id: current.id.clone(),
                state: GrantState::Revoked.as_str(),
            });
        }
        match also {
            Also::Nothing => self.store.put_grant(&next)?,
            Also::Approval(request) => self.store.put_grant_and_request(&next, request)?,
            Also::Owed(owed) => self.store.put_grant_owing(&next, owed)?,
        }
        if let Some(sender) = self.read().grants.get(&next.id) {
            sender.send_replace(next.clone());
        }
        self.changed.notify_one();
        Ok(next)
    }

    pub fn get(&self, id: &str) -> Result<Grant, GrantError> {
        self.read()
            .grants
            .get(id)
            .map(|g| g.borrow().clone())
            .ok_or_else(|| GrantError::NotFound(id.to_owned()))
    }

    /// All grants, newest first.
    #[must_use]
    pub fn list(&self) -> Vec<Grant> {
        let mut all: Vec<Grant> = self
            .read()
            .grants
            .values()
            .map(|g| g.borrow().clone())
            .collect();
        all.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        all
    }

    /// Issues a new credential bound to a grant that has not ended.
    pub fn issue_credential(&self, grant_id: &str) -> Result<IssuedCredential, GrantError> {
        let credential = self.draft_credential(grant_id)?;
        self.commit_credential(credential)
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
    /// secret and session token (derived, never stored).
    pub fn commit_credential(
        &self,
        credential: Credential,
    ) -> Result<IssuedCredential, GrantError> {
        let _writing = self.lock_writer();
        let grant = self.get(&credential.grant_id)?;
        still_open(&grant, self.clock.now())?;
        self.store.put_credential(&credential)?;
        self.write()
            .credentials
            .insert(credential.access_key_id.clone(), credential.clone());
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
        self.read()
            .credentials
            .contains_key(access_key_id)
            .then(|| secret_for(&self.key, access_key_id))
    }

    /// The credential and the live grant behind an access key, if the session token matches.
    pub fn bind(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<Bound, BindError> {
        let live = self.read();
        let credential = live
            .credentials
            .get(access_key_id)
            .ok_or(BindError::UnknownKey)?;
        let token = session_token.ok_or(BindError::MissingToken)?;
        if !verify_session_token(&self.key, access_key_id, &credential.grant_id, token) {
            return Err(BindError::BadToken);
        }
        let grant = live
            .grants
            .get(&credential.grant_id)
            .ok_or(BindError::UnknownKey)?;
        Ok(Bound {
            credential: credential.clone(),
            grant: grant.subscribe(),
        })
    }

    /// Follows one grant, for what lives under it without a credential (share links).
    #[must_use]
    pub fn subscribe(&self, id: &str) -> Option<LiveGrant> {
        self.read().grants.get(id).map(watch::Sender::subscribe)
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Live> {
        self.live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Live> {
        self.live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
