//! The report's charts as inline SVG written here, so the HTML needs no script, font or
//! network to draw them and prints as it shows. Each chart has its own fill colours
//! ([`palette`]), which also lets a screenshot test find each chart by colour.

use std::fmt::Write as _;

use time::{Duration, OffsetDateTime};

use super::html::escape;
use super::{GrantReport, Report, Volume, bytes, when};

/// Fill colours, one set per chart.
pub mod palette {
    /// Grants over time: the granted window.
    pub const WINDOW: &str = "#4c78a8";
    /// Grants over time: from first to last use.
    pub const USED: &str = "#17324f";
    pub const PRINCIPAL_READ: &str = "#e8833a";
    pub const PRINCIPAL_WRITE: &str = "#f6c59b";
    pub const PREFIX_READ: &str = "#3a9d5d";
    pub const PREFIX_WRITE: &str = "#a9d9b5";
    pub const LATENCY: &str = "#8e6bbf";
    pub const AUTOMATIC: &str = "#cdb9e8";
}

const WIDTH: i64 = 560;
/// Rows shown in the timeline and bar charts; the rest are summed or counted.
const ROWS: usize = 40;
const BARS: usize = 10;
const AXIS: &str = "#6b7280";

fn svg_open(out: &mut String, height: i64, label: &str) {
    let _ = write!(
        out,
        r#"<svg viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{}" font-family="system-ui, sans-serif" font-size="11">"#,
        escape(label)
    );
}

fn empty(label: &str) -> String {
    let mut out = String::new();
    svg_open(&mut out, 40, label);
    let _ = write!(
        out,
        r#"<text x="4" y="24" fill="{AXIS}">nothing in the period</text></svg>"#
    );
    out
}

/// One row per principal over the period, each of their grants a bar for the window it was
/// open and, darker inside it, the stretch from first to last use. Short grants in a long
/// period get a minimum width so they stay visible; a row of repeated bars shows a routine.
pub(super) fn timeline(report: &Report) -> String {
    let label = "Grants over time";
    if report.grants.is_empty() {
        return empty(label);
    }
    let (from, to) = (report.period.from, report.period.to);
    let left = 150_i64;
    let plot = WIDTH - left - 10;
    let span = (to - from).as_seconds_f64().max(1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let x = |t: OffsetDateTime| -> i64 {
        let t = t.clamp(from, to);
        left + ((t - from).as_seconds_f64() / span * plot as f64).round() as i64
    };
    // Principals in the order of their first grant (grants come sorted by start).
    let mut principals: Vec<&str> = Vec::new();
    for g in &report.grants {
        if !principals.contains(&g.principal.as_str()) {
            principals.push(&g.principal);
        }
    }
    let shown = principals.len().min(ROWS);
    let more = principals.len() - shown;
    let row_h = 20_i64;
    let top = 22_i64;
    let rows = i64::try_from(shown).unwrap_or(0);
    let height = top + rows * row_h + if more > 0 { 20 } else { 6 };
    let mut out = String::new();
    svg_open(&mut out, height, label);
    for (t, text) in ticks(from, to) {
        let _ = write!(
            out,
            r##"<line x1="{0}" x2="{0}" y1="{1}" y2="{2}" stroke="#e5e7eb"/><text x="{0}" y="12" text-anchor="middle" fill="{AXIS}">{3}</text>"##,
            x(t),
            top - 4,
            top + rows * row_h,
            text
        );
    }
    for (i, principal) in principals.iter().take(shown).enumerate() {
        let y = top + i64::try_from(i).unwrap_or(0) * row_h;
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 6,
            y + 13,
            escape(&clip(principal, 22)),
        );
        for g in report.grants.iter().filter(|g| g.principal == *principal) {
            bar(&mut out, g, y, &x);
        }
    }
    if more > 0 {
        let _ = write!(
            out,
            r#"<text x="{left}" y="{}" fill="{AXIS}">and {more} more principals (see the table)</text>"#,
            height - 6
        );
    }
    out.push_str("</svg>");
    out
}

/// One grant's bar in its principal's row at `y`.
fn bar(out: &mut String, g: &GrantReport, y: i64, x: &impl Fn(OffsetDateTime) -> i64) {
    let end = g.ended_at.unwrap_or(g.expires_at).min(g.expires_at);
    let (x0, x1) = (x(g.starts_at), x(end));
    let _ = write!(
        out,
        r#"<rect x="{x0}" y="{}" width="{}" height="16" rx="2" fill="{}"><title>{}</title></rect>"#,
        y + 1,
        (x1 - x0).max(6),
        palette::WINDOW,
        escape(&format!(
            "{} {} {} {}",
            g.id,
            g.scope,
            when(g.starts_at),
            when(end)
        ))
    );
    if end < g.expires_at {
        // Revoked early: the part of the window that never opened, in outline.
        let cut = x(g.expires_at);
        let _ = write!(
            out,
            r#"<rect x="{x1}" y="{}" width="{}" height="15" fill="none" stroke="{}" stroke-dasharray="3 2"/>"#,
            y + 1,
            (cut - x1).max(0),
            palette::WINDOW
        );
    }
    if let (Some(first), Some(last)) = (g.usage.first_use, g.usage.last_use) {
        let (u0, u1) = (x(first), x(last));
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="{}" height="6" fill="{}"/>"#,
            u0,
            y + 6,
            (u1 - u0).max(3),
            palette::USED
        );
    }
}

/// Axis ticks: the coarsest of a few round steps that gives at most eight of them.
fn ticks(from: OffsetDateTime, to: OffsetDateTime) -> Vec<(OffsetDateTime, String)> {
    let steps = [1, 3, 6, 12, 24, 48, 168, 336, 720].map(Duration::hours);
    let span = to - from;
    let step = steps
        .into_iter()
        .find(|s| span / *s <= 8.0)
        .unwrap_or(Duration::days(60));
    let day = from
        .to_offset(time::UtcOffset::UTC)
        .replace_time(time::Time::MIDNIGHT);
    let mut t = day;
    let mut out = Vec::new();
    while t <= to {
        if t >= from {
            let label = if step >= Duration::DAY {
                format!("{} {}", month(t), t.day())
            } else {
                format!("{:02}:00", t.hour())
            };
            out.push((t, label));
        }
        t += step;
    }
    out
}

fn month(t: OffsetDateTime) -> &'static str {
    const NAMES: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    NAMES[usize::from(u8::from(t.month())) - 1]
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}

/// Horizontal bars of bytes read and written per name, the largest first; names past
/// [`BARS`] are summed into one "others" bar.
pub(super) fn volumes(label: &str, volumes: &[Volume], colours: (&str, &str)) -> String {
    if volumes.is_empty() {
        return empty(label);
    }
    let mut shown: Vec<Volume> = volumes.iter().take(BARS).cloned().collect();
    if volumes.len() > BARS {
        let rest = &volumes[BARS..];
        shown.push(Volume {
            name: format!("{} others", rest.len()),
            bytes_read: rest.iter().map(|v| v.bytes_read).sum(),
            bytes_written: rest.iter().map(|v| v.bytes_written).sum(),
        });
    }
    let max = shown
        .iter()
        .map(|v| v.bytes_read + v.bytes_written)
        .max()
        .unwrap_or(1)
        .max(1);
    let (left, right) = (170_i64, 80_i64);
    let plot = WIDTH - left - right;
    let row_h = 20_i64;
    let height = 26 + i64::try_from(shown.len()).unwrap_or(0) * row_h;
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let w = |b: u64| -> i64 { (b as f64 / max as f64 * plot as f64).round() as i64 };
    let mut out = String::new();
    svg_open(&mut out, height, label);
    let _ = write!(
        out,
        r#"<rect x="{left}" y="2" width="10" height="10" fill="{0}"/><text x="{1}" y="11">read</text><rect x="{2}" y="2" width="10" height="10" fill="{3}"/><text x="{4}" y="11">written</text>"#,
        colours.0,
        left + 14,
        left + 60,
        colours.1,
        left + 74
    );
    for (i, v) in shown.iter().enumerate() {
        let y = 22 + i64::try_from(i).unwrap_or(0) * row_h;
        let (r, wr) = (w(v.bytes_read), w(v.bytes_written));
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{left}" y="{y}" width="{r}" height="14" fill="{}"/><rect x="{}" y="{y}" width="{wr}" height="14" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            left - 6,
            y + 11,
            escape(&clip(&v.name, 26)),
            colours.0,
            left + r,
            colours.1,
            left + r + wr + 4,
            y + 11,
            bytes(v.bytes_read + v.bytes_written)
        );
    }
    out.push_str("</svg>");
    out
}

/// How long requests waited for approval, as a histogram, with approvals by policy alone in
/// their own column: a wall of sub-minute human approvals reads as rubber-stamping.
pub(super) fn latency(report: &Report) -> String {
    const BUCKETS: [(&str, i64); 6] = [
        ("< 1 min", 60),
        ("1–5 min", 300),
        ("5–15 min", 900),
        ("15–60 min", 3600),
        ("1–4 h", 14_400),
        ("> 4 h", i64::MAX),
    ];
    let label = "Approval latency";
    let mut counts = [0_usize; 7];
    for a in report.grants.iter().flat_map(|g| &g.requests) {
        if a.automatic {
            counts[0] += 1;
        } else if let Some(s) = a.latency_seconds {
            let i = BUCKETS.iter().position(|(_, max)| s < *max).unwrap_or(5);
            counts[i + 1] += 1;
        }
    }
    if counts.iter().all(|c| *c == 0) {
        return empty(label);
    }
    let max = counts.iter().copied().max().unwrap_or(1).max(1);
    let (top, plot_h, base) = (14_i64, 130_i64, 150_i64);
    let col = (WIDTH - 20) / 7;
    let mut out = String::new();
    svg_open(&mut out, base + 22, label);
    let names = std::iter::once("automatic").chain(BUCKETS.iter().map(|(n, _)| *n));
    for (i, (name, count)) in names.zip(counts).enumerate() {
        let x = 10 + i64::try_from(i).unwrap_or(0) * col;
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let h = (count as f64 / max as f64 * plot_h as f64).round() as i64;
        let fill = if i == 0 {
            palette::AUTOMATIC
        } else {
            palette::LATENCY
        };
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="{}" height="{h}" fill="{fill}"/><text x="{}" y="{}" text-anchor="middle">{count}</text><text x="{}" y="{}" text-anchor="middle" fill="{AXIS}">{name}</text>"#,
            x + 8,
            base - h,
            col - 16,
            x + col / 2,
            (base - h - 3).max(top - 2),
            x + col / 2,
            base + 15
        );
    }
    let _ = write!(
        out,
        r#"<line x1="10" x2="{}" y1="{base}" y2="{base}" stroke="{AXIS}"/></svg>"#,
        WIDTH - 10
    );
    out
}
