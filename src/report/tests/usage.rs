//! Usage joined from the trail, the period's edges, approvals and key lists.

use super::*;
use crate::record::examples::{Use, note, refused, share_use};
use crate::report::usage::common_folder;

#[test]
fn usage_joins_each_decision_with_its_completion() {
    let g = grant(
        "g-1",
        "alice",
        "s3://hr-data/payroll/",
        "read,write",
        datetime!(2026-03-10 09:00 UTC),
        4,
    );
    let at = |m: i64| g.starts_at + Duration::minutes(m);
    let mut t = Trail::default();
    // a download: its completion carries the bytes sent
    t.used(&g, at(1), "GetObject", "payroll/2026/03.csv", 1000, 0);
    // a HEAD: the key was looked at, no content moved
    t.used(&g, at(2), "HeadObject", "payroll/2026/04.csv", 0, 0);
    // a GET the backend answered 404: allowed, so an object read as the grant's limit
    // counted it (an attempt on that key), but no bytes: the error is not the object
    let missing = t.decide(&g, at(3), "GetObject", "payroll/none.csv", true);
    t.complete(missing, at(3), 404, 120, None);
    // an upload: bytes_in counts; a completion from before bytes_in existed counts 0
    t.used(&g, at(4), "PutObject", "payroll/2026/fix.csv", 0, 300);
    let old = t.decide(&g, at(5), "PutObject", "payroll/2026/old.csv", true);
    t.complete(old, at(5), 200, 0, None);
    // a denial under the grant
    t.decide(&g, at(6), "DeleteObject", "payroll/2026/03.csv", false);
    // a share-link download counts as a read, like GetObject
    let share = t.push(share_use(
        Use {
            at: at(7),
            op: "GetObject",
            principal: "alice",
            grant: "g-1",
            bucket: "hr-data",
            key: "payroll/2026/03.csv",
        },
        true,
    ));
    // a lifecycle record and a refusal are not usage
    t.push(note("grant g-1 expired"));
    t.push(refused(at(8), 403));
    // the completion of the share download arrives after unrelated records
    t.complete(share, at(9), 206, 50, None);

    let r = report(std::slice::from_ref(&g), &[], &t);
    let u = &r.grants[0].usage;
    assert_eq!((u.allowed, u.denied), (6, 1));
    assert_eq!((u.objects_read, u.bytes_read), (3, 1050));
    assert_eq!((u.objects_written, u.bytes_written), (2, 300));
    assert_eq!((u.first_use, u.last_use), (Some(at(1)), Some(at(7))));
    assert_eq!(u.actions_used, vec![Action::Read, Action::Write]);
    let read: Vec<(&str, u64, u64)> = u
        .keys_read
        .listed
        .iter()
        .map(|k| (k.key.as_str(), k.times, k.bytes))
        .collect();
    assert_eq!(
        read,
        [
            ("payroll/2026/03.csv", 2, 1050),
            ("payroll/2026/04.csv", 1, 0),
            ("payroll/none.csv", 1, 0),
        ]
    );
    assert_eq!(u.keys_written.distinct(), 2);
    assert_eq!(u.used_under.as_deref(), Some("payroll/"));
    let totals = &r.totals;
    assert_eq!(
        (totals.s3_allowed, totals.s3_denied, totals.s3_refused),
        (6, 1, 1)
    );
    assert_eq!((totals.bytes_read, totals.bytes_written), (1050, 300));
    assert_eq!(r.by_principal[0].name, "alice");
    let by_reason: Vec<_> = u.denied_by_reason.iter().map(|(r, n)| (*r, *n)).collect();
    assert_eq!(by_reason, [("outside_scope", 1)]);
    assert_eq!(totals.denied_by_reason, u.denied_by_reason);
    assert_eq!(r.by_prefix[0].name, "hr-data/payroll/");
}

/// Replicas sharing a store each keep a chain, so seqs repeat across chains: a completion
/// joins the decision with its seq in its own replica's chain, and what each replica served
/// is counted per grant and in the totals.
#[test]
fn each_replica_is_counted_for_what_it_served_and_completions_join_in_their_chain() {
    let g = alice_on_payroll("read");
    let at = |m: i64| g.starts_at + Duration::minutes(m);
    let mut t = Trail::default();
    // replica a: a HEAD (seq 1, moving nothing) and a download (seq 2)
    let head = t.decide(&g, at(1), "HeadObject", "payroll/a.csv", true);
    let a_get = t.decide(&g, at(2), "GetObject", "payroll/a.csv", true);
    // replica b: a download that is seq 1 of its own chain, and a denial
    let b_get = t
        .on("r-4e5f6a7b")
        .decide(&g, at(3), "GetObject", "payroll/b.csv", true);
    assert_eq!((head, a_get, b_get), (1, 2, 1));
    t.decide(&g, at(4), "GetObject", "secret/c", false);
    // a's HEAD completes first; b's completion then points at seq 1 of b's chain, its
    // download, not at a's HEAD
    t.on(REPLICA).complete(head, at(5), 200, 0, None);
    t.on("r-4e5f6a7b").complete(b_get, at(5), 200, 700, None);
    t.on(REPLICA).complete(a_get, at(6), 200, 40, None);

    let r = report(std::slice::from_ref(&g), &[], &t);
    let u = &r.grants[0].usage;
    assert_eq!((u.allowed, u.denied, u.bytes_read), (3, 1, 740));
    let served = |allowed, denied, bytes_read| crate::report::Served {
        allowed,
        denied,
        bytes_read,
        bytes_written: 0,
    };
    let by_replica: Vec<(&str, crate::report::Served)> = u
        .by_replica
        .iter()
        .map(|(name, s)| (name.as_str(), s.clone()))
        .collect();
    assert_eq!(
        by_replica,
        [
            (REPLICA, served(2, 0, 40)),
            ("r-4e5f6a7b", served(1, 1, 700))
        ]
    );
    assert_eq!(r.totals.by_replica, u.by_replica);
    let html = to_html(&r);
    assert!(
        html.contains(
            "<dt>served by</dt><dd><code>r-0a1b2c3d</code> 2 allowed, 0 denied, 40 B read, 0 B written · <code>r-4e5f6a7b</code> 1 allowed, 1 denied, 700 B read, 0 B written</dd>"
        ),
        "{html}"
    );
    let csv = to_csv(&r);
    assert!(csv.contains(",r-0a1b2c3d=2/0; r-4e5f6a7b=1/1,"), "{csv}");
}

/// Denials are counted by the reason their records carry; one recorded before records
/// carried a reason (version 1) counts as a denial all the same, under no reason.
#[test]
fn denials_are_counted_by_the_reason_their_records_give() {
    let g = alice_on_payroll("read");
    let at = |m: i64| g.starts_at + Duration::minutes(m);
    let mut t = Trail::default();
    t.decide(&g, at(1), "GetObject", "secret/a", false);
    t.decide(&g, at(2), "GetObject", "secret/b", false);
    t.decide(&g, at(3), "GetObject", "secret/c", false);
    let old = &mut t.entries.last_mut().unwrap().record;
    let crate::record::Kind::S3(crate::record::S3::Denied(decided)) = &mut old.body.kind else {
        panic!("{old:?}")
    };
    decided.denial = None;
    t.push(share_use(
        Use {
            at: at(4),
            op: "GetObject",
            principal: "alice",
            grant: "g-1",
            bucket: "hr-data",
            key: "payroll/a",
        },
        false,
    ));
    assert!(
        t.entries
            .last()
            .unwrap()
            .record
            .body
            .kind
            .denial()
            .is_some()
    );

    let rep = report(std::slice::from_ref(&g), &[], &t);
    let u = &rep.grants[0].usage;
    assert_eq!(u.denied, 4);
    let by_reason: Vec<_> = u.denied_by_reason.iter().map(|(r, n)| (*r, *n)).collect();
    assert_eq!(by_reason, [("link_ended", 1), ("outside_scope", 2)]);
    assert_eq!(rep.totals.s3_denied, 4);
    assert_eq!(rep.totals.denied_by_reason, u.denied_by_reason);
    let html = crate::report::to_html(&rep);
    assert!(
        html.contains("4 <small class=\"muted\">of 4 (link_ended 1, outside_scope 2)</small>"),
        "{html}"
    );
    assert!(
        html.contains("0 allowed, 4 denied (link_ended 1, outside_scope 2)"),
        "{html}"
    );
}

#[test]
fn the_period_is_half_open_and_grants_must_overlap_it() {
    let before = grant(
        "g-before",
        "bob",
        "s3://hr-data/",
        "read",
        datetime!(2026-02-27 00:00 UTC),
        24,
    );
    let straddles = grant(
        "g-straddles",
        "bob",
        "s3://hr-data/",
        "read",
        datetime!(2026-02-28 20:00 UTC),
        8,
    );
    let last = grant(
        "g-last",
        "bob",
        "s3://hr-data/",
        "read",
        datetime!(2026-03-31 23:00 UTC),
        2,
    );
    let after = grant("g-after", "bob", "s3://hr-data/", "read", TO, 1);
    let mut t = Trail::default();
    // before the period: not counted, even under a grant that overlaps it
    t.used(
        &straddles,
        datetime!(2026-02-28 23:59:59 UTC),
        "GetObject",
        "a/1",
        1,
        0,
    );
    // the first instant counts
    t.used(&straddles, FROM, "GetObject", "a/2", 2, 0);
    // a download that started in March and finished in April counts for March
    let late = t.decide(
        &last,
        datetime!(2026-03-31 23:59:59 UTC),
        "GetObject",
        "a/3",
        true,
    );
    t.complete(late, datetime!(2026-04-01 00:00:30 UTC), 200, 4, None);
    // the end is excluded
    t.used(&last, TO, "GetObject", "a/4", 8, 0);
    let requests = [
        request("r-before", &before, Duration::hours(1), &["carol"], "old"),
        request("r-last", &last, Duration::hours(1), &["carol"], "month end"),
    ];
    let r = report(&[before, straddles, last, after], &requests, &t);
    let ids: Vec<&str> = r.grants.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["g-straddles", "g-last"]);
    assert_eq!(r.totals.bytes_read, 6);
    assert_eq!(r.totals.s3_allowed, 2);
    assert_eq!(r.totals.requests, 1, "only r-last was filed in March");
    assert_eq!(r.totals.principals, 1);
}

#[test]
fn approvals_show_who_when_mfa_and_latency_and_automatic_ones_are_marked() {
    let g = grant(
        "g-1",
        "alice",
        "s3://hr-data/payroll/",
        "read",
        datetime!(2026-03-10 09:00 UTC),
        1,
    );
    let h = grant(
        "g-2",
        "alice",
        "s3://hr-data/payroll/",
        "read",
        datetime!(2026-03-11 09:00 UTC),
        1,
    );
    let requests = [
        request("r-1", &g, Duration::minutes(12), &["bob"], "INC-4411"),
        request("r-2", &h, Duration::ZERO, &[], "routine"),
    ];
    let r = report(&[g, h], &requests, &Trail::default());
    let a = &r.grants[0].requests[0];
    assert_eq!(a.latency_seconds, Some(720));
    assert!(!a.automatic);
    assert_eq!(
        (a.approvers[0].by.as_str(), a.approvers[0].mfa),
        ("bob", true)
    );
    assert!(r.grants[1].requests[0].automatic);
    assert_eq!(r.totals.requests_auto_approved, 1);
}

#[test]
fn key_lists_are_capped_and_count_the_rest() {
    let g = grant(
        "g-1",
        "alice",
        "s3://logs/",
        "read",
        datetime!(2026-03-10 09:00 UTC),
        1,
    );
    let mut t = Trail::default();
    for i in 0..73 {
        t.used(
            &g,
            g.starts_at,
            "GetObject",
            &format!("app/{i:03}.log"),
            1,
            0,
        );
    }
    let keys = &report(std::slice::from_ref(&g), &[], &t).grants[0]
        .usage
        .keys_read;
    assert_eq!(
        (keys.listed.len(), keys.more),
        (crate::report::KEYS_LISTED, 23)
    );
    assert_eq!(keys.listed[0].key, "app/000.log");
}

#[test]
fn the_common_folder_of_keys() {
    let folder = |keys: &[&str]| common_folder(keys.iter().copied());
    assert_eq!(folder(&[]), None);
    assert_eq!(folder(&["a/b/c.csv"]).as_deref(), Some("a/b/"));
    assert_eq!(folder(&["a/b/c", "a/b/d/e"]).as_deref(), Some("a/b/"));
    assert_eq!(folder(&["a/bc/x", "a/b/x"]).as_deref(), Some("a/"));
    assert_eq!(folder(&["a/x", "b/x"]).as_deref(), Some(""));
    assert_eq!(folder(&["top.csv"]).as_deref(), Some(""));
}

/// For every operation of the table and every way its answer can end (a success carrying
/// bytes both ways, an error answer, no completion at all as after a crash), the meter that
/// enforces a grant's limits, rebuilt from the trail as at start-up, and the report count the
/// same records alike: both read the table's data-effect column, objects at admission, bytes
/// from the answer.
#[test]
fn the_meter_and_the_report_agree_on_every_operation_of_the_table() {
    use crate::grant::usage::{Meter, Replay};
    use crate::s3::{TABLE, effect_of};
    let start = datetime!(2026-03-10 09:00 UTC);
    let mut counted = Vec::new();
    for rule in TABLE {
        for answer in [Some((200, 100, 40)), Some((404, 120, 40)), None] {
            let g = grant(
                "g-1",
                "alice",
                "s3://hr-data/payroll/",
                "read,list,write,delete",
                start,
                1,
            );
            let at = start + Duration::minutes(5);
            let mut t = Trail::default();
            let seq = t.decide(&g, at, rule.op, "payroll/a.csv", true);
            if let Some((status, out, inn)) = answer {
                t.complete(seq, at + Duration::seconds(1), status, out, Some(inn));
            }
            t.decide(&g, at, rule.op, "payroll/b.csv", false);

            let mut replay = Replay::new(effect_of);
            for entry in &t.entries {
                replay.add(entry.record.seq, &entry.record.body);
            }
            let meter = replay.finish().get("g-1");
            let report = report(std::slice::from_ref(&g), &[], &t).grants[0]
                .usage
                .clone();
            let of_meter = (
                meter.requests,
                meter.denied,
                meter.objects_read,
                meter.objects_written,
                meter.bytes_read,
                meter.bytes_written,
            );
            let of_report = (
                report.allowed,
                report.denied,
                report.objects_read,
                report.objects_written,
                report.bytes_read,
                report.bytes_written,
            );
            assert_eq!(of_meter, of_report, "{} answered {answer:?}", rule.op);

            // The live meter counts the same objects when it admits the request.
            let live = Meter::default();
            live.admit(&g, rule.effect, at).unwrap();
            let live = live.get("g-1");
            assert_eq!(
                (live.objects_read, live.objects_written),
                (meter.objects_read, meter.objects_written),
                "{}",
                rule.op
            );
            counted.push((rule.op, answer.map(|a| a.0), of_report));
        }
    }
    // Not all zeros: what each kind of operation counts, once.
    let of = |op: &str, status: Option<u16>| {
        counted
            .iter()
            .find(|c| c.0 == op && c.1 == status)
            .map(|c| c.2)
            .unwrap()
    };
    // (allowed, denied, objects read, objects written, bytes read, bytes written)
    assert_eq!(of("GetObject", Some(200)), (1, 1, 1, 0, 100, 0));
    assert_eq!(of("GetObject", Some(404)), (1, 1, 1, 0, 0, 0));
    assert_eq!(of("GetObject", None), (1, 1, 1, 0, 0, 0));
    assert_eq!(of("PutObject", Some(200)), (1, 1, 0, 1, 0, 40));
    assert_eq!(of("PutObject", Some(404)), (1, 1, 0, 1, 0, 40));
    assert_eq!(of("UploadPart", Some(200)), (1, 1, 0, 0, 0, 40));
    assert_eq!(of("HeadObject", Some(200)), (1, 1, 0, 0, 0, 0));
    assert_eq!(of("ListObjectsV2", Some(200)), (1, 1, 0, 0, 0, 0));
}
