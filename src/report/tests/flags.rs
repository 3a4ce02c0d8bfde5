//! Each flag where it should fire, and nowhere else.

use super::*;

#[test]
fn a_grant_nobody_used_is_flagged_but_not_one_still_to_start() {
    let idle = grant(
        "g-idle",
        "alice",
        "s3://hr-data/payroll/",
        "read",
        datetime!(2026-03-10 09:00 UTC),
        2,
    );
    let future = grant(
        "g-future",
        "alice",
        "s3://hr-data/payroll/",
        "read",
        datetime!(2026-04-03 09:00 UTC),
        2,
    );
    let r = build(
        FROM,
        datetime!(2026-05-01 00:00 UTC),
        NOW,
        &[idle, future],
        &[],
        &[],
    );
    assert_eq!(kinds(&r, "g-idle"), [FlagKind::Unused]);
    assert!(kinds(&r, "g-future").is_empty());
    assert!(
        r.flags[0]
            .message
            .contains("alice held read on s3://hr-data/payroll/")
    );
}

#[test]
fn write_granted_but_only_read_used_is_flagged() {
    let g = grant(
        "g-1",
        "alice",
        "s3://hr-data/payroll/",
        "read,list,write,delete",
        datetime!(2026-03-10 09:00 UTC),
        1,
    );
    let mut t = Trail::default();
    t.used(&g, g.starts_at, "GetObject", "payroll/a.csv", 1, 0);
    let r = report(std::slice::from_ref(&g), &[], &t);
    assert_eq!(kinds(&r, "g-1"), [FlagKind::UnusedActions]);
    let message = &r.flags[0].message;
    assert!(
        message.contains("only used read: write and delete was never used"),
        "{message}"
    );
}

#[test]
fn keys_all_under_a_much_deeper_prefix_than_granted_are_flagged() {
    let cases: [(&str, &str, &[&str], bool); 4] = [
        // a whole-bucket grant used in one folder
        (
            "g-wide",
            "s3://hr-data/",
            &["payroll/2026/03/a.csv", "payroll/2026/03/deep/b.csv"],
            true,
        ),
        // two levels below the granted prefix
        (
            "g-deep",
            "s3://hr-data/payroll/",
            &["payroll/2026/03/a.csv", "payroll/2026/03/b.csv"],
            true,
        ),
        // one level below is ordinary
        (
            "g-year",
            "s3://hr-data/payroll/",
            &["payroll/2026/a.csv", "payroll/2026/b.csv"],
            false,
        ),
        // and one key always lies in some folder
        (
            "g-one",
            "s3://hr-data/payroll/",
            &["payroll/2026/03/a.csv"],
            false,
        ),
    ];
    let start = datetime!(2026-03-10 09:00 UTC);
    let mut t = Trail::default();
    let mut grants = Vec::new();
    for (id, uri, keys, _) in cases {
        let g = grant(id, "alice", uri, "read", start, 1);
        for key in keys {
            t.used(&g, start, "GetObject", key, 1, 0);
        }
        grants.push(g);
    }
    let r = report(&grants, &[], &t);
    for (id, _, _, flagged) in cases {
        let want: &[FlagKind] = if flagged {
            &[FlagKind::NarrowerPrefix]
        } else {
            &[]
        };
        assert_eq!(kinds(&r, id), want, "{id}");
    }
    assert!(r.flags[0].message.contains(
        "granted s3://hr-data/payroll/ but every key used (2 distinct) lies under s3://hr-data/payroll/2026/03/"
    ), "{}", r.flags[0].message);
}

#[test]
fn a_long_window_used_only_at_its_start_is_flagged() {
    let long = grant(
        "g-long",
        "alice",
        "s3://hr-data/payroll/",
        "read",
        datetime!(2026-03-10 09:00 UTC),
        8,
    );
    let short = grant(
        "g-short",
        "bob",
        "s3://hr-data/payroll/",
        "read",
        datetime!(2026-03-10 09:00 UTC),
        1,
    );
    let busy = grant(
        "g-busy",
        "carol",
        "s3://hr-data/payroll/",
        "read",
        datetime!(2026-03-10 09:00 UTC),
        8,
    );
    let mut t = Trail::default();
    t.used(
        &long,
        long.starts_at + Duration::minutes(20),
        "GetObject",
        "payroll/a",
        1,
        0,
    );
    t.used(
        &short,
        short.starts_at + Duration::minutes(5),
        "GetObject",
        "payroll/a",
        1,
        0,
    );
    t.used(
        &busy,
        busy.starts_at + Duration::hours(7),
        "GetObject",
        "payroll/a",
        1,
        0,
    );
    let r = report(&[long, short, busy], &[], &t);
    assert_eq!(kinds(&r, "g-long"), [FlagKind::LongerThanNeeded]);
    assert_eq!(
        r.flags[0].message,
        "alice last used g-long 20m after it started, in a window of 8h: the remaining 7h40m was open access nobody needed."
    );
    assert!(kinds(&r, "g-short").is_empty());
    assert!(kinds(&r, "g-busy").is_empty());
}

#[test]
fn the_same_request_again_and_again_and_the_same_approver_are_patterns() {
    let day = |d: i64| datetime!(2026-03-02 09:00 UTC) + Duration::days(d);
    let mut grants = Vec::new();
    let mut requests = Vec::new();
    let mut t = Trail::default();
    for d in 0..3 {
        // alice's three automatic approvals for the same scope
        let g = grant(
            &format!("g-a{d}"),
            "alice",
            "s3://logs/app/",
            "read",
            day(d),
            1,
        );
        requests.push(request(
            &format!("r-a{d}"),
            &g,
            Duration::ZERO,
            &[],
            "debugging",
        ));
        t.used(&g, g.starts_at, "GetObject", "app/x.log", 1, 0);
        grants.push(g);
        // dave's three requests for different scopes, each approved by erin within a minute
        let g = grant(
            &format!("g-d{d}"),
            "dave",
            &format!("s3://hr-data/team-{d}/"),
            "read",
            day(d),
            1,
        );
        requests.push(request(
            &format!("r-d{d}"),
            &g,
            Duration::seconds(40),
            &["erin"],
            "review",
        ));
        t.used(&g, g.starts_at, "GetObject", &format!("team-{d}/x"), 1, 0);
        grants.push(g);
    }
    let r = report(&grants, &requests, &t);
    let repeated: Vec<_> = r
        .flags
        .iter()
        .filter(|f| f.kind == FlagKind::RepeatedRequest)
        .collect();
    assert_eq!(repeated.len(), 1);
    assert_eq!(repeated[0].grant, "g-a2");
    assert_eq!(repeated[0].related, ["g-a0", "g-a1"]);
    assert!(repeated[0].message.starts_with(
        "alice requested read on s3://logs/app/ 3 times in the period, each approved automatically by policy rule self-service"
    ));
    let approver: Vec<_> = r
        .flags
        .iter()
        .filter(|f| f.kind == FlagKind::RepeatedApprover)
        .collect();
    assert_eq!(approver.len(), 1);
    assert!(approver[0].message.starts_with(
        "erin approved 3 of dave's requests in the period, 3 of them within two minutes"
    ));
}

#[test]
fn a_grant_that_fits_its_use_has_no_flags() {
    let g = grant(
        "g-1",
        "alice",
        "s3://hr-data/payroll/",
        "read",
        datetime!(2026-03-10 09:00 UTC),
        1,
    );
    let mut t = Trail::default();
    t.used(
        &g,
        g.starts_at + Duration::minutes(40),
        "GetObject",
        "payroll/a.csv",
        1,
        0,
    );
    t.used(
        &g,
        g.starts_at + Duration::minutes(41),
        "GetObject",
        "payroll/b.csv",
        1,
        0,
    );
    let requests = [request("r-1", &g, Duration::minutes(5), &["bob"], "INC-1")];
    assert!(report(&[g], &requests, &t).flags.is_empty());
}

#[test]
fn the_same_finding_on_one_principals_scope_is_one_flag() {
    let start = datetime!(2026-03-10 09:00 UTC);
    let grants: Vec<Grant> = (0..3)
        .map(|d| {
            grant(
                &format!("g-{d}"),
                "alice",
                "s3://hr-data/payroll/",
                "read",
                start + Duration::days(d),
                1,
            )
        })
        .chain([grant(
            "g-other",
            "alice",
            "s3://hr-data/reviews/",
            "read",
            start,
            1,
        )])
        .collect();
    let r = report(&grants, &[], &Trail::default());
    let unused: Vec<(&str, &[String])> = r
        .flags
        .iter()
        .map(|f| (f.grant.as_str(), f.related.as_slice()))
        .collect();
    assert_eq!(
        unused,
        [
            ("g-2", &["g-0".to_owned(), "g-1".to_owned()][..]),
            ("g-other", &[][..])
        ]
    );
    assert!(
        r.flags[0]
            .message
            .ends_with("The same holds for 2 earlier grants on this scope.")
    );
}
