//! The HTML and CSV renderings: user text stays text.

use super::*;

#[test]
fn user_text_cannot_become_markup() {
    let g = grant(
        "g-1",
        "alice\"><img src=x onerror=alert(1)>",
        "s3://hr-data/payroll/",
        "read",
        datetime!(2026-03-10 09:00 UTC),
        1,
    );
    let mut t = Trail::default();
    t.used(
        &g,
        g.starts_at,
        "GetObject",
        "payroll/<script>alert('key')</script>.csv",
        5,
        0,
    );
    let requests = [request(
        "r-1",
        &g,
        Duration::minutes(5),
        &["bob"],
        "<script>alert(\"why\")</script> & more",
    )];
    let html = to_html(&report(&[g], &requests, &t));
    assert!(
        !html.to_lowercase().contains("<script"),
        "a script tag got through"
    );
    assert!(!html.contains("<img"), "an img tag got through");
    assert!(html.contains("&lt;script&gt;alert(&quot;why&quot;)&lt;/script&gt; &amp; more"));
    assert!(html.contains("payroll/&lt;script&gt;alert(&#39;key&#39;)&lt;/script&gt;.csv"));
    // nothing is fetched: no external script, stylesheet, font or image
    for needle in [" src=\"", "<link", "@import", "url(", "http://", "https://"] {
        assert!(!html.contains(needle), "{needle} in the page");
    }
}

#[test]
fn csv_quotes_per_rfc_4180_and_defuses_formulas() {
    assert_eq!(crate::report::csv::field("plain"), "plain");
    assert_eq!(crate::report::csv::field("a,b"), "\"a,b\"");
    assert_eq!(
        crate::report::csv::field("say \"hi\""),
        "\"say \"\"hi\"\"\""
    );
    assert_eq!(crate::report::csv::field("two\nlines"), "\"two\nlines\"");
    assert_eq!(
        crate::report::csv::field("=HYPERLINK(\"x\")"),
        "\"'=HYPERLINK(\"\"x\"\")\""
    );
    assert_eq!(crate::report::csv::field("@SUM(A1)"), "'@SUM(A1)");

    let g = grant(
        "g-1",
        "alice",
        "s3://hr-data/payroll/",
        "read,list",
        datetime!(2026-03-10 09:00 UTC),
        1,
    );
    let requests = [request(
        "r-1",
        &g,
        Duration::minutes(5),
        &["bob"],
        "audit, \"Q1\"\nfollow-up",
    )];
    let csv = to_csv(&report(&[g], &requests, &Trail::default()));
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert!(lines[0].starts_with("grant_id,principal,scope,actions,"));
    assert!(lines[1].starts_with("g-1,alice,s3://hr-data/payroll/,\"read,list\",expired,"));
    assert!(lines[1].contains(",\"audit, \"\"Q1\"\"\nfollow-up\","));
    assert!(lines[1].contains(",bob 2026-03-10T09:00:00Z mfa,"));
    assert_eq!(
        lines.len(),
        3,
        "header, one row (a field holds a bare LF), the end"
    );
    assert_eq!(lines[2], "");
}

#[test]
fn the_json_format_is_the_report_serialised() {
    let g = grant(
        "g-1",
        "alice",
        "s3://hr-data/payroll/",
        "read",
        datetime!(2026-03-10 09:00 UTC),
        1,
    );
    let mut t = Trail::default();
    t.used(&g, g.starts_at, "GetObject", "payroll/a.csv", 42, 0);
    let requests = [request("r-1", &g, Duration::minutes(5), &["bob"], "INC-1")];
    let json = serde_json::to_value(report(&[g], &requests, &t)).unwrap();
    assert_eq!(json["period"]["from"], "2026-03-01T00:00:00Z");
    let g = &json["grants"][0];
    assert_eq!(g["state"], "expired");
    assert_eq!(g["actions"], serde_json::json!(["read"]));
    assert_eq!(g["requests"][0]["approvers"][0]["by"], "bob");
    assert_eq!(g["requests"][0]["latency_seconds"], 300);
    assert_eq!(g["usage"]["bytes_read"], 42);
    assert_eq!(g["usage"]["keys_read"]["listed"][0]["key"], "payroll/a.csv");
    assert_eq!(json["totals"]["bytes_read"], 42);
}
