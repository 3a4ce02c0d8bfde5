//! The auditor's report as a browser shows it: a month of realistic grants, requests and
//! trail records rendered to HTML, screenshotted by headless Chromium, and every chart found
//! on the screenshot by its fill colour. Proves the inline SVG actually draws, with nothing
//! fetched. Chromium comes from `SESAME_CHROMIUM`, else `/usr/bin/chromium` (scripts/test
//! installs Debian's package). Set `SESAME_REPORT_OUT` to a folder to keep the page and PNG.

use std::path::{Path, PathBuf};
use std::process::Command;

use sesame::audit::chain::Record;
use sesame::audit::replicas::Entry;
use sesame::model::request::{AccessRequest, Approval, Needs, RequestState};
use sesame::model::scope::parse_actions;
use sesame::model::{Grant, Scope};
use sesame::record::{Body, Completion, Decision, Outcome, RequestFacts, S3};
use sesame::report::{self, palette};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::harness::run;

const FROM: OffsetDateTime = datetime!(2026-03-01 00:00 UTC);
const TO: OffsetDateTime = datetime!(2026-04-01 00:00 UTC);

/// Grants, requests and a trail for March, shaped like a small HR and platform team's month.
#[derive(Default)]
struct Month {
    grants: Vec<Grant>,
    requests: Vec<AccessRequest>,
    trail: Vec<Entry>,
}

impl Month {
    /// A grant approved by `by` (none: automatically) `wait` after it was asked for.
    #[allow(clippy::too_many_arguments)]
    fn grant(
        &mut self,
        who: &str,
        uri: &str,
        actions: &str,
        start: OffsetDateTime,
        hours: i64,
        wait: Duration,
        by: &[&str],
        why: &str,
    ) -> Grant {
        let n = self.grants.len() + 1;
        let scope = Scope::parse(uri, parse_actions(actions).unwrap()).unwrap();
        let g = Grant {
            id: format!("g-{n:02}"),
            principal: who.into(),
            scope: scope.clone(),
            created_at: start,
            starts_at: start,
            expires_at: start + Duration::hours(hours),
            revoked_at: None,
            revoked_by: None,
            notices: Vec::new(),
            limits: sesame::model::Limits::default(),
        };
        let filed = start - wait;
        self.requests.push(AccessRequest {
            id: format!("r-{n:02}"),
            requester: who.into(),
            scope,
            duration_seconds: hours * 3600,
            starts_at: None,
            justification: Some(why.into()),
            needs: Needs {
                rule: if by.is_empty() {
                    "logs-self-service"
                } else {
                    "hr-sensitive"
                }
                .into(),
                approvals: u32::try_from(by.len()).unwrap(),
                approver_groups: vec!["data-owners".into()],
                approver_mfa: !by.is_empty(),
                limits: sesame::model::Limits::default(),
            },
            created_at: filed,
            pending_until: filed + Duration::hours(24),
            approvals: by
                .iter()
                .map(|b| Approval {
                    by: (*b).into(),
                    at: start,
                    mfa: true,
                })
                .collect(),
            state: RequestState::Approved { at: start },
            extends: None,
            grant_id: Some(g.id.clone()),
        });
        self.grants.push(g.clone());
        g
    }

    fn record(&mut self, body: impl Into<Body>) -> u64 {
        let seq = self.trail.len() as u64 + 1;
        self.trail.push(Entry {
            replica: "r-0a1b2c3d".into(),
            record: Record {
                seq,
                prev: "-".into(),
                body: body.into(),
                hash: "-".into(),
            },
        });
        seq
    }

    /// A decision by `g`'s holder, as the gateway records it.
    fn decision(g: &Grant, at: OffsetDateTime, op: &str, key: &str, allowed: bool) -> S3 {
        let decided = Decision {
            at,
            request: Some(RequestFacts {
                request_id: "5F0C2A9B7D41E8C3".into(),
                client: Some("10.0.4.17".into()),
                user_agent: "aws-cli/1.38".into(),
                range: None,
            }),
            op: op.into(),
            access_key: Some("SESAABCDEFGHIJKLMNOP".into()),
            principal: Some(g.principal.clone()),
            grant: Some(g.id.clone()),
            bucket: Some(g.scope.bucket.clone()),
            key: Some(key.into()),
            error_code: (!allowed).then(|| "AccessDenied".into()),
            error: None,
            denial: None,
        };
        if allowed {
            S3::Allowed(decided)
        } else {
            S3::Denied(decided)
        }
    }

    /// An allowed request under `g` with its completion.
    fn used(&mut self, g: &Grant, at: OffsetDateTime, op: &str, key: &str, out: u64, inn: u64) {
        let decision = self.record(Month::decision(g, at, op, key, true));
        self.record(Completion {
            at: at + Duration::seconds(2),
            request: RequestFacts {
                request_id: "5F0C2A9B7D41E8C3".into(),
                client: Some("10.0.4.17".into()),
                user_agent: "aws-cli/1.38".into(),
                range: None,
            },
            decision: Some(decision),
            status: 200,
            bytes_out: out,
            bytes_in: inn,
            latency_ms: 2000,
            outcome: Outcome::Complete,
            stopped: None,
            stop_kind: None,
            error_code: None,
            error: None,
        });
    }

    fn denied(&mut self, g: &Grant, at: OffsetDateTime, op: &str, key: &str) {
        self.record(Month::decision(g, at, op, key, false));
    }
}

const MIB: u64 = 1024 * 1024;

fn march() -> Month {
    let mut m = Month::default();
    let day = |d: i64, h: i64| FROM + Duration::days(d - 1) + Duration::hours(h);
    let min = Duration::minutes;

    // Payroll close: alice reads March payroll, approved by erin with MFA.
    let g = m.grant(
        "alice@corp.example",
        "s3://hr-data/payroll/",
        "read,list",
        day(3, 9),
        2,
        min(14),
        &["erin@corp.example"],
        "PAY-311 March payroll close",
    );
    for (i, emp) in ["0042", "0107", "0311", "0412"].iter().enumerate() {
        let at = g.starts_at + min(5 + 9 * i as i64);
        m.used(
            &g,
            at,
            "GetObject",
            &format!("payroll/2026/03/{emp}.csv"),
            (2 + i as u64) * MIB,
            0,
        );
    }
    m.used(&g, g.starts_at + min(50), "ListObjectsV2", "", 4096, 0);
    // A wide grant used narrowly and briefly: whole bucket, read+write, one morning's look.
    let g = m.grant(
        "bob@corp.example",
        "s3://hr-data/",
        "read,write,delete",
        day(6, 8),
        8,
        min(42),
        &["frank@corp.example"],
        "HR-88 <script>alert('audit')</script> fix the benefits export",
    );
    m.used(
        &g,
        g.starts_at + min(10),
        "GetObject",
        "benefits/2026/export.csv",
        11 * MIB,
        0,
    );
    m.used(
        &g,
        g.starts_at + min(25),
        "GetObject",
        "benefits/2026/export-old.csv",
        9 * MIB,
        0,
    );
    m.denied(&g, g.starts_at + min(30), "GetObject", "../secrets/key");
    // Carol uploads the quarterly ledger.
    let g = m.grant(
        "carol@corp.example",
        "s3://finance/ledger/",
        "read,write",
        day(9, 13),
        3,
        min(95),
        &["erin@corp.example"],
        "FIN-17 quarterly ledger upload",
    );
    for (i, part) in ["q1-journal.parquet", "q1-balances.parquet", "q1-notes.md"]
        .iter()
        .enumerate()
    {
        m.used(
            &g,
            g.starts_at + min(20 + 15 * i as i64),
            "PutObject",
            &format!("ledger/2026/{part}"),
            0,
            (30 - 10 * i as u64) * MIB,
        );
    }
    m.used(
        &g,
        g.starts_at + min(80),
        "GetObject",
        "ledger/2026/q1-journal.parquet",
        30 * MIB,
        0,
    );
    // On-call dave reads application logs often, each time approved by policy.
    for d in [2, 8, 13, 19, 24, 29] {
        let g = m.grant(
            "dave@corp.example",
            "s3://logs/app/",
            "read,list",
            day(d, 22),
            1,
            Duration::ZERO,
            &[],
            "on-call: checkout latency alarm",
        );
        for k in 0..6 {
            m.used(
                &g,
                g.starts_at + min(3 + 5 * k),
                "GetObject",
                &format!("app/2026/03/{d:02}/checkout-{k}.log.gz"),
                700 * 1024 + k.unsigned_abs() * 90_000,
                0,
            );
        }
    }
    // Grace asks erin four times for payroll exports; erin approves within a minute.
    for d in [5, 12, 19, 26] {
        let g = m.grant(
            "grace@corp.example",
            "s3://hr-data/payroll/exports/",
            "read",
            day(d, 15),
            1,
            Duration::seconds(45),
            &["erin@corp.example"],
            "weekly headcount reconciliation",
        );
        m.used(
            &g,
            g.starts_at + min(7),
            "GetObject",
            &format!("payroll/exports/2026-03-{d:02}.xlsx"),
            3 * MIB,
            0,
        );
    }
    // A contractor's grant that nobody used, and one revoked early.
    m.grant(
        "henry@contractor.example",
        "s3://finance/invoices/",
        "read",
        day(16, 10),
        4,
        Duration::hours(3),
        &["frank@corp.example"],
        "AUD-2 vendor invoice sampling",
    );
    let mut g = m.grant(
        "ivan@corp.example",
        "s3://hr-data/reviews/",
        "read",
        day(21, 9),
        6,
        min(30),
        &["erin@corp.example", "frank@corp.example"],
        "Performance review calibration, \"Q1\"",
    );
    m.used(
        &g,
        g.starts_at + min(12),
        "GetObject",
        "reviews/2026/q1/team-platform.pdf",
        6 * MIB,
        0,
    );
    m.used(
        &g,
        g.starts_at + min(16),
        "HeadObject",
        "reviews/2026/q1/team-data.pdf",
        0,
        0,
    );
    g.revoked_at = Some(g.starts_at + Duration::hours(1));
    g.revoked_by = Some("frank@corp.example".into());
    *m.grants.last_mut().unwrap() = g;
    m
}

fn chromium() -> PathBuf {
    std::env::var_os("SESAME_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Headless Chromium with a fresh profile and none of its background traffic (this machine
/// has no network), under coreutils' timeout so a hung browser fails the test.
pub fn headless_chromium(profile: &Path) -> Command {
    let bin = chromium();
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test, which installs chromium, or set SESAME_CHROMIUM",
        bin.display()
    );
    let mut cmd = Command::new("timeout");
    cmd.arg("120")
        .arg(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// Screenshots `page` at 1280×2000.
pub fn screenshot(page: &Path, png: &Path, profile: &Path) {
    let mut cmd = headless_chromium(profile);
    cmd.arg("--window-size=1280,2000")
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()));
    let out = run(cmd);
    assert!(png.exists(), "chromium wrote no screenshot: {out:#?}");
}

/// How many pixels have exactly each of `colours` (`#rrggbb`).
pub fn count_pixels(png: &Path, colours: &[&str]) -> Vec<usize> {
    let mut decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let channels = frame.color_type.samples();
    assert!(
        channels >= 3,
        "expected a colour screenshot, got {:?}",
        frame.color_type
    );
    let wanted: Vec<[u8; 3]> = colours
        .iter()
        .map(|c| {
            let v = u32::from_str_radix(c.trim_start_matches('#'), 16).unwrap();
            [(v >> 16) as u8, (v >> 8) as u8, v as u8]
        })
        .collect();
    let mut counts = vec![0; colours.len()];
    for px in buf[..frame.buffer_size()].chunks_exact(channels) {
        if let Some(i) = wanted.iter().position(|w| px[..3] == w[..]) {
            counts[i] += 1;
        }
    }
    counts
}

#[test]
fn every_chart_of_the_report_renders_in_a_browser() {
    let m = march();
    let report = report::build(
        FROM,
        TO,
        datetime!(2026-04-01 06:00 UTC),
        &m.grants,
        &m.requests,
        &m.trail,
    );
    // The fixture is shaped to raise each kind of flag once or more.
    let mut kinds: Vec<&str> = report.flags.iter().map(|f| f.kind.label()).collect();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "never used",
            "unused actions",
            "scope wider than used",
            "longer than needed",
            "repeated request",
            "same approver"
        ]
    );
    // Dave's six on-call grants share one "wider than used" flag rather than six.
    let dave = report
        .flags
        .iter()
        .find(|f| {
            f.message
                .starts_with("dave@corp.example was granted s3://logs/app/")
        })
        .unwrap();
    assert_eq!(
        (dave.grant.as_str(), dave.related.len()),
        ("g-09", 5),
        "{dave:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let png = dir.path().join("report.png");
    std::fs::write(&page, report::to_html(&report)).unwrap();
    screenshot(&page, &png, &dir.path().join("profile"));
    if let Some(keep) = std::env::var_os("SESAME_REPORT_OUT") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&page, keep.join("report.html")).unwrap();
        std::fs::copy(&png, keep.join("report.png")).unwrap();
    }

    // Each chart's colour, and the fewest pixels of it that mean the chart drew (the use
    // marks inside grant bars are small by nature; bars and columns are large).
    let charts = [
        ("grants over time: windows", palette::WINDOW, 500),
        ("grants over time: use", palette::USED, 100),
        ("bytes by principal: read", palette::PRINCIPAL_READ, 1000),
        (
            "bytes by principal: written",
            palette::PRINCIPAL_WRITE,
            1000,
        ),
        ("bytes by prefix: read", palette::PREFIX_READ, 1000),
        ("bytes by prefix: written", palette::PREFIX_WRITE, 1000),
        ("approval latency: by people", palette::LATENCY, 1000),
        ("approval latency: automatic", palette::AUTOMATIC, 1000),
    ];
    let colours: Vec<&str> = charts.iter().map(|(_, c, _)| *c).collect();
    let counts = count_pixels(&png, &colours);
    eprintln!("pixels per chart colour: {counts:?}");
    let missing: Vec<String> = charts
        .iter()
        .zip(&counts)
        .filter(|((_, _, least), n)| **n < *least)
        .map(|((name, colour, least), n)| format!("{name} ({colour}): {n} pixels, want {least}"))
        .collect();

    assert!(
        missing.is_empty(),
        "charts not drawn: {missing:?}; all counts {counts:?}"
    );
}
