//! Who is calling the control API: the admin (token in `admin.token`) or a local user (an API
//! token issued by the admin, stored hashed), with their groups and their TOTP enrolment.
//! OIDC ID tokens are the other way in, still to come.

pub mod oidc;
pub mod totp;

use std::collections::HashMap;
use std::sync::RwLock;

use rand::RngCore;
use time::OffsetDateTime;

use crate::model::{LocalUser, Principal, TotpEnrolment};
use crate::secret::{Key, Secret, constant_time_eq, token_hash};
use crate::store::{Store, StoreError};

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
    store: Store,
    key: Key,
    live: RwLock<HashMap<String, LocalUser>>,
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
    pub fn open(store: Store, key: Key) -> Result<Users, StoreError> {
        let live = store
            .load_users()?
            .into_iter()
            .map(|u| (u.name.clone(), u))
            .collect();
        Ok(Users {
            store,
            key,
            live: RwLock::new(live),
        })
    }

    /// Adds a user and returns the API token, which is shown once and stored only hashed.
    pub fn add(
        &self,
        name: &str,
        groups: &[String],
        now: OffsetDateTime,
    ) -> Result<(LocalUser, String), IdentityError> {
        let (user, token) = self.draft(name, groups, now)?;
        self.insert(user.clone())?;
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
        if self.read().contains_key(name) {
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

    /// Stores a drafted user, unless one of that name was added meanwhile.
    pub fn insert(&self, user: LocalUser) -> Result<(), IdentityError> {
        let mut live = self.write();
        if live.contains_key(&user.name) {
            return Err(IdentityError::Exists(user.name));
        }
        self.store.put_user(&user)?;
        live.insert(user.name.clone(), user);
        Ok(())
    }

    /// Makes sure a user known from elsewhere (OIDC) has a record, so they can enrol MFA.
    /// Such a record has no API token.
    pub fn ensure_external(&self, name: &str, now: OffsetDateTime) -> Result<(), IdentityError> {
        let mut live = self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if live.contains_key(name) {
            return Ok(());
        }
        let user = LocalUser {
            name: name.to_owned(),
            groups: Vec::new(),
            token_hash: String::new(),
            created_at: now,
            totp: None,
        };
        self.store.put_user(&user)?;
        live.insert(user.name.clone(), user);
        Ok(())
    }

    #[must_use]
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let hash = token_hash(token);
        let live = self
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        live.values()
            .find(|u| constant_time_eq(u.token_hash.as_bytes(), hash.as_bytes()))
            .map(principal)
    }

    /// The local user of this name as a principal, with their groups.
    #[must_use]
    pub fn principal(&self, name: &str) -> Option<Principal> {
        self.read().get(name).map(principal)
    }

    #[must_use]
    pub fn list(&self) -> Vec<LocalUser> {
        let mut users: Vec<LocalUser> = self
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users
    }

    fn totp_secret(&self, user: &str, nonce: &str) -> [u8; 20] {
        let derived = self.key.derive(&["totp", user, nonce]);
        derived[..20].try_into().expect("32 bytes hold 20")
    }

    /// Starts (or restarts) TOTP enrolment: returns the base32 secret and the otpauth URI.
    pub fn enroll_totp(&self, name: &str) -> Result<(String, String), IdentityError> {
        let enrolment = self.draft_totp(name)?;
        self.commit_totp(name, enrolment)
    }

    /// A new enrolment for a known user, not yet stored: the control API records it in the
    /// trail first, then [`Users::commit_totp`] stores it.
    pub fn draft_totp(&self, name: &str) -> Result<TotpEnrolment, IdentityError> {
        if !self.read().contains_key(name) {
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
        self.read().get(name).is_some_and(|u| u.totp.is_some())
    }

    /// Removes a user's authenticator (an admin reset).
    pub fn reset_totp(&self, name: &str) -> Result<(), IdentityError> {
        let mut live = self.write();
        let user = live
            .get(name)
            .ok_or_else(|| IdentityError::NotFound(name.to_owned()))?;
        let updated = LocalUser {
            totp: None,
            ..user.clone()
        };
        self.store.put_user(&updated)?;
        live.insert(name.to_owned(), updated);
        Ok(())
    }

    /// Stores an enrolment; returns the base32 secret and the otpauth URI.
    pub fn commit_totp(
        &self,
        name: &str,
        enrolment: TotpEnrolment,
    ) -> Result<(String, String), IdentityError> {
        let mut live = self.write();
        let user = live
            .get(name)
            .ok_or_else(|| IdentityError::NotFound(name.to_owned()))?;
        let secret = self.totp_secret(name, &enrolment.nonce);
        let updated = LocalUser {
            totp: Some(enrolment),
            ..user.clone()
        };
        self.store.put_user(&updated)?;
        live.insert(name.to_owned(), updated);
        Ok((totp::base32(&secret), totp::uri(name, &secret)))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, LocalUser>> {
        self.live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, LocalUser>> {
        self.live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Verifies a fresh code and records its step durably, so it cannot be used again.
    pub fn verify_totp(
        &self,
        name: &str,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<(), IdentityError> {
        let mut live = self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let user = live
            .get(name)
            .ok_or_else(|| IdentityError::NotFound(name.to_owned()))?;
        let enrolment = user
            .totp
            .clone()
            .ok_or_else(|| IdentityError::NotEnrolled(name.to_owned()))?;
        let secret = self.totp_secret(name, &enrolment.nonce);
        let step = totp::verify(&secret, code, now, enrolment.last_step)?;
        let updated = LocalUser {
            totp: Some(TotpEnrolment {
                last_step: Some(step),
                ..enrolment
            }),
            ..user.clone()
        };
        self.store.put_user(&updated)?;
        live.insert(name.to_owned(), updated);
        Ok(())
    }

    /// The current code of an enrolled user; for tests that play the authenticator app.
    #[doc(hidden)]
    #[must_use]
    pub fn current_code_for_tests(&self, name: &str, at: OffsetDateTime) -> Option<String> {
        let live = self
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let nonce = live.get(name)?.totp.as_ref()?.nonce.clone();
        Some(totp::code_at_step(
            &self.totp_secret(name, &nonce),
            totp::step_of(at),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn users(dir: &std::path::Path) -> Users {
        Users::open(
            Store::open(&dir.join("s.redb")).unwrap(),
            Key::from_bytes([3; 32]),
        )
        .unwrap()
    }

    #[test]
    fn tokens_authenticate_their_user_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let now = datetime!(2026-11-29 10:00 UTC);
        let token = {
            let users = users(dir.path());
            let (user, token) = users.add("alice", &["data-eng".into()], now).unwrap();
            assert_ne!(user.token_hash, token, "only the hash is kept");
            assert!(matches!(
                users.add("alice", &[], now),
                Err(IdentityError::Exists(_))
            ));
            token
        };
        let users = users(dir.path());
        let p = users.authenticate(&token).unwrap();
        assert_eq!(
            (p.name.as_str(), p.groups.as_slice(), p.admin),
            ("alice", ["data-eng".to_owned()].as_slice(), false)
        );
        assert_eq!(users.authenticate("sesame_user_wrong"), None);
        assert!(users.add("bad name", &[], now).is_err());
    }

    #[test]
    fn totp_codes_verify_once_and_the_enrolment_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let now = datetime!(2026-11-29 10:00 UTC);
        {
            let users = users(dir.path());
            users.add("bob", &["hr-approvers".into()], now).unwrap();
            assert!(matches!(
                users.verify_totp("bob", "123456", now),
                Err(IdentityError::NotEnrolled(_))
            ));
            let (secret, uri) = users.enroll_totp("bob").unwrap();
            assert!(uri.contains(&secret));
            let code = users.current_code_for_tests("bob", now).unwrap();
            users.verify_totp("bob", &code, now).unwrap();
        }
        let users = users(dir.path());
        let code = users.current_code_for_tests("bob", now).unwrap();
        assert!(matches!(
            users.verify_totp("bob", &code, now),
            Err(IdentityError::Totp(totp::TotpError::Replayed))
        ));
        let later = now + time::Duration::seconds(30);
        let next = users.current_code_for_tests("bob", later).unwrap();
        users.verify_totp("bob", &next, later).unwrap();
    }
}
