//! The meter and the replay on their own: limits, the count rebuilt from the trail, a
//! replay resumed from a row, and counts added and told apart. `replicas.rs` runs them with a
//! store and a trail: restarts, retention, crashes and several gateways.

mod replicas;

use time::OffsetDateTime;
use time::macros::datetime;

use super::*;
use crate::model::{Grant, Limits, example_grant};
use crate::record::examples::{Use, completion, decision, note, share_use};
use crate::record::{Body, StopKind};

const T0: OffsetDateTime = datetime!(2026-11-29 10:00 UTC);

fn limited(bytes: Option<u64>, objects: Option<u64>) -> Grant {
    let mut grant = example_grant("g-1", T0, T0 + time::Duration::hours(1));
    grant.limits = Limits {
        bytes,
        objects,
        share_ttl_seconds: None,
    };
    grant
}

#[test]
fn the_object_limit_refuses_the_request_past_it() {
    let meter = Meter::default();
    let grant = limited(None, Some(2));
    meter.admit(&grant, Effect::Download, T0).unwrap();
    meter.admit(&grant, Effect::None, T0).unwrap();
    meter.admit(&grant, Effect::Download, T0).unwrap();
    let err = meter.admit(&grant, Effect::Inspect, T0).unwrap_err();
    assert_eq!(
        err,
        "grant g-1 reached its limit of 2 objects read and written"
    );
    let usage = meter.get("g-1");
    assert_eq!((usage.requests, usage.objects_read), (3, 2));
}

#[test]
fn the_byte_limit_cuts_the_chunk_that_would_cross_it_and_refuses_after() {
    let meter = Meter::default();
    let grant = limited(Some(100), None);
    let transfer = meter.of("g-1");
    transfer
        .add_bytes(&grant.limits, Direction::Read, 60)
        .unwrap();
    transfer
        .add_bytes(&grant.limits, Direction::Write, 40)
        .unwrap();
    let err = transfer
        .add_bytes(&grant.limits, Direction::Read, 1)
        .unwrap_err();
    assert_eq!(
        err,
        "grant g-1 reached its limit of 100 bytes read and written"
    );
    assert_eq!(
        meter.admit(&grant, Effect::None, T0).unwrap_err(),
        "grant g-1 reached its limit of 100 bytes read and written"
    );
    let usage = meter.get("g-1");
    assert_eq!((usage.bytes_read, usage.bytes_written), (60, 40));
}

/// The few rows of the operation table these tests use (the table sits above).
pub(super) fn effect_of(op: &str) -> Effect {
    [
        ("GetObject", Effect::Download),
        ("PutObject", Effect::Store),
    ]
    .into_iter()
    .find(|(name, _)| *name == op)
    .map_or(Effect::None, |(_, effect)| effect)
}

#[test]
fn usage_is_rebuilt_from_the_trail() {
    let at = |m: i64| T0 + time::Duration::minutes(m);
    let by = |grant, op, m| Use {
        at: at(m),
        op,
        principal: "alice",
        grant,
        bucket: "hr-data",
        key: "payroll/a.csv",
    };
    let mut cut = completion(at(7), 8, 200, 0, 64);
    cut.stop_kind = Some(StopKind::Limit);
    cut.stopped = Some("grant g-2 reached its limit of 70 bytes read and written".into());
    let records: Vec<Body> = vec![
        decision(by("g-1", "GetObject", 5), true),
        completion(at(5), 1, 200, 500, 0).into(),
        decision(by("g-1", "ListObjectsV2", 1), true),
        // A listing's XML is not object bytes.
        completion(at(1), 3, 200, 900, 0).into(),
        decision(by("g-1", "PutObject", 6), false),
        share_use(by("g-1", "GetObject", 9), true),
        completion(at(9), 6, 200, 20, 0).into(),
        decision(by("g-2", "PutObject", 7), true),
        cut.into(),
        note("policies reloaded"),
    ];
    let mut replay = Replay::new(effect_of);
    for (i, record) in records.iter().enumerate() {
        replay.add(i as u64 + 1, record);
    }
    let meter = replay.finish();
    assert_eq!(
        meter.get("g-1"),
        Usage {
            requests: 3,
            denied: 1,
            objects_read: 2,
            objects_written: 0,
            bytes_read: 520,
            bytes_written: 0,
            first_use: Some(at(1)),
            last_use: Some(at(9)),
            cut_at_limit: None,
        }
    );
    let g2 = meter.get("g-2");
    assert_eq!((g2.objects_written, g2.bytes_written), (1, 64));
    // Cut at its limit six bytes short: still nothing more under it after a restart.
    let mut grant = example_grant("g-2", T0, T0 + time::Duration::hours(1));
    grant.limits.bytes = Some(70);
    assert_eq!(
        meter.admit(&grant, Effect::None, T0).unwrap_err(),
        "grant g-2 reached its limit of 70 bytes read and written"
    );
}

#[test]
fn a_replay_resumed_from_a_row_skips_what_it_holds_and_finishes_its_pending_bytes() {
    let at = |m: i64| T0 + time::Duration::minutes(m);
    let by = |op, m| Use {
        at: at(m),
        op,
        principal: "alice",
        grant: "g-1",
        bucket: "hr-data",
        key: "payroll/a.csv",
    };
    // The trail: two downloads, the second's completion after the row was written.
    let trail: Vec<Body> = vec![
        decision(by("GetObject", 1), true),
        completion(at(1), 1, 200, 100, 0).into(),
        decision(by("GetObject", 2), true),
        completion(at(2), 3, 200, 40, 0).into(),
        decision(by("PutObject", 3), false),
    ];
    // The row, counted through record 3: the second download admitted, its bytes to come.
    let mut replay = Replay::new(effect_of);
    for (i, record) in trail.iter().enumerate().take(3) {
        replay.add(i as u64 + 1, record);
    }
    let row = replay.totals().clone();
    assert_eq!(row.through_seq, 3);
    assert_eq!(
        row.pending.get(&3),
        Some(&Pending {
            grant: "g-1".into(),
            direction: Direction::Read
        })
    );

    // After a restart the whole trail is handed over again: what the row holds is skipped,
    // the pending download gets its bytes, and the rest is counted once.
    let mut resumed = Replay::resume(effect_of, row);
    for (i, record) in trail.iter().enumerate() {
        resumed.add(i as u64 + 1, record);
    }
    let mut whole = Replay::new(effect_of);
    for (i, record) in trail.iter().enumerate() {
        whole.add(i as u64 + 1, record);
    }
    assert_eq!(resumed.totals(), whole.totals());
    let g1 = &resumed.totals().grants["g-1"];
    assert_eq!(
        (g1.requests, g1.denied, g1.objects_read, g1.bytes_read),
        (2, 1, 2, 140)
    );
    assert!(resumed.totals().pending.is_empty());
}

#[test]
fn counts_add_up_and_what_one_holds_beyond_another_is_told_apart() {
    let at = |m: i64| Some(T0 + time::Duration::minutes(m));
    let earlier = Usage {
        requests: 2,
        denied: 1,
        objects_read: 1,
        objects_written: 1,
        bytes_read: 10,
        bytes_written: 20,
        first_use: at(1),
        last_use: at(5),
        cut_at_limit: None,
    };
    let later = Usage {
        requests: 5,
        objects_read: 3,
        bytes_read: 70,
        last_use: at(9),
        cut_at_limit: Some("grant g-1 reached its limit of 90 bytes read and written".into()),
        ..earlier.clone()
    };
    let beyond = later.beyond(&earlier).unwrap();
    assert_eq!(
        (
            beyond.requests,
            beyond.denied,
            beyond.objects_read,
            beyond.bytes_read,
            beyond.bytes_written
        ),
        (3, 0, 2, 60, 0)
    );
    assert_eq!(beyond.cut_at_limit, later.cut_at_limit);
    // The earlier count and what the later one holds beyond it make the later one again.
    assert_eq!(earlier.plus(&beyond), later);
    // Nothing beyond itself, or beyond a count that is further along.
    assert_eq!(later.beyond(&later), None);
    assert_eq!(earlier.beyond(&later), None);
    // Two gateways' counts: summed, the earliest first use, the latest last use.
    let other = Usage {
        requests: 1,
        first_use: at(0),
        last_use: at(2),
        ..Usage::default()
    };
    let both = earlier.plus(&other);
    assert_eq!(
        (both.requests, both.first_use, both.last_use),
        (3, at(0), at(5))
    );
    assert_eq!(Usage::default().plus(&Usage::default()), Usage::default());
}

/// A usage row as version 1 wrote it: kept so that a later encoding still reads it.
const ROW_V1: &str = r#"{"v":1,"value":{"replica":"r-0a1b2c3d","totals":{"through_seq":41,"grants":{"g-1":{"requests":3,"denied":1,"objects_read":2,"objects_written":0,"bytes_read":520,"bytes_written":0,"first_use":"2026-11-29T10:01:00Z","last_use":"2026-11-29T10:09:00Z"}},"pending":{"40":{"grant":"g-1","direction":"read"}}},"ahead":{"g-1":{"requests":1,"denied":0,"objects_read":1,"objects_written":0,"bytes_read":64,"bytes_written":0,"first_use":"2026-11-29T10:01:00Z","last_use":"2026-11-29T10:10:00Z"}}}}"#;

#[test]
fn a_version_1_usage_row_decodes_and_encodes_the_same() {
    let row: ReplicaUsage = crate::store::decode("r-0a1b2c3d", ROW_V1.as_bytes()).unwrap();
    assert_eq!(row.totals.through_seq, 41);
    assert_eq!(row.totals.pending[&40].direction, Direction::Read);
    let counted = row.counted();
    assert_eq!(
        (
            counted["g-1"].requests,
            counted["g-1"].objects_read,
            counted["g-1"].bytes_read
        ),
        (4, 3, 584)
    );
    assert_eq!(
        counted["g-1"].last_use,
        Some(datetime!(2026-11-29 10:10 UTC))
    );
    let again: ReplicaUsage =
        crate::store::decode("r-0a1b2c3d", &crate::store::encode(&row)).unwrap();
    assert_eq!(again, row);
}
