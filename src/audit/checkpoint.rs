//! Signed checkpoints: every so often the writer adds a record carrying an Ed25519 signature
//! over the hash of the record before it. Rewriting the chain from some point on (every hash
//! recomputed) then fails at the next checkpoint, unless the signing key was stolen too; the
//! public key can be published and kept elsewhere.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::record::{Body, Checkpoint, Kind};

/// A checkpoint after every this many records.
pub const EVERY: u64 = 100;

pub struct Signer {
    pair: Ed25519KeyPair,
}

impl Signer {
    /// Reads the signing key (PKCS#8, mode 0600), creating it on first start, and writes the
    /// public key beside it (`<key>.pub`, hex) for verifiers.
    pub fn load_or_create(path: &Path) -> Result<Signer, String> {
        let pkcs8 = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|e| e.to_string())?;
                crate::secret::write_private_file(path, doc.as_ref())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let pair =
            Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| format!("{}: {e}", path.display()))?;
        let public = hex::encode(pair.public_key().as_ref());
        std::fs::write(path.with_extension("pub"), format!("{public}\n"))
            .map_err(|e| e.to_string())?;
        Ok(Signer { pair })
    }

    /// The public key, hex, as published in `<key>.pub`.
    #[must_use]
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.pair.public_key().as_ref())
    }

    /// An Ed25519 signature over `message`, hex.
    #[must_use]
    pub fn sign_hex(&self, message: &[u8]) -> String {
        hex::encode(self.pair.sign(message).as_ref())
    }

    /// The checkpoint record's body for the chain as it stands after `seq` with `hash`.
    #[must_use]
    pub fn body(&self, seq: u64, hash: &str) -> Body {
        Body::new(Kind::Checkpoint(Checkpoint {
            covers: seq,
            hash: hash.to_owned(),
            signature: self.sign_hex(hash.as_bytes()),
            public_key: self.public_key_hex(),
        }))
    }
}

/// Checks a checkpoint against the chain tip it follows and, when known, the published
/// public key (hex).
pub fn check(
    checkpoint: &Checkpoint,
    prev_seq: u64,
    prev_hash: &str,
    public_key: Option<&str>,
) -> Result<(), String> {
    if checkpoint.covers != prev_seq || checkpoint.hash != prev_hash {
        return Err(format!(
            "checkpoint does not cover the record before it (record {prev_seq})"
        ));
    }
    check_signature(
        &checkpoint.public_key,
        public_key,
        prev_hash.as_bytes(),
        &checkpoint.signature,
    )
    .map_err(|e| format!("checkpoint over record {prev_seq}: {e}"))
}

/// Checks an Ed25519 signature (hex) made with `embedded_key` (hex), which must be the
/// published key when one is known: without that, anyone could sign with a key of their own.
pub fn check_signature(
    embedded_key: &str,
    published_key: Option<&str>,
    message: &[u8],
    signature: &str,
) -> Result<(), String> {
    if published_key.is_some_and(|k| k != embedded_key) {
        return Err(format!(
            "signed with key {embedded_key:?}, not the published one"
        ));
    }
    let (Ok(key), Ok(signature)) = (hex::decode(embedded_key), hex::decode(signature)) else {
        return Err("the key or the signature is not hex".into());
    };
    UnparsedPublicKey::new(&ED25519, key)
        .verify(message, &signature)
        .map_err(|_| "the signature is not valid".to_owned())
}
