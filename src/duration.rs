//! Durations and times as people write and read them: `30m`, `2h`, `1h30m`, `1d`, and
//! timestamps to the second.

/// Parses `90s`, `30m`, `2h`, `1h30m`, `1d`.
pub fn parse(s: &str) -> Result<time::Duration, String> {
    let mut total = time::Duration::ZERO;
    let mut number = String::new();
    let bad = || format!("duration {s:?} is not like 30m, 2h, 1h30m or 1d");
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total += match c {
            's' => time::Duration::seconds(n),
            'm' => time::Duration::minutes(n),
            'h' => time::Duration::hours(n),
            'd' => time::Duration::days(n),
            _ => return Err(bad()),
        };
    }
    if !number.is_empty() || total <= time::Duration::ZERO {
        return Err(bad());
    }
    Ok(total)
}

/// `2h`, `1h30m`, `45m`, `90s`: the shortest form [`parse`] reads back.
#[must_use]
pub fn human(d: time::Duration) -> String {
    let (days, h, m, s) = (
        d.whole_days(),
        d.whole_hours() % 24,
        d.whole_minutes() % 60,
        d.whole_seconds() % 60,
    );
    let mut out = String::new();
    for (n, unit) in [(days, 'd'), (h, 'h'), (m, 'm'), (s, 's')] {
        if n > 0 {
            out.push_str(&n.to_string());
            out.push(unit);
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// RFC 3339 to the second, as people read it in messages and tables.
#[must_use]
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A time as people type it: an RFC 3339 time (`2026-03-01T09:00:00Z`), or a date
/// (`2026-03-01`), meaning midnight UTC.
#[must_use]
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &date)
        .ok()
        .map(|d| d.midnight().assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse("30m"), Ok(time::Duration::minutes(30)));
        assert_eq!(parse("1h30m"), Ok(time::Duration::minutes(90)));
        assert_eq!(parse("1d"), Ok(time::Duration::days(1)));
        assert_eq!(parse("45s"), Ok(time::Duration::seconds(45)));
        for bad in ["", "30", "m", "1x", "0m", "-5m"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn human_forms_read_back() {
        for text in ["2h", "1h30m", "45s", "1d", "1d2h3m4s"] {
            assert_eq!(human(parse(text).unwrap()), text);
        }
    }
}
