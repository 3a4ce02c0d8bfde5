//! What the audit trail says was done: each decision record (kind `s3`, or `share` for
//! share-link downloads) joined with the completion record that points at it (kind
//! `s3.complete`, `decision` = the decision's `seq`) for status and byte counts. Only the
//! decision's time decides whether a request falls in the period: a download that started on
//! the last evening of March counts for March even if it finished in April.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use time::OffsetDateTime;

use super::{KEYS_LISTED, KeyUse, Keys, Period, Totals, Usage, Volume};
use crate::model::Action;

/// What one completion record adds to its decision.
#[derive(Debug, Clone, Copy, Default)]
struct Completion {
    status: Option<u64>,
    bytes_out: u64,
    bytes_in: u64,
}

impl Completion {
    /// A request whose completion is missing (a crash between decision and response) counts
    /// as done: an audit report should over-report access rather than hide it.
    fn succeeded(completion: Option<&Completion>) -> bool {
        completion.and_then(|c| c.status).is_none_or(|s| s < 400)
    }
}

/// Usage of one grant as it accumulates, with every key (the report lists only some).
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub usage: Usage,
    pub actions: BTreeSet<Action>,
    pub read: BTreeMap<String, KeyUse>,
    pub written: BTreeMap<String, KeyUse>,
}

impl Tally {
    /// Every key used, in any direction.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.read
            .keys()
            .chain(self.written.keys())
            .map(String::as_str)
    }

    /// The finished usage, with key lists capped at [`KEYS_LISTED`].
    pub fn into_usage(self) -> Usage {
        let used_under = common_folder(self.keys());
        let mut usage = self.usage;
        usage.used_under = used_under;
        usage.actions_used = self.actions.into_iter().collect();
        usage.keys_read = capped(self.read);
        usage.keys_written = capped(self.written);
        usage
    }
}

fn capped(keys: BTreeMap<String, KeyUse>) -> Keys {
    let more = keys.len().saturating_sub(KEYS_LISTED);
    Keys {
        listed: keys.into_values().take(KEYS_LISTED).collect(),
        more,
    }
}

/// Everything read from the trail for one period.
#[derive(Debug, Default)]
pub(super) struct Trail {
    pub tallies: HashMap<String, Tally>,
    pub totals: Totals,
    by_principal: BTreeMap<String, (u64, u64)>,
    by_prefix: BTreeMap<String, (u64, u64)>,
}

impl Trail {
    pub fn by_principal(&self) -> Vec<Volume> {
        volumes(&self.by_principal)
    }

    pub fn by_prefix(&self) -> Vec<Volume> {
        volumes(&self.by_prefix)
    }
}

fn volumes(map: &BTreeMap<String, (u64, u64)>) -> Vec<Volume> {
    let mut out: Vec<Volume> = map
        .iter()
        .filter(|(_, (r, w))| r + w > 0)
        .map(|(name, &(bytes_read, bytes_written))| Volume {
            name: name.clone(),
            bytes_read,
            bytes_written,
        })
        .collect();
    out.sort_by(|a, b| {
        (b.bytes_read + b.bytes_written)
            .cmp(&(a.bytes_read + a.bytes_written))
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

/// One record's sequence number and body. Accepts both the trail's own shape
/// (`{seq, prev, body: {at, kind, ...}, hash}`, as `audit::verify::records` reads it) and a
/// flat body carrying `seq` itself.
fn parts(record: &Value) -> Option<(u64, &Value)> {
    let seq = record.get("seq")?.as_u64()?;
    let body = match record.get("body") {
        Some(body) if body.is_object() => body,
        _ => record,
    };
    Some((seq, body))
}

fn text<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

fn number(body: &Value, name: &str) -> u64 {
    body.get(name).and_then(Value::as_u64).unwrap_or(0)
}

fn time_of(body: &Value) -> Option<OffsetDateTime> {
    let at = text(body, "at")?;
    OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
}

/// Reads the trail for `period`.
pub(super) fn collect(period: Period, records: &[Value]) -> Trail {
    let mut completions: HashMap<u64, Completion> = HashMap::new();
    for (_, body) in records.iter().filter_map(parts) {
        if text(body, "kind") != Some("s3.complete") {
            continue;
        }
        let Some(decision) = body.get("decision").and_then(Value::as_u64) else {
            continue;
        };
        // Never more than one per decision; if there were, their bytes would all have moved.
        let c = completions.entry(decision).or_default();
        c.status = body.get("status").and_then(Value::as_u64).or(c.status);
        c.bytes_out += number(body, "bytes_out");
        // Written by newer gateways only; older completions carry no upload count.
        c.bytes_in += number(body, "bytes_in");
    }
    let mut trail = Trail::default();
    for (seq, body) in records.iter().filter_map(parts) {
        if !matches!(text(body, "kind"), Some("s3" | "share")) {
            continue;
        }
        let Some(at) = time_of(body).filter(|at| period.contains(*at)) else {
            continue;
        };
        match text(body, "decision") {
            Some("allowed") => {
                trail.totals.s3_allowed += 1;
                trail.allowed(at, body, completions.get(&seq));
            }
            Some("denied") => {
                trail.totals.s3_denied += 1;
                if let Some(grant) = text(body, "grant") {
                    trail
                        .tallies
                        .entry(grant.to_owned())
                        .or_default()
                        .usage
                        .denied += 1;
                }
            }
            // `refused` (before any grant was looked at) and anything newer.
            _ => trail.totals.s3_refused += 1,
        }
    }
    trail
}

/// How an operation moves data, for counting.
enum Effect {
    /// Object content downloaded.
    Download,
    /// Object metadata read (HEAD, attributes, tags): the key was looked at, no content.
    Inspect,
    /// An object created or replaced.
    Store,
    /// Part of an upload: bytes in, no object yet.
    Part,
    Delete,
    /// Listings, bucket-level reads, tagging changes: allowed, no object data.
    Other,
}

fn effect(op: &str) -> Effect {
    match op {
        "GetObject" => Effect::Download,
        "HeadObject" | "GetObjectAttributes" | "GetObjectTagging" => Effect::Inspect,
        "PutObject" | "CopyObject" | "CompleteMultipartUpload" => Effect::Store,
        "UploadPart" | "UploadPartCopy" => Effect::Part,
        "DeleteObject" => Effect::Delete,
        _ => Effect::Other,
    }
}

impl Trail {
    fn allowed(&mut self, at: OffsetDateTime, body: &Value, completion: Option<&Completion>) {
        let op = text(body, "op").unwrap_or_default();
        let key = text(body, "key").filter(|k| !k.is_empty());
        let done = Completion::succeeded(completion);
        let c = completion.copied().unwrap_or_default();
        let (read, written) = match effect(op) {
            Effect::Download if done => (c.bytes_out, 0),
            Effect::Store | Effect::Part => (0, c.bytes_in),
            Effect::Download | Effect::Inspect | Effect::Delete | Effect::Other => (0, 0),
        };
        self.totals.bytes_read += read;
        self.totals.bytes_written += written;
        let principal = text(body, "principal").unwrap_or("(unknown)");
        add(&mut self.by_principal, principal, read, written);
        if let (Some(bucket), Some(key)) = (text(body, "bucket"), key) {
            add(&mut self.by_prefix, &prefix_of(bucket, key), read, written);
        }
        let Some(grant) = text(body, "grant") else {
            return;
        };
        let tally = self.tallies.entry(grant.to_owned()).or_default();
        let u = &mut tally.usage;
        u.allowed += 1;
        u.first_use = Some(u.first_use.map_or(at, |t| t.min(at)));
        u.last_use = Some(u.last_use.map_or(at, |t| t.max(at)));
        u.bytes_read += read;
        u.bytes_written += written;
        if let Some(rule) = crate::s3::ops::rule_for(op) {
            tally.actions.insert(rule.action);
        }
        let into = match effect(op) {
            Effect::Download => {
                u.objects_read += u64::from(done);
                &mut tally.read
            }
            Effect::Inspect => &mut tally.read,
            Effect::Store => {
                u.objects_written += u64::from(done);
                &mut tally.written
            }
            Effect::Part => &mut tally.written,
            Effect::Delete => {
                u.objects_deleted += u64::from(done);
                &mut tally.written
            }
            Effect::Other => return,
        };
        if let Some(key) = key {
            let entry = into.entry(key.to_owned()).or_insert_with(|| KeyUse {
                key: key.to_owned(),
                times: 0,
                bytes: 0,
            });
            entry.times += 1;
            entry.bytes += read + written;
        }
    }
}

fn add(map: &mut BTreeMap<String, (u64, u64)>, name: &str, read: u64, written: u64) {
    let entry = map.entry(name.to_owned()).or_default();
    entry.0 += read;
    entry.1 += written;
}

/// `bucket/first-segment/`, the level at which data sets are usually told apart
/// (`hr-data/payroll/`); keys with no `/` group under the bucket.
#[must_use]
pub(super) fn prefix_of(bucket: &str, key: &str) -> String {
    match key.split_once('/') {
        Some((first, _)) => format!("{bucket}/{first}/"),
        None => format!("{bucket}/"),
    }
}

/// The deepest folder (ending in `/`, or empty for the bucket root) that holds every key.
#[must_use]
pub(super) fn common_folder<'a>(mut keys: impl Iterator<Item = &'a str>) -> Option<String> {
    let first = keys.next()?;
    let mut common = first.rsplit_once('/').map_or("", |(dir, _)| dir).to_owned();
    common.push('/');
    for key in keys {
        while !common.is_empty() && !key.starts_with(common.as_str()) {
            // Drop the last segment: `a/b/` becomes `a/`, `a/` becomes empty.
            common.pop();
            match common.rfind('/') {
                Some(i) => common.truncate(i + 1),
                None => common.clear(),
            }
        }
    }
    if common == "/" {
        common.clear();
    }
    Some(common)
}
