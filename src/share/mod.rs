//! Share links: a URL on the gateway for one object, made by someone who holds a grant with
//! read on it. A link lives minutes, never past its grant, can carry a download limit, and
//! can be revoked at any moment; each is published through a `watch` channel like grants,
//! so a download in progress stops the moment its link (or grant) ends.
//!
//! The URL carries the link id and an HMAC of it under a key kept outside the store, so a
//! tampered or truncated link is refused without looking anything up; everything else (the
//! object, the window, the count) lives in the store, which is what makes links revocable.

use base64::Engine as _;
use rand::RngCore as _;
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::model::{Action, Grant, GrantState};
use crate::model::{Share, ShareState};
use crate::secret::{Key, constant_time_eq};
use crate::store::{Change, Expect, OwedRecord, Published, SharedStore, Step, StoreError, Write};

/// Life of a link when the maker does not say.
pub const DEFAULT_TTL: time::Duration = time::Duration::minutes(15);
/// Longest life of a link when the grant's policy rule sets no `limits.share_ttl`.
pub const DEFAULT_MAX_TTL: time::Duration = time::Duration::hours(1);
/// Where links live on the S3 listener. No bucket name can start with `_`, so no S3 path
/// is shadowed.
pub const PATH_PREFIX: &str = "/_share/";

/// What the maker asks for.
#[derive(Debug, Clone, Default)]
pub struct NewShare {
    pub bucket: String,
    pub key: String,
    pub ttl: Option<time::Duration>,
    pub max_downloads: Option<u32>,
    pub why: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("share link {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a presented link token is not a link of this gateway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this share link is not valid: it was altered or cut short; ask its sender for the whole link"
)]
pub struct BadToken;

pub struct Shares {
    store: SharedStore,
    clock: SharedClock,
    /// Signs link ids; derived from the credential key, so links need no key of their own.
    mac_key: Key,
    /// Every link as last committed. Counts are taken by serialised updates of the stored
    /// link, so they are exact across concurrent downloads and gateways.
    live: Published<Share>,
}

impl Shares {
    pub async fn open(
        store: SharedStore,
        clock: SharedClock,
        key: &Key,
    ) -> Result<Shares, StoreError> {
        let live = Published::default();
        for (revision, share) in crate::store::load::<Share>(&*store).await? {
            live.publish(revision, share);
        }
        Ok(Shares {
            store,
            clock,
            mac_key: key.subkey("share-link-key"),
            live,
        })
    }

    /// Takes in a committed change of a link, from this process or another gateway.
    pub fn apply(&self, change: &Change) -> Result<(), StoreError> {
        self.live.apply(change).map(|_| ())
    }

    #[must_use]
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Makes a link under `grant`, which the caller has checked they hold. The link must
    /// name one object the grant can read, and ends no later than the grant and the rule's
    /// longest share life.
    pub async fn create(
        &self,
        grant: &Grant,
        ask: NewShare,
    ) -> Result<(Share, String), ShareError> {
        let share = self.draft(grant, ask)?;
        self.insert(share).await
    }

    /// A new link, checked but not yet stored: the control API records it in the trail
    /// first, then [`Shares::insert`] stores it.
    pub fn draft(&self, grant: &Grant, ask: NewShare) -> Result<Share, ShareError> {
        let now = self.clock.now();
        match grant.state(now) {
            GrantState::Active => {}
            state @ (GrantState::Scheduled | GrantState::Expired | GrantState::Revoked) => {
                return Err(ShareError::Forbidden(format!(
                    "grant {} is {}: links can only be made under an active grant",
                    grant.id,
                    state.as_str()
                )));
            }
        }
        if ask.key.is_empty() || ask.key.ends_with('/') {
            return Err(ShareError::Invalid(format!(
                "s3://{}/{} is not an object: a link shares one object, name its whole key",
                ask.bucket, ask.key
            )));
        }
        crate::model::scope::check_key_segments(&ask.key).map_err(ShareError::Invalid)?;
        if !grant.scope.allows(Action::Read) || !grant.scope.covers_key(&ask.bucket, &ask.key) {
            return Err(ShareError::Forbidden(format!(
                "grant {} ({} {}) does not let you read s3://{}/{}",
                grant.id,
                grant.scope.uri(),
                grant.scope.actions_label(),
                ask.bucket,
                ask.key
            )));
        }
        let max_ttl = grant
            .limits
            .share_ttl_seconds
            .map_or(DEFAULT_MAX_TTL, time::Duration::seconds);
        let ttl = ask.ttl.unwrap_or(DEFAULT_TTL.min(max_ttl));
        if ttl <= time::Duration::ZERO {
            return Err(ShareError::Invalid("ttl must be at least 1s".into()));
        }
        if ttl > max_ttl {
            return Err(ShareError::Invalid(format!(
                "links under grant {} last at most {} (asked for {}); ask for a shorter --ttl",
                grant.id,
                crate::duration::human(max_ttl),
                crate::duration::human(ttl)
            )));
        }
        if ask.max_downloads == Some(0) {
            return Err(ShareError::Invalid(
                "max downloads must be at least 1 (leave it out for no limit)".into(),
            ));
        }
        let share = Share {
            id: new_share_id(),
            grant_id: grant.id.clone(),
            principal: grant.principal.clone(),
            bucket: ask.bucket,
            key: ask.key,
            created_at: now,
            expires_at: (now + ttl).min(grant.ends_at()),
            max_downloads: ask.max_downloads,
            downloads: 0,
            why: ask.why.filter(|w| !w.trim().is_empty()),
            revoked_at: None,
            revoked_by: None,
        };
        Ok(share)
    }

    /// Stores a drafted link and publishes it; returns it with its token.
    pub async fn insert(&self, share: Share) -> Result<(Share, String), ShareError> {
        let revision = self
            .store
            .commit(vec![Write::put(&share, Expect::Absent)])
            .await?;
        self.live.publish(revision, share.clone());
        let token = self.token_for(&share.id);
        Ok((share, token))
    }

    /// The secret part of a link's URL: its id and an HMAC of it.
    #[must_use]
    pub fn token_for(&self, id: &str) -> String {
        let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.mac(id)[..18]);
        format!("{id}.{mac}")
    }

    /// The link id a token names, if the token is one this gateway made.
    pub fn verify_token(&self, token: &str) -> Result<String, BadToken> {
        let (id, _) = token.split_once('.').ok_or(BadToken)?;
        if !id.starts_with("s-") || id.len() != SHARE_ID_LEN {
            return Err(BadToken);
        }
        let expected = self.token_for(id);
        if constant_time_eq(expected.as_bytes(), token.as_bytes()) {
            Ok(id.to_owned())
        } else {
            Err(BadToken)
        }
    }

    fn mac(&self, id: &str) -> [u8; 32] {
        self.mac_key.derive(&["share-link", id])
    }

    pub fn get(&self, id: &str) -> Result<Share, ShareError> {
        self.live
            .get(id)
            .ok_or_else(|| ShareError::NotFound(id.to_owned()))
    }

    /// Every link, newest first.
    #[must_use]
    pub fn list(&self) -> Vec<Share> {
        let mut all = self.live.values();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        all
    }

    /// Revokes a link; revoking one that already ended changes nothing.
    pub async fn revoke(&self, id: &str, by: &str) -> Result<Share, ShareError> {
        self.revoke_inner(id, by, None::<fn(&Share) -> OwedRecord>)
            .await
            .map(|(share, _)| share)
    }

    /// [`Shares::revoke`], storing the lifecycle record `owe` makes of the revoked link with
    /// it, so the record survives a trail that cannot be written until it is moved into the
    /// trail; `false`: the link had already ended and nothing changed.
    pub async fn revoke_owing(
        &self,
        id: &str,
        by: &str,
        owe: impl Fn(&Share) -> OwedRecord,
    ) -> Result<(Share, bool), ShareError> {
        self.revoke_inner(id, by, Some(owe)).await
    }

    async fn revoke_inner(
        &self,
        id: &str,
        by: &str,
        owe: Option<impl Fn(&Share) -> OwedRecord>,
    ) -> Result<(Share, bool), ShareError> {
        let now = self.clock.now();
        let revoked = self
            .update(id, |current| {
                if current.revoked_at.is_some() || current.state(now) == ShareState::Expired {
                    return Ok(Step::Keep(false));
                }
                let next = Share {
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
        if revoked {
            tracing::info!(share = %id, by, "share link revoked");
        }
        Ok((self.get(id)?, revoked))
    }

    /// Lets one use of a link through: for a download (`count`), takes one of its allowed
    /// downloads, durably, as one serialised update of the stored link, so N parallel
    /// fetches of a one-download link let exactly one through, on one gateway or several.
    /// Returns the link as it now is and a receiver that follows it.
    pub async fn admit(&self, id: &str, count: bool) -> Result<Admitted, Refused> {
        let Some(held) = self.live.get(id) else {
            return Err(Refused::Unknown);
        };
        if let Some(reason) = held.refusal(held.state(self.clock.now())) {
            return Err(Refused::Ended(Box::new(held), reason));
        }
        let counted = count && held.max_downloads.is_some();
        if counted {
            let now = self.clock.now();
            let taken = self
                .update(id, |current| {
                    if let Some(reason) = current.refusal(current.state(now)) {
                        return Ok(Step::Keep(Err(reason)));
                    }
                    Ok(Step::Write {
                        next: Share {
                            downloads: current.downloads + 1,
                            ..current.clone()
                        },
                        also: vec![],
                        answer: Ok(()),
                    })
                })
                .await
                .map_err(|e| Refused::Store(e.to_string()))?;
            if let Err(reason) = taken {
                let current = self.live.get(id).ok_or(Refused::Unknown)?;
                return Err(Refused::Ended(Box::new(current), reason));
            }
        }
        let live = self.live.subscribe(id).ok_or(Refused::Unknown)?;
        let share = live.borrow().clone();
        Ok(Admitted {
            share,
            live,
            counted,
        })
    }

    /// Gives back a download the backend never delivered (the object was missing, say).
    pub async fn give_back(&self, id: &str) {
        let returned = self
            .update(id, |current| {
                if current.downloads == 0 {
                    return Ok(Step::Keep(()));
                }
                Ok(Step::Write {
                    next: Share {
                        downloads: current.downloads - 1,
                        ..current.clone()
                    },
                    also: vec![],
                    answer: (),
                })
            })
            .await;
        if let Err(e) = returned {
            tracing::warn!(share = %id, error = %e, "an undelivered download could not be given back");
        }
    }

    /// One serialised update of a link that exists.
    async fn update<R>(
        &self,
        id: &str,
        decide: impl FnMut(&Share) -> Result<Step<Share, R>, ShareError>,
    ) -> Result<R, ShareError> {
        let missing = || ShareError::NotFound(id.to_owned());
        let (answer, _) = self.live.update(&*self.store, id, missing, decide).await?;
        Ok(answer)
    }
}

/// A use of a link that was let through.
pub struct Admitted {
    pub share: Share,
    pub live: watch::Receiver<Share>,
    /// One of the link's limited downloads was taken (to give back if nothing is sent).
    pub counted: bool,
}

#[derive(Debug)]
pub enum Refused {
    /// A well-signed token whose link is not in the store (a different data directory).
    Unknown,
    Ended(Box<Share>, String),
    Store(String),
}

/// `s-` and 24 hex digits.
const SHARE_ID_LEN: usize = 26;

fn new_share_id() -> String {
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("s-{}", hex::encode(bytes))
}

/// Why a download through a link was cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkEnd {
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    Revoked(String),
}

/// Resolves once the link is revoked or expires (a used-up link lets its last download
/// finish).
pub async fn share_end(mut share: watch::Receiver<Share>, clock: SharedClock) -> LinkEnd {
    loop {
        let current = share.borrow_and_update().clone();
        match current.state(clock.now()) {
            ShareState::Active | ShareState::UsedUp => {}
            ShareState::Expired => {
                return LinkEnd::Expired(format!(
                    "share link {} expired during the download",
                    current.id
                ));
            }
            ShareState::Revoked => {
                return LinkEnd::Revoked(format!(
                    "share link {} was revoked during the download",
                    current.id
                ));
            }
        }
        tokio::select! {
            () = clock.sleep_until(current.expires_at) => {}
            changed = share.changed() => {
                if changed.is_err() {
                    return LinkEnd::Revoked(format!("share link {} is gone", current.id));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
