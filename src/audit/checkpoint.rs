//! Signed checkpoints: every so often the writer adds a record carrying an Ed25519 signature
//! over the hash of the record before it. Rewriting the chain from some point on (every hash
//! recomputed) then fails at the next checkpoint, unless the signing key was stolen too; the
//! public key can be published and kept elsewhere.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

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
                crate::grant::credential::write_private_file(path, doc.as_ref())
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

    /// The checkpoint record's body for the chain as it stands after `seq` with `hash`.
    #[must_use]
    pub fn body(&self, seq: u64, hash: &str) -> serde_json::Value {
        serde_json::json!({
            "kind": "checkpoint",
            "covers": seq,
            "hash": hash,
            "signature": hex::encode(self.pair.sign(hash.as_bytes()).as_ref()),
            "public_key": hex::encode(self.pair.public_key().as_ref()),
        })
    }
}

/// Checks a checkpoint body against the chain tip it follows and, when known, the published
/// public key (hex).
pub fn check(
    body: &serde_json::Value,
    prev_seq: u64,
    prev_hash: &str,
    public_key: Option<&str>,
) -> Result<(), String> {
    let field = |k: &str| {
        body.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    };
    if body.get("covers").and_then(serde_json::Value::as_u64) != Some(prev_seq)
        || field("hash") != prev_hash
    {
        return Err(format!(
            "checkpoint does not cover the record before it (record {prev_seq})"
        ));
    }
    let key = public_key.unwrap_or(field("public_key"));
    if public_key.is_some_and(|k| k != field("public_key")) {
        return Err("checkpoint was signed with a key other than the published one".into());
    }
    let (Ok(key), Ok(signature)) = (hex::decode(key), hex::decode(field("signature"))) else {
        return Err("checkpoint key or signature is not hex".into());
    };
    UnparsedPublicKey::new(&ED25519, key)
        .verify(prev_hash.as_bytes(), &signature)
        .map_err(|_| format!("checkpoint signature over record {prev_seq} is not valid"))
}
