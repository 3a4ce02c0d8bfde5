//! Derivation of credential secrets and session tokens. Neither is stored: both are HMACs of
//! the access key id under a key that lives in its own file, outside the store.

use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use time::OffsetDateTime;

use crate::secret::{Key, Secret, constant_time_eq};

/// What a user receives: everything aws-cli needs, valid until `expiration`.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedCredential {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Secret,
    #[serde(with = "time::serde::rfc3339")]
    pub expiration: OffsetDateTime,
    pub grant_id: String,
}

/// The secret access key of `access_key_id` under the gateway's key (`credential.key`):
/// 40 characters, like an AWS secret access key.
#[must_use]
pub fn secret_for(key: &Key, access_key_id: &str) -> Secret {
    let digest = key.derive(&["secret", access_key_id]);
    let mut s = base64::engine::general_purpose::STANDARD.encode(digest);
    s.truncate(40);
    Secret::new(s)
}

/// The session token of `access_key_id`, bound to both the key id and its grant, so neither
/// can be swapped.
#[must_use]
pub fn session_token_for(key: &Key, access_key_id: &str, grant_id: &str) -> Secret {
    let digest = key.derive(&["session-token", access_key_id, grant_id]);
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    Secret::new(format!("sesame1.{grant_id}.{encoded}"))
}

/// Constant-time comparison of a presented session token with the expected one.
#[must_use]
pub fn verify_session_token(
    key: &Key,
    access_key_id: &str,
    grant_id: &str,
    presented: &str,
) -> bool {
    let expected = session_token_for(key, access_key_id, grant_id);
    constant_time_eq(expected.expose().as_bytes(), presented.as_bytes())
}

/// A new access key id: `SESA` and 16 base32 characters, 20 in all like AWS's.
#[must_use]
pub fn new_access_key_id() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let tail: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect();
    format!("SESA{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_stable_per_key_and_differ_between_keys() {
        let key = Key::from_bytes([7; 32]);
        assert_eq!(secret_for(&key, "SESA1"), secret_for(&key, "SESA1"));
        assert_ne!(secret_for(&key, "SESA1"), secret_for(&key, "SESA2"));
        assert_ne!(
            secret_for(&Key::from_bytes([8; 32]), "SESA1"),
            secret_for(&key, "SESA1")
        );
        assert_eq!(secret_for(&key, "SESA1").expose().len(), 40);
    }

    #[test]
    fn tampered_tokens_do_not_verify() {
        let key = Key::from_bytes([7; 32]);
        let token = session_token_for(&key, "SESA1", "g-1");
        assert!(verify_session_token(&key, "SESA1", "g-1", token.expose()));
        assert!(!verify_session_token(&key, "SESA1", "g-2", token.expose()));
        let mut tampered = token.expose().to_owned();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'x' { 'y' } else { 'x' });
        assert!(!verify_session_token(&key, "SESA1", "g-1", &tampered));
    }
}
