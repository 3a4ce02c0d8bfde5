//! Secrets and signing, beneath everything else: the [`Secret`] newtype (its `Debug` never
//! shows it), the 32-byte [`Key`] other secrets are derived from, constant-time comparison,
//! the HMAC signature webhooks and the forwarder send, token hashes, and files only their
//! owner can read. It imports nothing from the crate, so every module may use it.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A secret string whose `Debug` never shows it. Serialised as the string itself: only put
/// it where the secret is meant to go (credentials shown to their holder, a config file).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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

    /// The secret kept in `path` (surrounding whitespace trimmed, as editors and `echo` add a
    /// newline); the error names the file.
    pub fn from_file(path: &Path) -> Result<Secret, String> {
        std::fs::read_to_string(path)
            .map(|text| Secret(text.trim().to_owned()))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A fresh bearer token, `prefix` and 48 random hex digits (24 bytes).
    #[must_use]
    pub fn new_token(prefix: &str) -> Secret {
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        Secret(format!("{prefix}{}", hex::encode(bytes)))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A 32-byte key under which secrets are derived (credential secrets, session tokens, link
/// signatures, TOTP seeds): one key, many independent secrets.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(***)")
    }
}

impl Key {
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Key(bytes)
    }

    /// A fresh random key.
    #[must_use]
    pub fn random() -> Key {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Key(key)
    }

    /// The key's bytes, for the one place that stores it (the store's shared keys).
    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads a key file; `None` when there is none.
    pub fn read_file(path: &Path) -> std::io::Result<Option<Self>> {
        match Key::load_or_create_inner(path, false) {
            Ok(key) => Ok(Some(key)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads the key file, creating it (mode 0600) with a fresh random key on first start.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        Key::load_or_create_inner(path, true)
    }

    fn load_or_create_inner(path: &Path, create: bool) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    std::io::Error::other(format!(
                        "{} must hold exactly 32 bytes, found {}",
                        path.display(),
                        bytes.len()
                    ))
                })?;
                Ok(Key(key))
            }
            Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {
                let key = Key::random();
                write_private_file(path, &key.0)?;
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    /// The HMAC-SHA256 of `parts` (each followed by a NUL, so `["ab", "c"]` and `["a", "bc"]`
    /// differ): a 32-byte value derived for them.
    #[must_use]
    pub fn derive(&self, parts: &[&str]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("hmac takes any key length");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        mac.finalize().into_bytes().into()
    }

    /// A key of its own for one purpose, derived from this one.
    #[must_use]
    pub fn subkey(&self, purpose: &str) -> Key {
        Key(self.derive(&[purpose]))
    }
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `X-Sesame-Signature` of a body: `sha256=<hex of its HMAC-SHA256 under key>`, as webhooks
/// and the audit forwarder send it.
#[must_use]
pub fn signature(key: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("hmac takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The SHA-256 of a token, hex: what is kept (stored API tokens) or written down (share-link
/// tokens in the trail) in place of the token itself.
#[must_use]
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Writes a file only its owner can read, creating it exclusively, and syncs it.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Writes a file, replacing what it held; a file it creates only its owner can read.
pub fn overwrite_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

/// Creates a directory (and its parents) only its owner can enter.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let key = Key([7; 32]);
        let secret = Secret::new("hunter2".into());
        let shown = format!("{key:?} {secret:?} {:?}", Some(&secret));
        assert_eq!(shown, "Key(***) Secret(***) Some(Secret(***))");
    }

    #[test]
    fn key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credential.key");
        let first = Key::load_or_create(&path).unwrap();
        let again = Key::load_or_create(&path).unwrap();
        assert_eq!(first.derive(&["a"]), again.derive(&["a"]));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_key_file_of_the_wrong_size_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credential.key");
        std::fs::write(&path, b"short").unwrap();
        let err = Key::load_or_create(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("must hold exactly 32 bytes, found 5"),
            "{err}"
        );
    }

    #[test]
    fn derived_values_keep_their_parts_apart() {
        let key = Key([7; 32]);
        assert_ne!(key.derive(&["ab", "c"]), key.derive(&["a", "bc"]));
        assert_ne!(key.derive(&["a"]), Key([8; 32]).derive(&["a"]));
        let subkey = key.subkey("links");
        assert_eq!(subkey.0, key.derive(&["links"]));
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn signatures_are_rfc_4231_hmacs() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn token_hashes_are_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn secrets_come_from_files_trimmed_and_tokens_are_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "  s3cret\n").unwrap();
        assert_eq!(Secret::from_file(&path).unwrap().expose(), "s3cret");
        let missing = Secret::from_file(&dir.path().join("none")).unwrap_err();
        assert!(missing.contains("none"), "{missing}");
        let (a, b) = (Secret::new_token("t_"), Secret::new_token("t_"));
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 2 + 48);
    }

    #[test]
    fn private_files_and_dirs_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let sub = dir.path().join("a/b");
        create_private_dir(&sub).unwrap();
        assert_eq!(mode(&sub), 0o700);
        let file = sub.join("f");
        write_private_file(&file, b"1").unwrap();
        assert!(
            write_private_file(&file, b"2").is_err(),
            "created exclusively"
        );
        overwrite_private_file(&file, b"3").unwrap();
        assert_eq!(
            (std::fs::read(&file).unwrap(), mode(&file)),
            (b"3".to_vec(), 0o600)
        );
    }
}
