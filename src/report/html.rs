//! The report as one self-contained HTML page: inline CSS and inline SVG charts, no script,
//! font or link to fetch, so it can be mailed, archived with the evidence, opened offline and
//! printed. Every piece of user-provided text (principals, justifications, keys, reasons) goes
//! through [`escape`].

use std::fmt::Write as _;

use super::charts::{self, palette};
use super::{Approval, GrantReport, Keys, Report, Served, bytes, minutes, when};

/// Text made safe for HTML element content and quoted attribute values.
#[must_use]
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r"
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #111827; margin: 0; background: #fff; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 10px; border-bottom: 1px solid #d1d5db; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
.muted { color: #6b7280; }
.trail-ok { margin: 8px 0; color: #166534; }
.trail-broken { margin: 8px 0; padding: 8px; background: #fee2e2; color: #991b1b; }
.totals { display: grid; grid-template-columns: repeat(5, 1fr); gap: 10px; margin-top: 16px; }
.tile { border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px 12px; }
.tile b { display: block; font-size: 20px; }
.tile small { display: block; font-size: 12px; font-weight: normal; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 16px 24px; }
figure { margin: 0; break-inside: avoid; }
figcaption { font-weight: 600; margin-bottom: 4px; }
figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { border: 1px solid #e5e7eb; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; }
td.num { text-align: right; white-space: nowrap; }
table.keys th + th { width: 110px; }
code, .key { font-family: ui-monospace, 'SFMono-Regular', Menlo, monospace; font-size: 12px; overflow-wrap: anywhere; }
.badge { display: inline-block; border-radius: 4px; padding: 0 6px; font-size: 12px; background: #fef3c7; color: #92400e; white-space: nowrap; }
ul.flags { padding-left: 0; list-style: none; }
ul.flags li { margin: 6px 0; }
section.grant { break-inside: avoid-page; border-top: 1px solid #e5e7eb; padding-top: 4px; }
dl { display: grid; grid-template-columns: 160px 1fr; gap: 2px 12px; margin: 6px 0; }
dt { color: #6b7280; }
dd { margin: 0; }
@media print {
  main { max-width: none; padding: 0; }
  a { color: inherit; text-decoration: none; }
  h2 { break-after: avoid; }
  tr { break-inside: avoid; }
}
";

/// The whole page.
#[must_use]
pub fn to_html(report: &Report) -> String {
    let mut out = String::new();
    let title = format!(
        "Access report {} – {}",
        when(report.period.from),
        when(report.period.to)
    );
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><main>",
        escape(&title)
    );
    let _ = write!(
        out,
        "<h1>Access report</h1><div class=\"muted\">Period {} to {} (end excluded) · generated {} by Sesame</div>",
        when(report.period.from),
        when(report.period.to),
        when(report.generated_at)
    );
    if let Some(check) = &report.trail {
        let (class, verdict) = if check.intact {
            ("trail-ok", "Audit trail verified")
        } else {
            ("trail-broken", "AUDIT TRAIL NOT INTACT")
        };
        let _ = write!(
            out,
            "<div class=\"{class}\"><strong>{verdict}</strong>: {}</div>",
            escape(&check.summary)
        );
    }
    totals(&mut out, report);
    out.push_str("<h2>Overview</h2><div class=\"charts\">");
    figure(&mut out, "Grants over time", &charts::timeline(report));
    figure(
        &mut out,
        "Bytes by principal",
        &charts::volumes(
            "Bytes by principal",
            &report.by_principal,
            (palette::PRINCIPAL_READ, palette::PRINCIPAL_WRITE),
        ),
    );
    figure(
        &mut out,
        "Bytes by prefix",
        &charts::volumes(
            "Bytes by prefix",
            &report.by_prefix,
            (palette::PREFIX_READ, palette::PREFIX_WRITE),
        ),
    );
    figure(&mut out, "Approval latency", &charts::latency(report));
    out.push_str("</div>");
    flags(&mut out, report);
    grants_table(&mut out, report);
    ungranted(&mut out, report);
    out.push_str("<h2>What each grant was used for</h2>");
    for g in &report.grants {
        detail(&mut out, g);
    }
    out.push_str("</main></body></html>\n");
    out
}

fn totals(out: &mut String, report: &Report) {
    let t = &report.totals;
    out.push_str("<div class=\"totals\">");
    for (label, value) in [
        ("grants", t.grants.to_string()),
        ("principals", t.principals.to_string()),
        (
            "requests filed",
            format!(
                "{} <small class=\"muted\">{} automatic, {} denied</small>",
                t.requests, t.requests_auto_approved, t.requests_denied
            ),
        ),
        (
            "S3 requests denied",
            format!(
                "{} <small class=\"muted\">of {}{}</small>",
                t.s3_denied,
                t.s3_allowed + t.s3_denied,
                reasons(&t.denied_by_reason)
            ),
        ),
        (
            "bytes read",
            format!(
                "{} <small class=\"muted\">{} written</small>",
                bytes(t.bytes_read),
                bytes(t.bytes_written)
            ),
        ),
    ] {
        let _ = write!(
            out,
            "<div class=\"tile\"><span class=\"muted\">{label}</span><b>{value}</b></div>"
        );
    }
    out.push_str("</div>");
    if !t.by_replica.is_empty() {
        let _ = write!(
            out,
            "<p class=\"muted\">Served by replica: {}</p>",
            served(&t.by_replica)
        );
    }
}

/// Each replica with what it served: `r-1a2b3c4d 3 allowed, 1 denied, 20 B read, 0 B
/// written · local ...`.
fn served(by_replica: &std::collections::BTreeMap<String, Served>) -> String {
    let each: Vec<String> = by_replica
        .iter()
        .map(|(replica, s)| {
            format!(
                "<code>{}</code> {} allowed, {} denied, {} read, {} written",
                escape(replica),
                s.allowed,
                s.denied,
                bytes(s.bytes_read),
                bytes(s.bytes_written)
            )
        })
        .collect();
    each.join(" · ")
}

fn figure(out: &mut String, caption: &str, svg: &str) {
    let _ = write!(
        out,
        "<figure><figcaption>{}</figcaption>{svg}</figure>",
        escape(caption)
    );
}

fn flags(out: &mut String, report: &Report) {
    let _ = write!(out, "<h2>Flags ({})</h2>", report.flags.len());
    if report.flags.is_empty() {
        out.push_str("<p class=\"muted\">Nothing stood out.</p>");
        return;
    }
    out.push_str("<ul class=\"flags\">");
    for f in &report.flags {
        let related = if f.related.is_empty() {
            String::new()
        } else {
            let links: Vec<String> = f.related.iter().map(|id| grant_link(id)).collect();
            format!(" <span class=\"muted\">Also: {}</span>", links.join(", "))
        };
        let _ = write!(
            out,
            "<li><span class=\"badge\">{}</span> {} {}{related}</li>",
            f.kind.label(),
            grant_link(&f.grant),
            escape(&f.message)
        );
    }
    out.push_str("</ul>");
}

/// Denials by reason, as ` (outside_scope 2, expired 1)`; nothing when none gave one.
fn reasons(by_reason: &std::collections::BTreeMap<&str, u64>) -> String {
    if by_reason.is_empty() {
        return String::new();
    }
    let each: Vec<String> = by_reason
        .iter()
        .map(|(reason, n)| format!("{} {n}", escape(reason)))
        .collect();
    format!(" ({})", each.join(", "))
}

fn grant_link(id: &str) -> String {
    format!("<a href=\"#grant-{0}\"><code>{0}</code></a>", escape(id))
}

fn grants_table(out: &mut String, report: &Report) {
    let _ = write!(out, "<h2>Grants ({})</h2>", report.grants.len());
    out.push_str(
        "<table><thead><tr><th>grant</th><th>principal</th><th>scope</th><th>window</th><th>approved by</th><th>justification</th><th>requests</th><th>read</th><th>written</th></tr></thead><tbody>",
    );
    for g in &report.grants {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code><br>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{} ok<br>{} denied</td><td class=\"num\">{} obj<br>{}</td><td class=\"num\">{} obj<br>{}</td></tr>",
            grant_link(&g.id),
            escape(&g.principal),
            escape(&g.scope),
            escape(&g.actions_label()),
            window(g),
            approvers(&g.requests),
            escape(g.justification().unwrap_or("—")),
            g.usage.allowed,
            g.usage.denied,
            g.usage.objects_read,
            bytes(g.usage.bytes_read),
            g.usage.objects_written,
            bytes(g.usage.bytes_written),
        );
    }
    out.push_str("</tbody></table>");
}

fn window(g: &GrantReport) -> String {
    let end = match (&g.revoked_at, &g.revoked_by) {
        (Some(at), by) if *at < g.expires_at => format!(
            "revoked {} by {}",
            when(*at),
            escape(by.as_deref().unwrap_or("?"))
        ),
        _ => format!("until {}", when(g.expires_at)),
    };
    format!(
        "{}<br>{end}<br><span class=\"muted\">{}</span>",
        when(g.starts_at),
        g.state.as_str()
    )
}

fn approvers(requests: &[Approval]) -> String {
    if requests.is_empty() {
        return "<span class=\"muted\">created by an operator</span>".into();
    }
    let mut lines = Vec::new();
    for r in requests {
        let wait = r
            .latency_seconds
            .filter(|s| *s > 0)
            .map(|s| minutes(time::Duration::seconds(s)));
        if r.automatic {
            let after = wait
                .as_deref()
                .map(|w| format!(" after {w}"))
                .unwrap_or_default();
            lines.push(format!("policy (automatic){after}"));
        }
        for a in &r.approvers {
            lines.push(format!(
                "{} {}{}",
                escape(&a.by),
                when(a.at),
                if a.mfa { " · MFA" } else { " · no MFA" }
            ));
        }
        if let (false, Some(wait)) = (r.automatic, wait) {
            lines.push(format!("<span class=\"muted\">waited {wait}</span>"));
        }
    }
    lines.join("<br>")
}

fn ungranted(out: &mut String, report: &Report) {
    if report.ungranted_requests.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<h2>Requests not granted ({})</h2><table><thead><tr><th>request</th><th>requester</th><th>scope</th><th>filed</th><th>state</th><th>justification</th><th>denial</th></tr></thead><tbody>",
        report.ungranted_requests.len()
    );
    for r in &report.ungranted_requests {
        let actions: Vec<&str> = r.actions.iter().map(|a| a.as_str()).collect();
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code><br>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.request_id),
            escape(&r.requester),
            escape(&r.scope),
            actions.join(","),
            when(r.requested_at),
            r.state,
            escape(r.justification.as_deref().unwrap_or("—")),
            escape(r.denial.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
}

fn detail(out: &mut String, g: &GrantReport) {
    let u = &g.usage;
    let _ = write!(
        out,
        "<section class=\"grant\" id=\"grant-{0}\"><h3><code>{0}</code> · {1} · <code>{2}</code> {3}</h3><dl>",
        escape(&g.id),
        escape(&g.principal),
        escape(&g.scope),
        escape(&g.actions_label())
    );
    let mut facts: Vec<(&str, String)> = vec![("window", window(g).replace("<br>", " · "))];
    for r in &g.requests {
        let kind = if r.extension { "extension" } else { "request" };
        facts.push((
            kind,
            format!(
                "<code>{}</code> filed {} under rule <code>{}</code>: {}",
                escape(&r.request_id),
                when(r.requested_at),
                escape(&r.rule),
                escape(
                    r.justification
                        .as_deref()
                        .unwrap_or("no justification given")
                )
            ),
        ));
        facts.push(("approval", approvers(std::slice::from_ref(r))));
    }
    let uses = match (u.first_use, u.last_use) {
        (Some(first), Some(last)) => format!("{} to {}", when(first), when(last)),
        _ => "not used in the period".into(),
    };
    facts.push(("used", uses));
    facts.push((
        "requests",
        format!(
            "{} allowed, {} denied{}",
            u.allowed,
            u.denied,
            reasons(&u.denied_by_reason)
        ),
    ));
    if !u.by_replica.is_empty() {
        facts.push(("served by", served(&u.by_replica)));
    }
    let actions: Vec<&str> = u.actions_used.iter().map(|a| a.as_str()).collect();
    facts.push(("actions used", actions.join(", ")));
    facts.push((
        "read",
        format!("{} objects, {}", u.objects_read, bytes(u.bytes_read)),
    ));
    facts.push((
        "written",
        format!(
            "{} objects, {}; {} deleted",
            u.objects_written,
            bytes(u.bytes_written),
            u.objects_deleted
        ),
    ));
    for (name, value) in facts {
        let _ = write!(out, "<dt>{name}</dt><dd>{value}</dd>");
    }
    out.push_str("</dl>");
    keys(out, "Keys read", &u.keys_read);
    keys(out, "Keys written or deleted", &u.keys_written);
    out.push_str("</section>");
}

fn keys(out: &mut String, title: &str, keys: &Keys) {
    if keys.distinct() == 0 {
        return;
    }
    let _ = write!(
        out,
        "<table class=\"keys\"><thead><tr><th>{title} ({})</th><th>requests</th><th>bytes</th></tr></thead><tbody>",
        keys.distinct()
    );
    for k in &keys.listed {
        let _ = write!(
            out,
            "<tr><td class=\"key\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&k.key),
            k.times,
            bytes(k.bytes)
        );
    }
    if keys.more > 0 {
        let _ = write!(
            out,
            "<tr><td class=\"muted\" colspan=\"3\">and {} more keys (see the audit trail: <code>sesame audit --grant</code>)</td></tr>",
            keys.more
        );
    }
    out.push_str("</tbody></table>");
}
