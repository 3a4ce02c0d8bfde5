//! The trail across files: rotation at batch boundaries, verification that names the file and
//! line of every kind of damage, and retention behind a signed anchor, with a manual clock.

use std::path::Path;
use std::sync::Arc;

use super::{AuditLog, Settings};
use crate::clock::SystemClock;

/// A trail in `dir` with the default settings and the wall clock.
pub(super) fn open(dir: &Path) -> AuditLog {
    AuditLog::open(dir, &Settings::default(), Arc::new(SystemClock)).unwrap()
}

use time::macros::datetime;

use super::chain::{Record, Tip};
use super::files::{self, TrailFile};
use super::retention::{ANCHOR_FILE, Anchor, Hold};
use super::verify::{VerifyError, records, verify_dir};
use super::writer::Writer;
use crate::clock::{Clock as _, ManualClock};
use crate::record::{Body, Kind, Lifecycle, Note, Pruned, note};

/// A writer (no thread) on `dir` that rotates past `rotate_bytes`.
pub(super) fn writer(dir: &Path, rotate_bytes: u64) -> Writer {
    let signer =
        super::checkpoint::Signer::load_or_create(&dir.with_file_name(super::SIGNING_KEY_FILE))
            .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    Writer {
        dir: dir.to_owned(),
        current: TrailFile::new(dir, 1),
        open: None,
        size: 0,
        torn: false,
        tip: Tip::default(),
        rotate_bytes,
        retain_days: None,
        hold: super::retention::Hold::none(),
        signer,
        clock: Arc::new(SystemClock),
        failing: Arc::default(),
        taps: Arc::new(super::sink::Taps::new(0)),
        replica: None,
        _lock: None,
    }
}

/// `n` canonical bodies, as the writer takes them.
fn bodies(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| note(format!("record {i}")).canonical())
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn record(line: &str) -> Record {
    Record::parse(line).unwrap()
}

/// The break `verify_dir` reports, as "file line N: reason".
fn broken(dir: &Path) -> String {
    match verify_dir(dir) {
        Err(VerifyError::Broken(b)) => b.to_string(),
        Err(VerifyError::Io(e)) => format!("io: {e}"),
        Ok(s) => panic!("verified: {s:?}"),
    }
}

#[test]
fn a_batch_never_straddles_files_and_the_chain_runs_on_across_them() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let mut w = writer(&dir, 1);
    // One batch of 100 records: record 100 brings its checkpoint (101) into the same file,
    // however far past the rotation size the file goes.
    assert_eq!(
        w.commit(bodies(100)).unwrap(),
        (1..=100).collect::<Vec<_>>()
    );
    assert!(w.rotate_if_full());
    w.commit(bodies(1)).unwrap();
    assert!(w.rotate_if_full());
    w.commit(bodies(2)).unwrap();

    let first = lines(&dir.join(files::name(1)));
    assert_eq!(first.len(), 101);
    assert!(first[100].contains("\"checkpoint\""), "{}", first[100]);
    let second = lines(&dir.join(files::name(2)));
    assert_eq!(record(&second[0]).seq, 102);
    assert_eq!(record(&second[0]).prev, record(&first[100]).hash);
    assert_eq!(lines(&dir.join(files::name(3))).len(), 2);

    let summary = verify_dir(&dir).unwrap();
    assert_eq!((summary.records, summary.files), (104, 3));
    let seqs: Vec<u64> = records(&dir).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=104).collect::<Vec<_>>());
}

#[test]
fn a_file_below_the_rotation_size_is_kept() {
    let root = tempfile::tempdir().unwrap();
    let mut w = writer(&root.path().join("audit"), 10_000);
    w.commit(bodies(3)).unwrap();
    assert!(!w.rotate_if_full());
    w.commit(bodies(100)).unwrap();
    assert!(w.rotate_if_full(), "past 10 000 bytes after 103 records");
    assert_eq!(w.current.name(), "trail-000002.jsonl");
}

#[tokio::test]
async fn a_reopened_trail_continues_on_its_newest_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let settings = Settings {
        rotate_bytes: 300,
        ..Settings::default()
    };
    let clock = Arc::new(SystemClock);
    {
        let log = AuditLog::open(&dir, &settings, clock.clone()).unwrap();
        for i in 0..5 {
            log.append(note(format!("record {i}"))).await.unwrap();
        }
    }
    let before = files::list(&dir).unwrap();
    assert!(before.len() >= 2, "{before:?}");
    let log = AuditLog::open(&dir, &settings, clock).unwrap();
    assert_eq!(log.append(note("after reopening")).await.unwrap(), 6);
    let summary = verify_dir(&dir).unwrap();
    assert_eq!(summary.tip.seq, 6);
    // Every file but the last reached the rotation size before the next one began.
    let after = files::list(&dir).unwrap();
    for file in &after[..after.len() - 1] {
        assert!(
            std::fs::metadata(&file.path).unwrap().len() >= 300,
            "{file:?}"
        );
    }
}

/// A trail of four files: 1..=3, 4..=6, 7..=9, 10..=12.
fn four_files(dir: &Path) {
    let mut w = writer(dir, 1);
    for _ in 0..4 {
        w.commit(bodies(3)).unwrap();
        w.rotate_if_full();
    }
    assert_eq!(verify_dir(dir).unwrap().files, 4);
}

#[test]
fn damage_across_files_is_named_by_file_and_line() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    four_files(&dir);
    let path = |n: u64| dir.join(files::name(n));
    let original: Vec<Vec<String>> = (1..=4).map(|n| lines(&path(n))).collect();
    let restore = || {
        for (n, content) in (1..=4).zip(&original) {
            std::fs::write(path(n), content.join("\n") + "\n").unwrap();
        }
        verify_dir(&dir).unwrap();
    };

    // Edited: a record in the middle of the third file.
    std::fs::write(
        path(3),
        original[2].join("\n").replace("record 1\"", "record 7\"") + "\n",
    )
    .unwrap();
    let b = broken(&dir);
    assert!(
        b.starts_with("trail-000003.jsonl line 2: record 8 was edited"),
        "{b}"
    );
    restore();

    // A middle file deleted.
    std::fs::remove_file(path(2)).unwrap();
    assert_eq!(
        broken(&dir),
        "trail-000003.jsonl line 1: trail-000002.jsonl deleted: the trail goes from trail-000001.jsonl to trail-000003.jsonl"
    );
    restore();

    // Two files swapped (renamed into each other's place).
    std::fs::rename(path(2), dir.join("x")).unwrap();
    std::fs::rename(path(3), path(2)).unwrap();
    std::fs::rename(dir.join("x"), path(3)).unwrap();
    let b = broken(&dir);
    assert!(
        b.starts_with(
            "trail-000002.jsonl line 1: record 7 follows record 3: records 4..6 were deleted"
        ),
        "{b}"
    );
    restore();

    // The last record of a file cut off: found where the next file begins.
    std::fs::write(path(1), original[0][..2].join("\n") + "\n").unwrap();
    let b = broken(&dir);
    assert!(
        b.starts_with("trail-000002.jsonl line 1: record 4 follows record 2"),
        "{b}"
    );
    restore();

    // The head of the trail deleted, with no anchor.
    std::fs::remove_file(path(1)).unwrap();
    std::fs::remove_file(path(2)).unwrap();
    assert_eq!(
        broken(&dir),
        "trail-000003.jsonl line 1: the trail starts at trail-000003.jsonl and there is no pruned.json: trail-000001.jsonl..trail-000002.jsonl deleted"
    );
    restore();

    // A file renamed out of the numbering is refused, not skipped.
    std::fs::rename(path(4), dir.join("trail-4.jsonl")).unwrap();
    assert!(broken(&dir).contains("\"trail-4.jsonl\" is not a trail file name"));
    std::fs::rename(dir.join("trail-4.jsonl"), path(4)).unwrap();
    restore();
}

/// A record made at the clock's time.
fn at(clock: &ManualClock) -> Body {
    Body::new(Lifecycle::PolicyReloaded(Note {
        at: clock.now(),
        summary: "a record at this time".into(),
    }))
}

/// The pruning records in the trail.
fn pruned_records(dir: &Path) -> Vec<Pruned> {
    records(dir)
        .unwrap()
        .into_iter()
        .filter_map(|r| {
            let Kind::Lifecycle(Lifecycle::AuditPruned(p)) = r.body.kind else {
                return None;
            };
            Some(p)
        })
        .collect()
}

#[tokio::test]
async fn retention_deletes_old_files_behind_a_signed_anchor() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
    let settings = Settings {
        rotate_bytes: 1,
        retain_days: Some(30),
        ..Settings::default()
    };
    let log = AuditLog::open(&dir, &settings, Arc::new(clock.clone())).unwrap();
    // Three records, one per file (every batch rotates).
    for _ in 0..3 {
        log.append(at(&clock)).await.unwrap();
    }
    assert_eq!(files::list(&dir).unwrap().len(), 3);

    // 31 days on: the next rotation deletes files 1..3, the new record's file stays.
    clock.advance(time::Duration::days(31));
    log.append(at(&clock)).await.unwrap();
    // The writer prunes before it takes the next record, so this one finds it done.
    log.append(at(&clock)).await.unwrap();
    let remaining: Vec<String> = files::list(&dir)
        .unwrap()
        .iter()
        .map(TrailFile::name)
        .collect();
    assert_eq!(remaining[0], "trail-000004.jsonl", "{remaining:?}");

    let anchor = Anchor::load(&dir).unwrap().expect("an anchor");
    assert_eq!(
        (anchor.through_file.as_str(), anchor.through_seq),
        ("trail-000003.jsonl", 3)
    );
    let summary = verify_dir(&dir).unwrap();
    assert_eq!(summary.pruned_through, Some(3));
    let pruned = pruned_records(&dir);
    assert_eq!(pruned.len(), 1, "{pruned:?}");
    assert_eq!(
        pruned[0].files,
        [
            "trail-000001.jsonl",
            "trail-000002.jsonl",
            "trail-000003.jsonl"
        ]
    );
    assert_eq!(pruned[0].through_seq, 3);
    assert_eq!(records(&dir).unwrap()[0].prev, anchor.hash);
    drop(log);

    // The anchor edited: refused, and the gateway would not start on it.
    let text = std::fs::read_to_string(dir.join(ANCHOR_FILE)).unwrap();
    std::fs::write(
        dir.join(ANCHOR_FILE),
        text.replace("\"through_seq\": 3", "\"through_seq\": 2"),
    )
    .unwrap();
    let b = broken(&dir);
    assert!(
        b.starts_with("pruned.json line 1: the anchor of the pruned trail is not valid: the signature is not valid"),
        "{b}"
    );
    assert!(AuditLog::open(&dir, &settings, Arc::new(clock.clone())).is_err());

    // The anchor deleted: the trail plainly starts too late.
    std::fs::remove_file(dir.join(ANCHOR_FILE)).unwrap();
    assert!(
        broken(&dir).starts_with("trail-000004.jsonl line 1: the trail starts at trail-000004.jsonl and there is no pruned.json"),
    );

    // An anchor signed with someone else's key: not the published one.
    let other = root.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mut forged: serde_json::Value = serde_json::from_str(&text).unwrap();
    let thief = super::checkpoint::Signer::load_or_create(&other.join("k")).unwrap();
    forged["public_key"] = thief.public_key_hex().into();
    forged["signature"] = "".into();
    let mut map = forged.as_object().unwrap().clone();
    map.remove("signature");
    let message = crate::record::canonical(&serde_json::Value::Object(map));
    forged["signature"] = thief.sign_hex(message.as_bytes()).into();
    std::fs::write(dir.join(ANCHOR_FILE), forged.to_string()).unwrap();
    assert!(
        broken(&dir).contains("not the published one"),
        "{}",
        broken(&dir)
    );

    // The real anchor back: intact again.
    std::fs::write(dir.join(ANCHOR_FILE), text).unwrap();
    verify_dir(&dir).unwrap();
}

#[tokio::test]
async fn retention_is_applied_at_open_and_the_pruned_record_links_to_the_anchor() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
    let mut settings = Settings {
        rotate_bytes: 1,
        ..Settings::default()
    };
    {
        let log = AuditLog::open(&dir, &settings, Arc::new(clock.clone())).unwrap();
        for _ in 0..3 {
            log.append(at(&clock)).await.unwrap();
        }
    }
    // Kept while no retention is set, however old.
    clock.advance(time::Duration::days(400));
    let log = AuditLog::open(&dir, &settings, Arc::new(clock.clone())).unwrap();
    log.append(at(&clock)).await.unwrap();
    drop(log);
    assert_eq!(files::list(&dir).unwrap().len(), 4);

    // Ten days later, with a 7-day retention: everything before the reopened file goes at
    // once, and the first record after the anchor is the pruning itself.
    clock.advance(time::Duration::days(10));
    settings.retain_days = Some(7);
    let log = AuditLog::open(&dir, &settings, Arc::new(clock.clone())).unwrap();
    log.append(at(&clock)).await.unwrap();
    let all = records(&dir).unwrap();
    assert!(
        matches!(all[0].body.kind, Kind::Lifecycle(Lifecycle::AuditPruned(_))),
        "{:?}",
        all[0]
    );
    assert_eq!(all[0].seq, 5);
    assert_eq!(all[0].prev, Anchor::load(&dir).unwrap().unwrap().hash);
    assert_eq!(verify_dir(&dir).unwrap().pruned_through, Some(4));
    assert_eq!(files::list(&dir).unwrap()[0].name(), "trail-000005.jsonl");
}

#[tokio::test]
async fn retention_keeps_every_record_after_the_hold_however_old() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
    let settings = Settings {
        rotate_bytes: 1,
        retain_days: Some(1),
        forward: None,
        root: None,
    };
    // Nothing may go yet: a reader resumes from seq 0.
    let hold = Hold::after(0);
    let log = AuditLog::open_holding(
        &dir,
        &settings,
        Arc::new(clock.clone()),
        hold.clone(),
        |_| {},
    )
    .unwrap();
    for _ in 0..4 {
        log.append(at(&clock)).await.unwrap();
    }
    // Days later every file is old; the reader has moved on to seq 2.
    clock.advance(time::Duration::days(3));
    hold.advance(2);
    log.append(at(&clock)).await.unwrap();
    log.append(at(&clock)).await.unwrap();
    assert_eq!(records(&dir).unwrap()[0].seq, 3);
    assert_eq!(Anchor::load(&dir).unwrap().unwrap().through_seq, 2);
    verify_dir(&dir).unwrap();
}

#[test]
fn files_left_over_from_an_interrupted_pruning_are_skipped_then_deleted() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
    let mut w = writer(&dir, 1);
    for _ in 0..4 {
        w.commit(vec![at(&clock).canonical(), at(&clock).canonical()])
            .unwrap();
        w.rotate_if_full();
    }
    let kept: Vec<Vec<u8>> = (1..=2)
        .map(|n| std::fs::read(dir.join(files::name(n))).unwrap())
        .collect();
    let later = clock.now() + time::Duration::days(1);
    let pruned = super::retention::prune(&dir, 3, later, &Hold::none(), &w.signer, later)
        .unwrap()
        .unwrap();
    assert_eq!(pruned.files, ["trail-000001.jsonl", "trail-000002.jsonl"]);
    assert_eq!(pruned.through_seq, 4);

    // As if the deletion had been cut short: the anchor is written, the files are still there.
    for (n, content) in (1..=2).zip(&kept) {
        std::fs::write(dir.join(files::name(n)), content).unwrap();
    }
    let summary = verify_dir(&dir).unwrap();
    assert_eq!((summary.files, summary.pruned_through), (2, Some(4)));
    // The next pruning deletes them and leaves the anchor where it was.
    let anchor = Anchor::load(&dir).unwrap();
    let next_day = later + time::Duration::days(1);
    super::retention::prune(&dir, 3, later, &Hold::none(), &w.signer, next_day)
        .unwrap()
        .unwrap();
    assert_eq!(Anchor::load(&dir).unwrap(), anchor);
    assert_eq!(files::list(&dir).unwrap()[0].name(), "trail-000003.jsonl");
}

#[tokio::test]
async fn a_barrier_returns_once_everything_sent_before_it_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..50 {
        log.append_later(note(format!("record {i}")));
    }
    log.flushed().await.unwrap();
    let written = lines(&dir.path().join(files::name(1)));
    let tests = written
        .iter()
        .filter(|l| record(l).body.kind.name() == "lifecycle")
        .count();
    assert_eq!(tests, 50);
    // A barrier alone, with nothing before it, answers too.
    log.flushed().await.unwrap();
}

/// Trails as the gateway wrote them before records were typed (`tests/fixtures/audit-v1`):
/// they verify, the pruned one behind its anchor, and every line reads back, through the
/// types, to the very line stored.
#[test]
fn trails_written_before_records_were_typed_verify_and_read_back_line_for_line() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit-v1");
    for (name, pruned) in [("trail", false), ("pruned", true)] {
        let dir = fixtures.join(name).join("audit");
        let stored: Vec<String> = files::list(&dir)
            .unwrap()
            .iter()
            .flat_map(|f| lines(&f.path))
            .collect();
        let summary = verify_dir(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(summary.records, stored.len() as u64, "{name}");
        let read = records(&dir).unwrap();
        assert_eq!(
            summary.pruned_through,
            pruned.then(|| read[0].seq - 1),
            "{name}"
        );
        for (record, line) in read.iter().zip(&stored) {
            assert_eq!(&record.line(), line);
        }
    }
}

/// The writer keeps its file open between batches, but never writes unseen into a file
/// that is no longer the one its path names: one moved away is left as it was, and the next
/// batch goes to the path (where verification then finds the gap).
#[test]
fn a_trail_file_moved_away_between_batches_is_not_written_to_again() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let mut w = writer(&dir, u64::MAX);
    w.commit(bodies(2)).unwrap();
    let path = dir.join(files::name(1));
    let moved = root.path().join("moved.jsonl");
    std::fs::rename(&path, &moved).unwrap();
    w.commit(bodies(1)).unwrap();
    assert_eq!(lines(&moved).len(), 2, "the moved file was written to");
    let now = lines(&path);
    assert_eq!(now.len(), 1);
    assert_eq!(record(&now[0]).seq, 3);
}

/// Records nobody waits for wait for the next record someone waits for, to share its
/// fsync; one that is waited for goes at once with whatever is there.
#[test]
fn a_record_nobody_waits_for_rides_with_the_next_awaited_one() {
    let (tx, rx) = std::sync::mpsc::channel();
    let later = |text: &str| super::Job {
        bodies: vec![note(text).canonical()],
        done: None,
    };
    let (done, _wait) = tokio::sync::oneshot::channel();
    tx.send(later("decided")).unwrap();
    tx.send(super::Job {
        bodies: bodies(1),
        done: Some(super::Reply::Task(done)),
    })
    .unwrap();
    tx.send(later("after")).unwrap();
    let batch = super::writer::gather(later("completed"), &rx);
    assert_eq!(batch.len(), 4, "everything waiting goes together");
    // Alone, it waits out the ride window and goes by itself.
    let batch = super::writer::gather(later("completed"), &rx);
    assert_eq!(batch.len(), 1);
}
