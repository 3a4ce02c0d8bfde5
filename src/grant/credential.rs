//! Derivation of credential secrets and session tokens. Neither is stored: both are HMACs of
//! the access key id under a key that lives in its own file, outside the store.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use sha2::Sha256;
use time::OffsetDateTime;

/// A secret string whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    #[must_use]
    pub fn new(s: String) -> Self {
        Secret(s)
    }

    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

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

/// The 32-byte key under which secrets and tokens are derived.
#[derive(Clone)]
pub struct CredentialKey([u8; 32]);

impl fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialKey(***)")
    }
}

impl CredentialKey {
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        CredentialKey(bytes)
    }

    /// Reads the key file, creating it (mode 0600) with a fresh random key on first start.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    std::io::Error::other(format!(
                        "{} must hold exactly 32 bytes, found {}",
                        path.display(),
                        bytes.len()
                    ))
                })?;
                Ok(CredentialKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                write_private_file(path, &key)?;
                Ok(CredentialKey(key))
            }
            Err(e) => Err(e),
        }
    }

    /// A 32-byte value derived for `parts`: one key, many independent secrets.
    #[must_use]
    pub fn derive(&self, parts: &[&str]) -> [u8; 32] {
        self.mac(parts)
    }

    fn mac(&self, parts: &[&str]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("hmac takes any key length");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        mac.finalize().into_bytes().into()
    }

    /// 40 characters, like an AWS secret access key.
    #[must_use]
    pub fn secret_for(&self, access_key_id: &str) -> Secret {
        let digest = self.mac(&["secret", access_key_id]);
        let mut s = base64::engine::general_purpose::STANDARD.encode(digest);
        s.truncate(40);
        Secret(s)
    }

    /// Binds the token to both the key id and its grant, so neither can be swapped.
    #[must_use]
    pub fn session_token_for(&self, access_key_id: &str, grant_id: &str) -> Secret {
        let digest = self.mac(&["session-token", access_key_id, grant_id]);
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        Secret(format!("sesame1.{grant_id}.{encoded}"))
    }

    /// Constant-time comparison of a presented session token with the expected one.
    #[must_use]
    pub fn verify_session_token(
        &self,
        access_key_id: &str,
        grant_id: &str,
        presented: &str,
    ) -> bool {
        let expected = self.session_token_for(access_key_id, grant_id);
        constant_time_eq(expected.expose().as_bytes(), presented.as_bytes())
    }
}

#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

/// Writes a file only its owner can read, creating it exclusively.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_stable_per_key_and_differ_between_keys() {
        let key = CredentialKey([7; 32]);
        assert_eq!(key.secret_for("SESA1"), key.secret_for("SESA1"));
        assert_ne!(key.secret_for("SESA1"), key.secret_for("SESA2"));
        assert_ne!(
            CredentialKey([8; 32]).secret_for("SESA1"),
            key.secret_for("SESA1")
        );
        assert_eq!(key.secret_for("SESA1").expose().len(), 40);
    }

    #[test]
    fn tampered_tokens_do_not_verify() {
        let key = CredentialKey([7; 32]);
        let token = key.session_token_for("SESA1", "g-1");
        assert!(key.verify_session_token("SESA1", "g-1", token.expose()));
        assert!(!key.verify_session_token("SESA1", "g-2", token.expose()));
        let mut tampered = token.expose().to_owned();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'x' { 'y' } else { 'x' });
        assert!(!key.verify_session_token("SESA1", "g-1", &tampered));
    }

    #[test]
    fn debug_never_prints_secrets() {
        let key = CredentialKey([7; 32]);
        let shown = format!("{:?} {:?}", key, key.secret_for("SESA1"));
        assert!(!shown.contains(key.secret_for("SESA1").expose()));
    }

    #[test]
    fn key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credential.key");
        let first = CredentialKey::load_or_create(&path).unwrap();
        let again = CredentialKey::load_or_create(&path).unwrap();
        assert_eq!(first.secret_for("A"), again.secret_for("A"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
