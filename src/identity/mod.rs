//! Who is calling the control API: the admin (token in `admin.token`) or a local user (an API
//! token issued by the admin, stored hashed), with their groups and their TOTP enrolment.
//! OIDC ID tokens are the other way in, still to come.

pub mod oidc;
pub mod totp;

use rand::RngCore;
use time::OffsetDateTime;

use crate::model::{LocalUser, Principal, TotpEnrolment};
use crate::secret::{Key, Secret, constant_time_eq, token_hash};
use crate::store::{Change, Expect, Published, SharedStore, Step, StoreError, Write};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Invalid(String),
    #[error("user {0} already exists")]
    Exists(String),
    #[error("user {0} not found")]
    NotFound(String),
    #[error("{0} has not enrolled MFA: run `sesame mfa enroll` first")]
    NotEnrolled(String),
    #[error(transparent)]
    Totp(#[from] totp::TotpError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Users {
    store: SharedStore,
    key: Key,
    live: Published<LocalUser>,
}

/// Names the gateway uses for its own actors; no user may take them.
const RESERVED_NAMES: [&str; 2] = ["admin", "sesame"];

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

/// A local user as the principal they act as.
fn principal(user: &LocalUser) -> Principal {
    Principal {
        name: user.name.clone(),
        groups: user.groups.clone(),
        admin: false,
    }
}

impl Users {
    pub async fn open(store: SharedStore, key: Key) -> Result<Users, StoreError> {
        let live = Published::default();
        for (revision, user) in crate::store::load::<LocalUser>(&*store).await? {
            live.publish(revision, user);
        }
        Ok(Users { store, key, live })
    }

    /// Takes in a committed change of a user, from this process or another gateway.
    pub fn apply(&self, change: &Change) -> Result<(), StoreError> {
        self.live.apply(change).map(|_| ())
    }

    /// Adds a user and returns the API token, which is shown once and stored only hashed.
    pub async fn add(
        &self,
        name: &str,
        groups: &[String],
        now: OffsetDateTime,
    ) -> Result<(LocalUser, String), IdentityError> {
        let (user, token) = self.draft(name, groups, now)?;
        self.insert(user.clone()).await?;
        Ok((user, token))
    }

    /// A new user and its API token, checked but not yet stored: the control API records
    /// it in the trail first, then [`Users::insert`] stores it.
    pub fn draft(
        &self,
        name: &str,
        groups: &[String],
        now: OffsetDateTime,
    ) -> Result<(LocalUser, String), IdentityError> {
        if !valid_name(name) || groups.iter().any(|g| !valid_name(g)) {
            return Err(IdentityError::Invalid(format!(
                "user and group names are 1 to 64 letters, digits, '-', '_', '.' or '@': got {name:?} {groups:?}"
            )));
        }
        if RESERVED_NAMES.contains(&name) {
            return Err(IdentityError::Invalid(format!(
                "{name:?} is reserved (it names the gateway's own actors in the trail); choose another user name"
            )));
        }
        if self.live.contains(name) {
            return Err(IdentityError::Exists(name.to_owned()));
        }
        let token = Secret::new_token("sesame_user_");
        let mut groups = groups.to_vec();
        groups.sort();
        groups.dedup();
        let user = LocalUser {
            name: name.to_owned(),
            groups,
            token_hash: token_hash(token.expose()),
            created_at: now,
            totp: None,
        };
        Ok((user, token.expose().to_owned()))
    }

    /// Stores a drafted user, unless one of that name was added meanwhile (here or on
    /// another gateway).
    pub async fn insert(&self, user: LocalUser) -> Result<(), IdentityError> {
        match self
            .store
            .commit(vec![Write::put(&user, Expect::Absent)])
            .await
        {
            Ok(revision) => {
                self.live.publish(revision, user);
                Ok(())
            }
            Err(StoreError::Conflict { .. }) => Err(IdentityError::Exists(user.name)),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes sure a user known from elsewhere (OIDC) has a record, so they can enrol MFA.
    /// Such a record has no API token.
    pub async fn ensure_external(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<(), IdentityError> {
        if self.live.contains(name) {
            return Ok(());
        }
        let user = LocalUser {
            name: name.to_owned(),
            groups: Vec::new(),
            token_hash: String::new(),
            created_at: now,
            totp: None,
        };
        match self.insert(user).await {
            Ok(()) | Err(IdentityError::Exists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    #[must_use]
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let hash = token_hash(token);
        self.live
            .find(|u| constant_time_eq(u.token_hash.as_bytes(), hash.as_bytes()))
            .map(|u| principal(&u))
    }

    /// The local user of this name as a principal, with their groups.
    #[must_use]
    pub fn principal(&self, name: &str) -> Option<Principal> {
        self.live.get(name).map(|u| principal(&u))
    }

    #[must_use]
    pub fn list(&self) -> Vec<LocalUser> {
        let mut users = self.live.values();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users
    }

    fn totp_secret(&self, user: &str, nonce: &str) -> [u8; 20] {
        let derived = self.key.derive(&["totp", user, nonce]);
        derived[..20].try_into().expect("32 bytes hold 20")
    }

    /// Starts (or restarts) TOTP enrolment: returns the base32 secret and the otpauth URI.
    pub async fn enroll_totp(&self, name: &str) -> Result<(String, String), IdentityError> {
        let enrolment = self.draft_totp(name)?;
        self.commit_totp(name, enrolment).await
    }

    /// A new enrolment for a known user, not yet stored: the control API records it in the
    /// trail first, then [`Users::commit_totp`] stores it.
    pub fn draft_totp(&self, name: &str) -> Result<TotpEnrolment, IdentityError> {
        if !self.live.contains(name) {
            return Err(IdentityError::NotFound(name.to_owned()));
        }
        let mut nonce = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut nonce);
        Ok(TotpEnrolment {
            nonce: hex::encode(nonce),
            last_step: None,
        })
    }

    /// Whether `name` has an authenticator enrolled.
    #[must_use]
    pub fn has_totp(&self, name: &str) -> bool {
        self.live.get(name).is_some_and(|u| u.totp.is_some())
    }

    /// Removes a user's authenticator (an admin reset).
    pub async fn reset_totp(&self, name: &str) -> Result<(), IdentityError> {
        self.set_totp(name, None).await
    }

    /// Stores an enrolment; returns the base32 secret and the otpauth URI.
    pub async fn commit_totp(
        &self,
        name: &str,
        enrolment: TotpEnrolment,
    ) -> Result<(String, String), IdentityError> {
        let secret = self.totp_secret(name, &enrolment.nonce);
        self.set_totp(name, Some(enrolment)).await?;
        Ok((totp::base32(&secret), totp::uri(name, &secret)))
    }

    async fn set_totp(
        &self,
        name: &str,
        enrolment: Option<TotpEnrolment>,
    ) -> Result<(), IdentityError> {
        self.update(name, |user| {
            Ok(Step::Write {
                next: LocalUser {
                    totp: enrolment.clone(),
                    ..user.clone()
                },
                also: vec![],
                answer: (),
            })
        })
        .await
    }

    /// Verifies a fresh code and records its step durably, as one serialised update of the
    /// stored user, so a code is accepted once, on one gateway or across several.
    pub async fn verify_totp(
        &self,
        name: &str,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<(), IdentityError> {
        self.update(name, |user| {
            let enrolment = user
                .totp
                .clone()
                .ok_or_else(|| IdentityError::NotEnrolled(name.to_owned()))?;
            let secret = self.totp_secret(name, &enrolment.nonce);
            let step = totp::verify(&secret, code, now, enrolment.last_step)?;
            Ok(Step::Write {
                next: LocalUser {
                    totp: Some(TotpEnrolment {
                        last_step: Some(step),
                        ..enrolment
                    }),
                    ..user.clone()
                },
                also: vec![],
                answer: (),
            })
        })
        .await
    }

    /// One serialised update of a user that exists.
    async fn update<R>(
        &self,
        name: &str,
        decide: impl FnMut(&LocalUser) -> Result<Step<LocalUser, R>, IdentityError>,
    ) -> Result<R, IdentityError> {
        let missing = || IdentityError::NotFound(name.to_owned());
        let (answer, _) = self
            .live
            .update(&*self.store, name, missing, decide)
            .await?;
        Ok(answer)
    }

    /// The current code of an enrolled user; for tests that play the authenticator app.
    #[doc(hidden)]
    #[must_use]
    pub fn current_code_for_tests(&self, name: &str, at: OffsetDateTime) -> Option<String> {
        let nonce = self.live.get(name)?.totp?.nonce;
        Some(totp::code_at_step(
            &self.totp_secret(name, &nonce),
            totp::step_of(at),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use time::macros::datetime;

    async fn users(dir: &std::path::Path) -> Users {
        Users::open(
            crate::store::open_file(&dir.join("s.redb")).await.unwrap(),
            Key::from_bytes([3; 32]),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn tokens_authenticate_their_user_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let now = datetime!(2026-11-29 10:00 UTC);
        let token = {
            let users = users(dir.path()).await;
            let (user, token) = users.add("alice", &["data-eng".into()], now).await.unwrap();
            assert_ne!(user.token_hash, token, "only the hash is kept");
            assert!(matches!(
                users.add("alice", &[], now).await,
                Err(IdentityError::Exists(_))
            ));
            token
        };
        let users = users(dir.path()).await;
        let p = users.authenticate(&token).unwrap();
        assert_eq!(
            (p.name.as_str(), p.groups.as_slice(), p.admin),
            ("alice", ["data-eng".to_owned()].as_slice(), false)
        );
        assert_eq!(users.authenticate("sesame_user_wrong"), None);
        assert!(users.add("bad name", &[], now).await.is_err());
    }

    #[tokio::test]
    async fn totp_codes_verify_once_and_the_enrolment_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let now = datetime!(2026-11-29 10:00 UTC);
        {
            let users = users(dir.path()).await;
            users
                .add("bob", &["hr-approvers".into()], now)
                .await
                .unwrap();
            assert!(matches!(
                users.verify_totp("bob", "123456", now).await,
                Err(IdentityError::NotEnrolled(_))
            ));
            let (secret, uri) = users.enroll_totp("bob").await.unwrap();
            assert!(uri.contains(&secret));
            let code = users.current_code_for_tests("bob", now).unwrap();
            users.verify_totp("bob", &code, now).await.unwrap();
        }
        let users = users(dir.path()).await;
        let code = users.current_code_for_tests("bob", now).unwrap();
        assert!(matches!(
            users.verify_totp("bob", &code, now).await,
            Err(IdentityError::Totp(totp::TotpError::Replayed))
        ));
        let later = now + time::Duration::seconds(30);
        let next = users.current_code_for_tests("bob", later).unwrap();
        users.verify_totp("bob", &next, later).await.unwrap();
    }

    /// Two gateways on one PostgreSQL store, each with its own connection and its own copy
    /// of the users, offered the same code at the same moment: one accepts it.
    #[tokio::test]
    async fn a_totp_code_is_accepted_once_across_gateways() {
        let db = crate::store::TestDb::create().await;
        let now = datetime!(2026-12-01 10:00 UTC);
        let key = Key::from_bytes([3; 32]);
        let a = Users::open(Arc::new(db.connect().await), key.clone())
            .await
            .unwrap();
        a.add("bob", &["hr-approvers".into()], now).await.unwrap();
        a.enroll_totp("bob").await.unwrap();
        let b = Users::open(Arc::new(db.connect().await), key)
            .await
            .unwrap();
        let code = a.current_code_for_tests("bob", now).unwrap();
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let offer = |users: Users| {
            let (code, start) = (code.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                users.verify_totp("bob", &code, now).await
            })
        };
        let (on_a, on_b) = (offer(a), offer(b));
        let answers = [on_a.await.unwrap(), on_b.await.unwrap()];
        let accepted = answers.iter().filter(|r| r.is_ok()).count();
        assert_eq!(accepted, 1, "{answers:?}");
    }
}
