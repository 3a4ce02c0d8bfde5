//! Offline verification of one chain's folder: every line of every file, in file order,
//! against the chain; the files themselves must follow each other without a gap, a trail
//! whose head was deleted by retention must start where its signed anchor (`pruned.json`)
//! says, and every record of a replica's chain must name that replica (`replicas.rs` reads
//! every chain of a trail root with these).

use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::Path;

use super::chain::{Break, Record, Tip, check_line};
use super::files::{self, TrailFile};
use super::replicas::Chain;
use super::retention::{ANCHOR_FILE, Anchor};
use crate::record::Kind;

#[derive(Debug)]
pub enum VerifyError {
    Broken(Break),
    Io(String),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Broken(b) => write!(f, "{} line {}: {}", b.file, b.line, b.reason),
            VerifyError::Io(e) => f.write_str(e),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Summary {
    /// Records checked (those in the remaining files).
    pub records: u64,
    /// Trail files read.
    pub files: usize,
    /// The last seq deleted by retention, when the head of the trail was pruned.
    pub pruned_through: Option<u64>,
    pub tip: Tip,
}

fn broken(file: &str, line: usize, reason: String) -> VerifyError {
    VerifyError::Broken(Break {
        file: file.to_owned(),
        line,
        seq: None,
        reason,
    })
}

/// `trail-000002.jsonl` or `trail-000002.jsonl..trail-000004.jsonl`.
fn span(first: u64, last: u64) -> String {
    if first == last {
        files::name(first)
    } else {
        format!("{}..{}", files::name(first), files::name(last))
    }
}

/// What is to be read: where the chain starts, and the files that follow.
struct Layout {
    start: Tip,
    anchor: Option<Anchor>,
    files: Vec<TrailFile>,
}

/// Lists the files, checks that their numbers follow each other, and finds where the chain
/// starts: at the genesis with file 1, or after a valid anchor. Files the anchor covers are
/// skipped: they are left over from a pruning that was cut short, and are deleted next time.
fn layout(dir: &Path, public_key: Option<&str>) -> Result<Layout, VerifyError> {
    let all = files::list(dir).map_err(VerifyError::Io)?;
    let anchor = Anchor::load(dir).map_err(|e| broken(ANCHOR_FILE, 1, e))?;
    let (start, files) = if let Some(anchor) = &anchor {
        anchor.check(public_key).map_err(|e| {
            broken(
                ANCHOR_FILE,
                1,
                format!("the anchor of the pruned trail is not valid: {e}"),
            )
        })?;
        let through = anchor
            .through_number()
            .map_err(|e| broken(ANCHOR_FILE, 1, e))?;
        let rest: Vec<TrailFile> = all.into_iter().filter(|f| f.number > through).collect();
        match rest.first() {
            None => {
                return Err(broken(
                    ANCHOR_FILE,
                    1,
                    format!(
                        "records through {} were pruned, but no trail file after {} remains",
                        anchor.through_seq, anchor.through_file
                    ),
                ));
            }
            Some(first) if first.number != through + 1 => {
                return Err(broken(
                    &first.name(),
                    1,
                    format!(
                        "{} deleted: {ANCHOR_FILE} ends with {}, the trail resumes at {}",
                        span(through + 1, first.number - 1),
                        anchor.through_file,
                        first.name()
                    ),
                ));
            }
            Some(_) => {}
        }
        let start = Tip {
            seq: anchor.through_seq,
            hash: anchor.hash.clone(),
        };
        (start, rest)
    } else {
        if let Some(first) = all.first().filter(|f| f.number != 1) {
            return Err(broken(
                &first.name(),
                1,
                format!(
                    "the trail starts at {} and there is no {ANCHOR_FILE}: {} deleted",
                    first.name(),
                    span(1, first.number - 1)
                ),
            ));
        }
        (Tip::default(), all)
    };
    for pair in files.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        if after.number != before.number + 1 {
            return Err(broken(
                &after.name(),
                1,
                format!(
                    "{} deleted: the trail goes from {} to {}",
                    span(before.number + 1, after.number - 1),
                    before.name(),
                    after.name()
                ),
            ));
        }
    }
    Ok(Layout {
        start,
        anchor,
        files,
    })
}

/// The chain's published public key, when present.
fn published_key(chain: &Chain) -> Option<String> {
    std::fs::read_to_string(chain.public_key_file())
        .ok()
        .map(|k| k.trim().to_owned())
}

/// Checks every record of every trail file in `dir`, read as one chain, and every signed
/// checkpoint (and the anchor of a pruned trail) against the published public key when
/// present; stops at the first break.
pub fn verify_dir(dir: &Path) -> Result<Summary, VerifyError> {
    verify_each(dir, |_| {})
}

/// [`verify_dir`], handing each verified record to `f` on the way: one read of the trail for
/// those who need both (usage at start-up, the report).
pub fn verify_each(dir: &Path, f: impl FnMut(&Record)) -> Result<Summary, VerifyError> {
    verify_chain(&Chain::folder(dir), f)
}

/// [`verify_each`] for one chain of a trail root: a replica's chain must also say, in every
/// record, that this replica wrote it, and a break names its file as the root shows it
/// (`r-1a2b3c4d/trail-000001.jsonl`).
pub fn verify_chain(chain: &Chain, f: impl FnMut(&Record)) -> Result<Summary, VerifyError> {
    verify_in(chain, f).map_err(|e| named(chain, e))
}

/// A break named with the chain's folder.
fn named(chain: &Chain, e: VerifyError) -> VerifyError {
    match e {
        VerifyError::Broken(mut b) => {
            b.file = chain.shown(&b.file);
            VerifyError::Broken(b)
        }
        VerifyError::Io(e) => VerifyError::Io(e),
    }
}

fn verify_in(chain: &Chain, mut f: impl FnMut(&Record)) -> Result<Summary, VerifyError> {
    let dir = chain.dir.as_path();
    let public_key = published_key(chain);
    let layout = layout(dir, public_key.as_deref())?;
    let mut tip = layout.start.clone();
    let mut records = 0;
    read_lines(&layout.files, |file, line, text| {
        let (next, record) = check_line(&tip, file, line, text).map_err(|mut b| {
            if records == 0 && layout.anchor.is_some() {
                let _ = write!(
                    b.reason,
                    " (the trail resumes after the anchor in {ANCHOR_FILE})"
                );
            }
            VerifyError::Broken(b)
        })?;
        if let Some(id) = chain.replica()
            && record.body.replica.as_deref() != Some(id)
        {
            return Err(VerifyError::Broken(Break {
                file: file.to_owned(),
                line,
                seq: Some(record.seq),
                reason: format!(
                    "record {} {}, but lies in the chain of replica {id}",
                    record.seq,
                    record.body.replica.as_deref().map_or_else(
                        || "names no replica".to_owned(),
                        |other| format!("was written by replica {other}")
                    )
                ),
            }));
        }
        if let Kind::Checkpoint(checkpoint) = &record.body.kind {
            super::checkpoint::check(checkpoint, tip.seq, &tip.hash, public_key.as_deref())
                .map_err(|reason| {
                    VerifyError::Broken(Break {
                        file: file.to_owned(),
                        line,
                        seq: Some(record.seq),
                        reason: format!("record {}: {reason}", record.seq),
                    })
                })?;
        }
        f(&record);
        tip = next;
        records += 1;
        Ok(())
    })?;
    Ok(Summary {
        records,
        files: layout.files.len(),
        pruned_through: layout.anchor.map(|a| a.through_seq),
        tip,
    })
}

/// Calls `f` with each line of the files, in order, with the file's name and the line number.
fn read_lines(
    files: &[TrailFile],
    mut f: impl FnMut(&str, usize, &str) -> Result<(), VerifyError>,
) -> Result<(), VerifyError> {
    for file in files {
        let name = file.name();
        let reader = std::fs::File::open(&file.path)
            .map(std::io::BufReader::new)
            .map_err(|e| VerifyError::Io(format!("{}: {e}", file.path.display())))?;
        for (i, line) in reader.lines().enumerate() {
            let line =
                line.map_err(|e| VerifyError::Io(format!("{}: {e}", file.path.display())))?;
            f(&name, i + 1, &line)?;
        }
    }
    Ok(())
}

/// All records of the trail's files in order, parsed (after verification, for queries).
pub fn records(dir: &Path) -> Result<Vec<Record>, VerifyError> {
    let mut out = Vec::new();
    for_each(dir, |record| out.push(record))?;
    Ok(out)
}

/// Each record of the trail's files in order, without holding them all.
pub fn for_each(dir: &Path, f: impl FnMut(Record)) -> Result<(), VerifyError> {
    for_each_in(&Chain::folder(dir), f)
}

/// [`for_each`] for one chain of a trail root, its files named as the root shows them.
pub fn for_each_in(chain: &Chain, mut f: impl FnMut(Record)) -> Result<(), VerifyError> {
    let layout =
        layout(&chain.dir, published_key(chain).as_deref()).map_err(|e| named(chain, e))?;
    read_lines(&layout.files, |file, line, text| {
        let record = Record::parse(text).map_err(|e| broken(file, line, e))?;
        f(record);
        Ok(())
    })
    .map_err(|e| named(chain, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Lifecycle, note};

    #[tokio::test]
    async fn appended_records_verify_and_a_reopened_trail_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = super::super::tests::open(dir.path());
            let appends: Vec<_> = (0..20)
                .map(|i| log.append(note(format!("record {i}"))))
                .collect();
            let seqs: Vec<u64> = futures::future::join_all(appends)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            let mut sorted = seqs.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (1..=20).collect::<Vec<_>>());
        }
        let log = super::super::tests::open(dir.path());
        assert_eq!(log.append(note("after reopening")).await.unwrap(), 21);
        assert_eq!(verify_dir(dir.path()).unwrap().records, 21);
    }

    #[tokio::test]
    async fn a_chain_rewritten_without_the_key_fails_at_the_next_checkpoint() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("audit");
        {
            let log = super::super::tests::open(&dir);
            for i in 0..150 {
                log.append(note(format!("record {i}"))).await.unwrap();
            }
        }
        // 150 records and one checkpoint after record 100.
        let summary = verify_dir(&dir).unwrap();
        assert_eq!(summary.records, 151);
        let trail = dir.join(super::super::TRAIL_FILE);
        let lines: Vec<String> = std::fs::read_to_string(&trail)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert!(lines[100].contains("\"checkpoint\""), "{}", lines[100]);

        // Edit record 50 and recompute every hash after it, as someone without the key would.
        let mut tip = Tip::default();
        let mut forged = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let mut record = Record::parse(line).unwrap();
            if i == 49
                && let Kind::Lifecycle(Lifecycle::PolicyReloaded(n)) = &mut record.body.kind
            {
                n.summary = "record 4242".into();
            }
            let rebuilt =
                super::super::chain::seal(record.seq, &tip.hash, &record.body.canonical());
            tip = Tip {
                seq: rebuilt.seq,
                hash: rebuilt.hash.clone(),
            };
            forged.push(rebuilt.line);
        }
        std::fs::write(&trail, forged.join("\n") + "\n").unwrap();
        let Err(VerifyError::Broken(b)) = verify_dir(&dir) else {
            panic!("forgery verified")
        };
        assert_eq!(b.line, 101);
        assert!(
            b.reason.contains("does not cover the record before it"),
            "{}",
            b.reason
        );
    }

    #[test]
    fn a_tampered_trail_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut tip = Tip::default();
        let mut text = String::new();
        for seq in 1..=3 {
            let r = super::super::chain::seal(
                seq,
                &tip.hash,
                &note(format!("record {seq}.")).canonical(),
            );
            tip = Tip {
                seq,
                hash: r.hash.clone(),
            };
            text.push_str(&r.line);
            text.push('\n');
        }
        std::fs::write(
            dir.path().join(super::super::TRAIL_FILE),
            text.replace("record 2.", "record 9."),
        )
        .unwrap();
        let Err(err) = super::super::AuditLog::open(
            dir.path(),
            &super::super::Settings::default(),
            std::sync::Arc::new(crate::clock::SystemClock),
        ) else {
            panic!("opened a broken trail")
        };
        assert!(
            err.to_string()
                .contains("broken at trail-000001.jsonl line 2"),
            "{err}"
        );
    }
}
