//! Several chains under one trail root: two replicas writing side by side with a manual clock,
//! each chain verified on its own and named on a break, records merged by time with their
//! replica, one writer per chain, and the trail from before replicas (`audit-v1`) read as
//! the chain `local`, beside the chains of the replicas that came after it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::Duration;
use time::macros::datetime;

use super::*;
use crate::audit::chain::Record;
use crate::audit::{AuditError, AuditLog, Replica, Settings};
use crate::clock::{Clock as _, ManualClock};
use crate::record::examples::{Use, completion, decision};
use crate::record::{Kind, Lifecycle, Note};

const A: &str = "r-0a1b2c3d";
const B: &str = "r-4e5f6a7b";

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// Copies a fixture's folder, so a test may write beside it.
fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Replicas writing into one root, each with its signing key in a data directory of its own.
struct Replicas {
    dir: tempfile::TempDir,
    clock: ManualClock,
}

impl Replicas {
    fn new() -> Replicas {
        Replicas {
            dir: tempfile::tempdir().unwrap(),
            clock: ManualClock::new(datetime!(2026-12-01 09:00 UTC)),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("audit")
    }

    fn open(&self, id: &str) -> Result<AuditLog, AuditError> {
        self.open_replaying(id, |_| {})
    }

    fn open_replaying(
        &self,
        id: &str,
        replay: impl FnMut(&Record),
    ) -> Result<AuditLog, AuditError> {
        let data_dir = self.dir.path().join(format!("data-{id}"));
        std::fs::create_dir_all(&data_dir).unwrap();
        AuditLog::open_replica(
            Replica {
                root: &self.root(),
                id,
                signing_key: &data_dir.join(crate::audit::SIGNING_KEY_FILE),
            },
            &Settings::default(),
            Arc::new(self.clock.clone()),
            (crate::audit::retention::Hold::none(), true),
            replay,
        )
    }

    /// A policy reload saying `summary`, at the clock's time, after a second passes.
    fn note(&self, summary: &str) -> Lifecycle {
        self.clock.advance(Duration::seconds(1));
        Lifecycle::PolicyReloaded(Note {
            at: self.clock.now(),
            summary: summary.into(),
        })
    }
}

/// The entries are these: each its replica, its seq, and the summary of a note (or the
/// record's kind).
#[track_caller]
fn assert_shown(entries: &[Entry], expected: &[(&str, u64, &str)]) {
    let shown: Vec<(&str, u64, String)> = entries
        .iter()
        .map(|e| {
            let what = match &e.record.body.kind {
                Kind::Lifecycle(Lifecycle::PolicyReloaded(n)) => n.summary.clone(),
                other => other.name().to_owned(),
            };
            (e.replica.as_str(), e.record.seq, what)
        })
        .collect();
    let expected: Vec<(&str, u64, String)> = expected
        .iter()
        .map(|(r, s, w)| (*r, *s, (*w).to_owned()))
        .collect();
    assert_eq!(shown, expected);
}

/// Every chain under `root` is intact, and they are these, holding this many records.
#[track_caller]
fn assert_intact(root: &Path, expected: &[(&str, u64)]) {
    let checked = verify_all(root, |_, _| {}).unwrap();
    let found: Vec<(&str, u64)> = checked
        .iter()
        .map(|c| match &c.outcome {
            Ok(summary) => (c.chain.name(), summary.records),
            Err(e) => panic!("{}: {e}", c.chain.name()),
        })
        .collect();
    assert_eq!(found, expected);
}

fn broken(checked: &Checked) -> String {
    match &checked.outcome {
        Err(VerifyError::Broken(b)) => b.to_string(),
        other => panic!("{}: {other:?}", checked.chain.name()),
    }
}

#[tokio::test]
async fn two_replicas_keep_a_chain_each_and_reading_merges_them_by_time() {
    let r = Replicas::new();
    let (a, b) = (r.open(A).unwrap(), r.open(B).unwrap());
    a.append(r.note("a1")).await.unwrap();
    b.append(r.note("b1")).await.unwrap();
    b.append(r.note("b2")).await.unwrap();
    a.append(r.note("a2")).await.unwrap();
    // The same second on both: the chain listed first comes first.
    let same = r.note("a3");
    a.append(same.clone()).await.unwrap();
    b.append(Lifecycle::PolicyReloaded(Note {
        at: r.clock.now(),
        summary: "b3".into(),
    }))
    .await
    .unwrap();

    // Each replica wrote only its own folder, and every record names it.
    let root = r.root();
    for (id, count) in [(A, 3), (B, 3)] {
        let records = crate::audit::verify::records(&root.join(id)).unwrap();
        assert_eq!(records.len(), count, "{id}");
        assert!(
            records
                .iter()
                .all(|r| r.body.replica.as_deref() == Some(id)),
            "{records:?}"
        );
    }
    assert!(crate::audit::files::list(&root).unwrap().is_empty());

    assert_intact(&root, &[(A, 3), (B, 3)]);

    let merged = read(&root, |_, _| true).unwrap();
    assert_shown(
        &merged,
        &[
            (A, 1, "a1"),
            (B, 1, "b1"),
            (B, 2, "b2"),
            (A, 2, "a2"),
            (A, 3, "a3"),
            (B, 3, "b3"),
        ],
    );
    // A query's filter sees the replica; the table and `--json` show it.
    let only_b = read(&root, |chain, _| chain.name() == B).unwrap();
    assert_eq!(only_b.len(), 3);
    assert_eq!(crate::audit::query::cells(&merged[1])[..2], [B, "1"]);
    let line = merged[1].line();
    assert!(
        line.starts_with(r#"{"replica":"r-4e5f6a7b","seq":1,"prev":"#),
        "{line}"
    );
    assert_eq!(Entry::parse(&line).unwrap(), merged[1]);
}

#[tokio::test]
async fn a_tampered_chain_is_named_by_file_and_line_and_the_other_still_verifies() {
    let r = Replicas::new();
    {
        let (a, b) = (r.open(A).unwrap(), r.open(B).unwrap());
        for i in 0..3 {
            a.append(r.note(&format!("a record {i}."))).await.unwrap();
            b.append(r.note(&format!("b record {i}."))).await.unwrap();
        }
    }
    let file = r.root().join(B).join(crate::audit::TRAIL_FILE);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("b record 1.", "b record 9.")).unwrap();

    let checked = verify_all(&r.root(), |_, _| {}).unwrap();
    assert_eq!(checked[0].outcome.as_ref().unwrap().records, 3);
    assert_eq!(
        broken(&checked[1]),
        "r-4e5f6a7b/trail-000001.jsonl line 2: record 2 was edited: its content does not match its hash"
    );
}

#[tokio::test]
async fn a_chain_under_another_replicas_name_is_named_and_odd_folders_too() {
    let r = Replicas::new();
    {
        let b = r.open(B).unwrap();
        b.append(r.note("b1")).await.unwrap();
    }
    // B's chain presented as another replica's: its records say who wrote them.
    std::fs::rename(r.root().join(B), r.root().join("r-4e5f6a7c")).unwrap();
    let checked = verify_all(&r.root(), |_, _| {}).unwrap();
    assert_eq!(
        broken(&checked[0]),
        "r-4e5f6a7c/trail-000001.jsonl line 1: record 1 was written by replica r-4e5f6a7b, but lies in the chain of replica r-4e5f6a7c"
    );

    // A folder named like a replica's that is not one is not read around.
    std::fs::create_dir(r.root().join("r-old")).unwrap();
    let err = chains(&r.root()).unwrap_err();
    assert!(
        err.ends_with("\"r-old\" is not a replica's chain folder (r- and 8 hex digits)"),
        "{err}"
    );
    // Other folders are not the trail's.
    std::fs::remove_dir(r.root().join("r-old")).unwrap();
    std::fs::create_dir(r.root().join("lost+found")).unwrap();
    assert_eq!(chains(&r.root()).unwrap().len(), 1);
}

#[tokio::test]
async fn a_second_writer_on_one_chain_is_refused() {
    let r = Replicas::new();
    let a = r.open(A).unwrap();
    let Err(err) = r.open(A) else {
        panic!("two writers on one chain")
    };
    assert!(
        err.to_string()
            .contains("another gateway is writing the chain of replica r-0a1b2c3d"),
        "{err}"
    );
    // The writer that holds it carries on.
    a.append(r.note("still writing")).await.unwrap();
}

#[test]
fn replica_ids_are_r_and_8_lowercase_hex_digits() {
    assert!(is_replica_id("r-0a1b2c3d"));
    for odd in [
        "r-0A1B2C3D",
        "r-0a1b2c3",
        "r-0a1b2c3d4",
        "x-0a1b2c3d",
        "r-0a1b2c3g",
        "local",
    ] {
        assert!(!is_replica_id(odd), "{odd}");
    }
}

/// The trail of a gateway from before replicas (`audit-v1`) reads as one chain, `local`.
#[test]
fn the_trail_from_before_replicas_verifies_and_reads_as_local() {
    for (name, records) in [("trail", 136), ("pruned", 3)] {
        let root = fixture("audit-v1").join(name).join("audit");
        let checked = verify_all(&root, |_, _| {}).unwrap();
        assert_eq!(checked.len(), 1, "{name}");
        assert_eq!(checked[0].chain.name(), BEFORE_REPLICAS);
        let summary = checked[0].outcome.as_ref().unwrap();
        assert_eq!(summary.records, records, "{name}");
        let entries = read(&root, |_, _| true).unwrap();
        assert_eq!(entries.len() as u64, records);
        assert!(entries.iter().all(|e| e.replica == BEFORE_REPLICAS));
    }
}

/// A gateway started on a data directory from before replicas: the old trail stays where it
/// is, unchanged, read first at start, and the replica's records go into its own chain.
#[tokio::test]
async fn a_replica_started_on_the_trail_from_before_replicas_leaves_it_and_reads_it_first() {
    let r = Replicas::new();
    copy(&fixture("audit-v1/trail"), r.dir.path());
    let old = std::fs::read(r.root().join(crate::audit::TRAIL_FILE)).unwrap();
    r.clock.set(datetime!(2027-01-01 00:00 UTC));
    let mut replayed = Vec::new();
    let a = r
        .open_replaying(A, |record| {
            replayed.push((record.seq, record.body.replica.clone()));
        })
        .unwrap();
    assert_eq!(replayed.len(), 136);
    assert!(replayed.iter().all(|(_, replica)| replica.is_none()));
    a.append(r.note("after the upgrade")).await.unwrap();
    drop(a);

    assert_eq!(
        std::fs::read(r.root().join(crate::audit::TRAIL_FILE)).unwrap(),
        old
    );
    assert_intact(&r.root(), &[(BEFORE_REPLICAS, 136), (A, 1)]);
    let merged = read(&r.root(), |_, _| true).unwrap();
    let last = merged.last().unwrap();
    assert_eq!((last.replica.as_str(), last.record.seq), (A, 1));
}

/// A last line of the old trail cut short by a crash just before the upgrade is moved aside
/// at start, as the replica's own would be, and the replica's chain says so.
#[tokio::test]
async fn a_torn_tail_of_the_trail_from_before_replicas_is_repaired_into_the_replicas_chain() {
    let r = Replicas::new();
    copy(&fixture("audit-v1/trail"), r.dir.path());
    let file = r.root().join(crate::audit::TRAIL_FILE);
    let whole = std::fs::read(&file).unwrap();
    let mut torn = whole.clone();
    torn.extend_from_slice(b"{\"seq\":138,\"pr");
    std::fs::write(&file, &torn).unwrap();

    let a = r.open(A).unwrap();
    a.flushed().await.unwrap();
    drop(a);
    assert_eq!(std::fs::read(&file).unwrap(), whole);
    let records = crate::audit::verify::records(&r.root().join(A)).unwrap();
    let Kind::Lifecycle(Lifecycle::AuditRepaired(repaired)) = &records[0].body.kind else {
        panic!("{records:?}")
    };
    let kept_in = format!("torn-trail-000001-{}.jsonl", whole.len());
    assert_eq!(
        (repaired.file.as_str(), repaired.kept_in.as_str()),
        ("../trail-000001.jsonl", format!("../{kept_in}").as_str())
    );
    assert_eq!(
        std::fs::read(r.root().join(kept_in)).unwrap(),
        b"{\"seq\":138,\"pr"
    );
}

/// Two replicas' chains as gateways of version 3 wrote them (`audit-v3`): both verify
/// against their published keys, and read merged by time.
#[test]
fn the_version_3_fixture_verifies_and_merges_by_time() {
    let root = fixture("audit-v3/trail/audit");
    assert_intact(&root, &[(A, 102), (B, 6)]);
    let merged = read(&root, |_, _| true).unwrap();
    assert_shown(
        &merged[..9],
        &[
            (A, 1, "policies loaded on r-0a1b2c3d"),
            (B, 1, "policies loaded on r-4e5f6a7b"),
            (A, 2, "s3"),
            (B, 2, "s3"),
            (B, 3, "s3"),
            (A, 3, "s3.complete"),
            (B, 4, "s3.complete"),
            (A, 4, "s3"),
            (B, 5, "share"),
        ],
    );
    let last = merged.last().unwrap();
    assert_eq!((last.replica.as_str(), last.record.seq), (B, 6));
    // The checkpoint stays right after the record it signs.
    let at = merged
        .iter()
        .position(|e| e.record.body.kind.name() == "checkpoint")
        .unwrap();
    assert_eq!(
        (merged[at - 1].replica.as_str(), merged[at - 1].record.seq),
        (A, 100)
    );
}

/// Records of one chain keep their order, even where its clock went back, and records with
/// no time stay beside the one before them.
#[test]
fn merging_keeps_each_chains_order() {
    let at = |minute: i64| datetime!(2026-12-01 09:00 UTC) + Duration::minutes(minute);
    let u = |minute| Use {
        at: at(minute),
        op: "GetObject",
        principal: "alice",
        grant: "g-1",
        bucket: "b",
        key: "k",
    };
    let entry = |replica: &str, seq, body: crate::record::Body| Entry {
        replica: replica.to_owned(),
        record: Record {
            seq,
            prev: String::new(),
            body,
            hash: String::new(),
        },
    };
    let signer = crate::audit::checkpoint::Signer::load_or_create(
        &tempfile::tempdir().unwrap().path().join("k"),
    )
    .unwrap();
    let a = vec![
        entry(A, 1, decision(u(5), true)),
        entry(A, 2, signer.body(1, "h")),
        // the clock went back
        entry(A, 3, completion(at(2), 1, 200, 1, 0).into()),
    ];
    let b = vec![
        entry(B, 1, decision(u(1), true)),
        entry(B, 2, decision(u(6), true)),
    ];
    let order: Vec<(String, u64)> = merge(vec![a, b])
        .into_iter()
        .map(|e| (e.replica, e.record.seq))
        .collect();
    let expected = [(B, 1), (A, 1), (A, 2), (A, 3), (B, 2)].map(|(r, s)| (r.to_owned(), s));
    assert_eq!(order, expected);
}
