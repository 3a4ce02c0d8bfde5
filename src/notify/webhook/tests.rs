//! The webhook sink against a receiver on a loopback port: nothing is sent that the trail did
//! not commit; a hook started again sends, in order, what was committed after its cursor,
//! within its bounds; one that falls behind reads its gap back from the files; a new one is
//! not sent the trail's history.

use std::sync::Arc;

use time::macros::datetime;

use super::*;
use crate::audit::receiver::{Post as Received, Receiver};
use crate::audit::{AuditLog, Settings};
use crate::clock::ManualClock;
use crate::notify::{Kind, Notifier, record_of};
use crate::record::Body;

const NOW: OffsetDateTime = datetime!(2026-11-29 10:00 UTC);

fn clock() -> SharedClock {
    Arc::new(ManualClock::new(NOW))
}

fn open(dir: &Path, clock: &SharedClock) -> AuditLog {
    AuditLog::open(dir, &Settings::default(), clock.clone()).unwrap()
}

/// A `[[webhook]]` table for `url`, retrying after 10 ms, with `more` lines in it.
fn hook(url: &str, more: &str) -> Webhook {
    toml::from_str(&format!("url = \"{url}\"\nfirst_retry_ms = 10\n{more}")).unwrap()
}

fn notice(summary: &str, at: OffsetDateTime) -> Notice {
    Notice {
        event: Kind::GrantRevoked,
        at,
        principal: "alice".into(),
        scope: "s3://data/a/".into(),
        request_id: None,
        grant_id: Some("g-1".into()),
        summary: summary.into(),
    }
}

/// The summary of the notice a POST carried.
fn summary(post: &Received) -> String {
    let v: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
    v["summary"].as_str().unwrap().to_owned()
}

/// The summaries of the next `n` notices the receiver took.
async fn taken(receiver: &mut Receiver, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(summary(&receiver.next_taken().await));
    }
    out
}

#[tokio::test]
async fn a_notice_is_never_sent_for_a_batch_that_failed_to_commit() {
    let disk = crate::audit::full_disk::SmallDisk::mount("256k");
    let clock = clock();
    let audit = open(&disk.path.join("audit"), &clock);
    let mut receiver = Receiver::start(0);
    let tasks = start(vec![hook(&receiver.url, "")], &audit, &clock).unwrap();
    let notifier = Notifier::new(audit.clone());

    let filler = disk.fill();
    // The notice first in a batch far larger than what is left: the write fails part-way.
    let mut batch = vec![Body::from(record_of(&notice("never committed", NOW)))];
    batch.extend((0..50).map(|i| crate::record::note(format!("pad {i} {}", "x".repeat(2000)))));
    notifier.record_all_durably(&batch).unwrap_err();
    std::fs::remove_file(filler).unwrap();

    notifier
        .record_durably(&[notice("committed", NOW)])
        .unwrap();
    notifier
        .record_durably(&[notice("committed next", NOW)])
        .unwrap();
    // Sent in trail order, each at its first attempt: had the failed batch's notice been
    // sent, it would have come first.
    let first = receiver.next().await;
    assert_eq!((first.status, summary(&first)), (200, "committed".into()));
    assert_eq!(first.header("x-sesame-event"), "grant.revoked");
    assert_eq!(summary(&receiver.next().await), "committed next");
    tasks.iter().for_each(JoinHandle::abort);
}

#[tokio::test]
async fn a_hook_started_again_sends_what_it_had_not_in_order_within_its_bounds() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let clock = clock();
    let audit = open(&dir, &clock);
    let notifier = Notifier::new(audit.clone());
    let mut receiver = Receiver::start(1);
    // The hook had handled everything up to here when the gateway stopped.
    notifier
        .record_durably(&[notice("sent before the stop", NOW)])
        .unwrap();
    let cursor = cursor_for(&dir, &receiver.url);
    cursor.store(audit.committed()).unwrap();
    // Committed while it was stopped: one two days old, then three, of which the newest two
    // are sent.
    notifier
        .record_durably(&[notice("two days old", NOW - time::Duration::days(2))])
        .unwrap();
    for n in 1..=3 {
        notifier
            .record_durably(&[notice(&format!("while stopped {n}"), NOW)])
            .unwrap();
    }
    let bounds = "replay_within = \"1d\"\nreplay_max = 2";
    let tasks = start(vec![hook(&receiver.url, bounds)], &audit, &clock).unwrap();
    notifier
        .record_durably(&[notice("after the start", NOW)])
        .unwrap();
    // The first attempt is refused and retried; then each is sent once, in trail order.
    assert_eq!(
        taken(&mut receiver, 3).await,
        ["while stopped 2", "while stopped 3", "after the start"]
    );
    // The cursor follows: the last notice sent is the last record.
    let last = audit.committed();
    for _ in 0..500 {
        if cursor.load() == Ok(Some(last)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cursor.load(), Ok(Some(last)));
    tasks.iter().for_each(JoinHandle::abort);
}

#[tokio::test]
async fn a_new_hook_is_not_sent_the_history_of_the_trail() {
    let root = tempfile::tempdir().unwrap();
    let clock = clock();
    let audit = open(&root.path().join("audit"), &clock);
    let notifier = Notifier::new(audit.clone());
    notifier
        .record_durably(&[notice("before the hook existed", NOW)])
        .unwrap();
    let mut receiver = Receiver::start(0);
    let tasks = start(vec![hook(&receiver.url, "")], &audit, &clock).unwrap();
    notifier.record_durably(&[notice("new", NOW)]).unwrap();
    assert_eq!(taken(&mut receiver, 1).await, ["new"]);
    tasks.iter().for_each(JoinHandle::abort);
}

/// One thread, held by the test while it commits: the sink's task runs only once the test
/// waits, so its queue of one takes the first batch and the other four are dropped.
#[tokio::test(flavor = "current_thread")]
async fn a_hook_that_falls_behind_reads_its_gap_back_from_the_files() {
    let root = tempfile::tempdir().unwrap();
    let clock = clock();
    let audit = open(&root.path().join("audit"), &clock);
    let notifier = Notifier::new(audit.clone());
    let mut receiver = Receiver::start(0);
    let hook = Hook::resolve(hook(&receiver.url, "")).unwrap();
    let client = crate::http::client().unwrap();
    let task = Sink::start(hook, &audit, client, clock.clone(), 1).unwrap();
    for n in 1..=5 {
        notifier
            .record_durably(&[notice(&format!("notice {n}"), NOW)])
            .unwrap();
    }
    let wanted: Vec<String> = (1..=5).map(|n| format!("notice {n}")).collect();
    assert_eq!(taken(&mut receiver, 5).await, wanted);
    // Nothing twice: the next one sent is the next one committed.
    notifier.record_durably(&[notice("notice 6", NOW)]).unwrap();
    assert_eq!(taken(&mut receiver, 1).await, ["notice 6"]);
    task.abort();
}

#[test]
fn a_hook_table_takes_its_defaults_and_names_a_bad_bound() {
    let h = hook("https://hooks.example/x", "");
    assert_eq!(
        (h.attempts, h.max_retry_ms, h.replay_within, h.replay_max),
        (6, 60_000, time::Duration::hours(24), 100)
    );
    let err = toml::from_str::<Webhook>("url = \"https://x\"\nreplay_within = \"soon\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"soon\" is not like 30m"), "{err}");
}
