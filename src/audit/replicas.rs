//! One chain per replica under a trail root. Every gateway sharing a store has a data
//! directory of its own, a replica id made there at first start (`replica.id`: `r-` and 8
//! hex digits) and a chain of its own, in the folder of the root named by that id:
//! `<root>/r-1a2b3c4d/trail-000001.jsonl`. One writer per chain: the writer holds a lock on
//! its folder, so a second gateway started with the same id is refused.
//!
//! A folder per replica rather than the id in each file's name: everything a writer keeps
//! beside its files (the retention anchor, torn tails moved aside, the sinks' cursors, its
//! published key, its lock) is then its own without being named for it, so replicas sharing
//! one root never touch each other's files, and the code for one chain (`files.rs`,
//! `verify.rs`, `retention.rs`, `repair.rs`, `sink.rs`) runs unchanged in each folder.
//!
//! The trail written before replicas had ids (trail files at the root itself, `pruned.json`
//! beside them and the public key beside the root) is read as one more chain, `local`, and
//! never written again: nothing says which gateway wrote it, so no replica adopts it.
//!
//! Readers take every chain: verification reports on each chain apart (a break in one does
//! not hide the others), and queries merge the records of all of them by time, each with
//! the replica whose chain holds it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::chain::Record;
use super::files;
use super::retention::ANCHOR_FILE;
use super::verify::{Summary, VerifyError, for_each_in, verify_chain};

/// The name the trail from before replicas is read under.
pub const BEFORE_REPLICAS: &str = "local";
/// A replica's public signing key, published in its chain's folder for verifiers.
pub const PUBLIC_KEY_FILE: &str = "audit-signing.pub";

/// Whether `name` is a replica id: `r-` and 8 lowercase hex digits.
#[must_use]
pub fn is_replica_id(name: &str) -> bool {
    name.len() == 10
        && name.starts_with("r-")
        && name[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One chain: its folder, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub dir: PathBuf,
    pub origin: Origin,
}

/// Whose chain it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A folder read as it is: the trail from before replicas at a root, or any one chain's
    /// folder given on its own. Its records are not asked which replica wrote them.
    Unnamed,
    /// The chain of the replica with this id, in the folder of that name; every record in it
    /// names that replica.
    Replica(String),
}

impl Chain {
    /// The folder `dir`, read as one chain (its public key published beside it).
    #[must_use]
    pub fn folder(dir: &Path) -> Chain {
        Chain {
            dir: dir.to_owned(),
            origin: Origin::Unnamed,
        }
    }

    /// The chain of replica `id` under `root`.
    #[must_use]
    pub fn of_replica(root: &Path, id: &str) -> Chain {
        Chain {
            dir: root.join(id),
            origin: Origin::Replica(id.to_owned()),
        }
    }

    /// The name readers show it by: the replica's id, or [`BEFORE_REPLICAS`].
    #[must_use]
    pub fn name(&self) -> &str {
        match &self.origin {
            Origin::Unnamed => BEFORE_REPLICAS,
            Origin::Replica(id) => id,
        }
    }

    /// The replica every record must name, for a replica's chain.
    #[must_use]
    pub fn replica(&self) -> Option<&str> {
        match &self.origin {
            Origin::Unnamed => None,
            Origin::Replica(id) => Some(id),
        }
    }

    /// Where its signing key's public half is published: in a replica's folder, and beside
    /// the folder of any other (`audit-signing.pub` in the data directory).
    #[must_use]
    pub fn public_key_file(&self) -> PathBuf {
        match &self.origin {
            Origin::Unnamed => self.dir.with_file_name(PUBLIC_KEY_FILE),
            Origin::Replica(_) => self.dir.join(PUBLIC_KEY_FILE),
        }
    }

    /// How its files are named in messages: `r-1a2b3c4d/trail-000001.jsonl`, or the file
    /// name alone for a folder read as it is.
    #[must_use]
    pub fn shown(&self, file: &str) -> String {
        match &self.origin {
            Origin::Unnamed => file.to_owned(),
            Origin::Replica(id) => format!("{id}/{file}"),
        }
    }

    /// Whether the folder holds anything of a trail (a trail file or a retention anchor).
    fn is_present(&self) -> Result<bool, String> {
        Ok(!files::list(&self.dir)?.is_empty() || self.dir.join(ANCHOR_FILE).exists())
    }
}

/// The trail from before replicas at `root`, when there is one.
pub fn before_replicas(root: &Path) -> Result<Option<Chain>, String> {
    let chain = Chain::folder(root);
    Ok(chain.is_present()?.then_some(chain))
}

/// Every chain under `root`: the trail from before replicas first, when there is one, then
/// each replica's by id (no root yet: none). A folder named like a replica's (`r-...`) but
/// not a replica id is an error naming it, since reading around it could hide a chain;
/// other folders (a mount's `lost+found`) are not the trail's.
pub fn chains(root: &Path) -> Result<Vec<Chain>, String> {
    let mut replicas = Vec::new();
    for entry in files::entries(root)? {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !(name.starts_with("r-") && entry.path().is_dir()) {
            continue;
        }
        if !is_replica_id(&name) {
            return Err(format!(
                "{}: {name:?} is not a replica's chain folder (r- and 8 hex digits)",
                root.display()
            ));
        }
        replicas.push(Chain::of_replica(root, &name));
    }
    replicas.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(before_replicas(root)?.into_iter().chain(replicas).collect())
}

/// A record read from a trail root, with the replica whose chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The chain's name ([`Chain::name`]).
    pub replica: String,
    pub record: Record,
}

impl Entry {
    /// The stored line with the chain's name in front, as `sesame audit --json` prints it
    /// and `GET /v1/audit` answers it: `{"replica":"r-1a2b3c4d","seq":...}`. Seqs count
    /// within one chain, so the replica and the seq together name a record; the rest is the
    /// line as stored, which its hash still checks.
    #[must_use]
    pub fn line(&self) -> String {
        let line = self.record.line();
        let replica = serde_json::Value::String(self.replica.clone());
        format!("{{\"replica\":{replica},{}", &line[1..])
    }

    /// A line as [`Entry::line`] writes it. A line without `replica` (from a gateway older
    /// than replicas) is the chain before replicas'.
    pub fn parse(line: &str) -> Result<Entry, String> {
        #[derive(serde::Deserialize)]
        struct Replica {
            replica: Option<String>,
        }
        let record = Record::parse(line)?;
        let replica = serde_json::from_str::<Replica>(line)
            .map_err(|e| format!("is not a trail record: {e}"))?
            .replica
            .unwrap_or_else(|| BEFORE_REPLICAS.to_owned());
        Ok(Entry { replica, record })
    }
}

/// What verifying one chain found.
#[derive(Debug)]
pub struct Checked {
    pub chain: Chain,
    pub outcome: Result<Summary, VerifyError>,
}

/// Verifies every chain under `root`, each to its end or its first break, handing each
/// verified record to `f` with its chain.
pub fn verify_all(root: &Path, mut f: impl FnMut(&Chain, &Record)) -> Result<Vec<Checked>, String> {
    Ok(chains(root)?
        .into_iter()
        .map(|chain| {
            let outcome = verify_chain(&chain, |record| f(&chain, record));
            Checked { chain, outcome }
        })
        .collect())
}

/// The records of every chain under `root` that `keep` keeps, merged by time, without
/// checking the chains (that is [`verify_all`]).
pub fn read(
    root: &Path,
    mut keep: impl FnMut(&Chain, &Record) -> bool,
) -> Result<Vec<Entry>, VerifyError> {
    let mut each = Vec::new();
    for chain in chains(root).map_err(VerifyError::Io)? {
        let mut kept = Vec::new();
        for_each_in(&chain, |record| {
            if keep(&chain, &record) {
                kept.push(entry(&chain, record));
            }
        })?;
        each.push(kept);
    }
    Ok(merge(each))
}

/// [`verify_all`] and [`read`] in one read where the trail is intact: the outcome for each
/// chain, and the records `keep` keeps, merged by time. A broken chain's records are read
/// again without the checks, so the reader still sees everything the files hold.
pub fn read_checked(
    root: &Path,
    mut keep: impl FnMut(&Chain, &Record) -> bool,
) -> Result<(Vec<Checked>, Vec<Entry>), VerifyError> {
    let mut each = Vec::new();
    let mut checked = Vec::new();
    for chain in chains(root).map_err(VerifyError::Io)? {
        let mut kept = Vec::new();
        let outcome = verify_chain(&chain, |record| {
            if keep(&chain, record) {
                kept.push(entry(&chain, record.clone()));
            }
        });
        if outcome.is_err() {
            kept.clear();
            for_each_in(&chain, |record| {
                if keep(&chain, &record) {
                    kept.push(entry(&chain, record));
                }
            })?;
        }
        each.push(kept);
        checked.push(Checked { chain, outcome });
    }
    Ok((checked, merge(each)))
}

fn entry(chain: &Chain, record: Record) -> Entry {
    Entry {
        replica: chain.name().to_owned(),
        record,
    }
}

/// The records of several chains, each in its chain's order, merged into one sequence by
/// time: the earliest next record of any chain comes next, ties to the chain listed first.
/// A record with no time (a checkpoint) takes its chain's last time, so it stays beside
/// the record it signs; a chain whose clock went back keeps its own order.
#[must_use]
pub fn merge(chains: Vec<Vec<Entry>>) -> Vec<Entry> {
    let mut out = Vec::with_capacity(chains.iter().map(Vec::len).sum());
    let mut heads: Vec<(VecDeque<Entry>, Option<OffsetDateTime>)> = chains
        .into_iter()
        .map(|entries| (VecDeque::from(entries), None))
        .collect();
    loop {
        let mut next: Option<(usize, Option<OffsetDateTime>)> = None;
        for (i, (entries, last)) in heads.iter().enumerate() {
            let Some(head) = entries.front() else {
                continue;
            };
            let at = head.record.body.kind.at().or(*last);
            if next.is_none_or(|(_, earliest)| at < earliest) {
                next = Some((i, at));
            }
        }
        let Some((i, at)) = next else { break };
        let (entries, last) = &mut heads[i];
        *last = at;
        out.extend(entries.pop_front());
    }
    out
}

#[cfg(test)]
mod tests;
