//! Retention: the oldest trail files, once their newest record is older than the configured
//! number of days, are deleted. The trail must stay verifiable afterwards, and deleting its
//! head must not be something anyone can do silently, so before deleting, the writer signs an
//! anchor (`pruned.json`) saying where the deleted part ended: the last deleted file, its last
//! record's seq and hash. `verify` accepts a trail that starts after file 1 only with a valid
//! anchor whose hash is the first remaining record's `prev`. Without the signing key, an
//! anchor cannot be made, so removing files (and the anchor) is detected.
//!
//! Age is not the only bound: a [`Hold`] keeps every record after a seq, whatever its age,
//! for a reader that resumes from that seq after a restart (the gateway's usage row says
//! what it counted through, and a restart replays the trail after it).

use std::io::BufRead as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::chain::Record;
use super::checkpoint::{self, Signer};
use super::files::{self, TrailFile};
use crate::record::{self, Body, Lifecycle};

/// The anchor's file, in the trail folder.
pub const ANCHOR_FILE: &str = "pruned.json";

/// Where the deleted head of the trail ended, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// The last file deleted (`trail-000003.jsonl`); the trail resumes with the next one.
    pub through_file: String,
    /// The seq of the last record of that file.
    pub through_seq: u64,
    /// That record's hash: the `prev` of the first record that remains.
    pub hash: String,
    /// When the files were deleted (RFC 3339).
    pub pruned_at: String,
    /// The signing key (hex), checked against the published `audit-signing.pub` when present.
    pub public_key: String,
    /// Ed25519 (hex) over the canonical JSON of every other field.
    pub signature: String,
}

impl Anchor {
    fn signed(
        signer: &Signer,
        through_file: String,
        through_seq: u64,
        hash: String,
        at: OffsetDateTime,
    ) -> Anchor {
        let mut anchor = Anchor {
            through_file,
            through_seq,
            hash,
            pruned_at: crate::duration::rfc3339(at),
            public_key: signer.public_key_hex(),
            signature: String::new(),
        };
        anchor.signature = signer.sign_hex(&anchor.message());
        anchor
    }

    /// What is signed: every field but the signature, as canonical JSON.
    fn message(&self) -> Vec<u8> {
        let mut value = serde_json::to_value(self).expect("anchors serialise");
        if let Some(map) = value.as_object_mut() {
            map.remove("signature");
        }
        crate::record::canonical(&value).into_bytes()
    }

    /// The number of the last deleted file, from its name.
    pub fn through_number(&self) -> Result<u64, String> {
        files::number_of(&self.through_file).ok_or_else(|| {
            format!(
                "through_file {:?} is not a trail file name",
                self.through_file
            )
        })
    }

    /// Checks the signature, against the published key when one is known.
    pub fn check(&self, published_key: Option<&str>) -> Result<(), String> {
        self.through_number()?;
        checkpoint::check_signature(
            &self.public_key,
            published_key,
            &self.message(),
            &self.signature,
        )
    }

    /// The anchor of the trail in `dir`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<Anchor>, String> {
        let path = dir.join(ANCHOR_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{}: not an anchor: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Replaces the anchor atomically (a temporary file renamed over it, both synced), so a
    /// crash leaves the old anchor or the new one, never half of one.
    fn store(&self, dir: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_vec_pretty(self).expect("anchors serialise");
        text.push(b'\n');
        files::replace(dir, ANCHOR_FILE, &text)
    }
}

/// Records retention must keep however old they are: every one after a seq. Shared between
/// whoever sets it and the writer that prunes, and only ever moved forward.
#[derive(Debug, Clone)]
pub struct Hold(Arc<AtomicU64>);

impl Hold {
    /// No hold: age alone decides.
    #[must_use]
    pub fn none() -> Hold {
        Hold(Arc::new(AtomicU64::new(u64::MAX)))
    }

    /// Keeps every record after `seq`.
    #[must_use]
    pub fn after(seq: u64) -> Hold {
        Hold(Arc::new(AtomicU64::new(seq)))
    }

    /// Lets records through `seq` go (never takes back what was let go).
    pub fn advance(&self, seq: u64) {
        self.0.fetch_max(seq, Ordering::AcqRel);
    }

    /// The seq after which every record is kept.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// What one pruning deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub files: Vec<String>,
    pub through_seq: u64,
}

impl Pruned {
    /// The lifecycle record that goes into the chain, so the trail itself says what was
    /// deleted and when.
    #[must_use]
    pub fn record(&self, retain_days: u32, at: OffsetDateTime) -> Body {
        Body::new(Lifecycle::AuditPruned(record::Pruned {
            at,
            files: self.files.clone(),
            through_seq: self.through_seq,
            summary: format!(
                "deleted {} trail file(s) older than {retain_days} day(s), records through {}; anchored in {ANCHOR_FILE}",
                self.files.len(),
                self.through_seq
            ),
        }))
    }
}

/// Deletes, oldest first, the files before `current` whose newest record is older than
/// `cutoff` and whose last record is not after `hold`, stopping at the first one that is not
/// (so what remains is contiguous). The anchor is written before anything is deleted.
/// `None`: nothing was old enough.
pub fn prune(
    dir: &Path,
    current: u64,
    cutoff: OffsetDateTime,
    hold: &Hold,
    signer: &Signer,
    now: OffsetDateTime,
) -> Result<Option<Pruned>, String> {
    let mut doomed: Vec<TrailFile> = Vec::new();
    let mut last: Option<Record> = None;
    let keep_after = hold.seq();
    for file in files::list(dir)? {
        if file.number >= current {
            break;
        }
        let (newest_at, last_record) = scan(&file)?;
        match newest_at {
            Some(at) if at < cutoff => {}
            _ => break,
        }
        if last_record.as_ref().is_some_and(|r| r.seq > keep_after) {
            break;
        }
        if last_record.is_some() {
            last = last_record;
        }
        doomed.push(file);
    }
    let (Some(through), Some(last)) = (doomed.last(), last) else {
        return Ok(None);
    };
    // After an interrupted pruning the anchor can be ahead of what is deleted now; never move
    // it back, or the files between would look deleted without one.
    let existing = Anchor::load(dir)?;
    let behind = match &existing {
        Some(a) => a.through_number()? >= through.number,
        None => false,
    };
    if !behind {
        Anchor::signed(signer, through.name(), last.seq, last.hash, now)
            .store(dir)
            .map_err(|e| format!("{}: {e}", dir.join(ANCHOR_FILE).display()))?;
    }
    let mut deleted = Vec::new();
    for file in &doomed {
        std::fs::remove_file(&file.path).map_err(|e| format!("{}: {e}", file.path.display()))?;
        deleted.push(file.name());
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(Some(Pruned {
        files: deleted,
        through_seq: last.seq,
    }))
}

/// The newest `at` among a file's records and its last record. Unreadable content is an
/// error: a file that does not parse is never deleted by retention.
fn scan(file: &TrailFile) -> Result<(Option<OffsetDateTime>, Option<Record>), String> {
    let name = file.name();
    let reader = std::fs::File::open(&file.path)
        .map(std::io::BufReader::new)
        .map_err(|e| format!("{}: {e}", file.path.display()))?;
    let (mut newest, mut last) = (None, None);
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", file.path.display()))?;
        let record = Record::parse(&line).map_err(|e| format!("{name} line {}: {e}", i + 1))?;
        newest = newest.max(record.body.kind.at());
        last = Some(record);
    }
    Ok((newest, last))
}
