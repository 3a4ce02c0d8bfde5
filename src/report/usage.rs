//! What the audit trail says was done: each decision record (an S3 decision, or a share-link
//! use) joined with the completion record that points at it (`decision` = the decision's
//! `seq`, in the same replica's chain) for its answer and byte counts, per grant and per
//! replica, counted by the operation table's data-effect
//! column as the grant's meter counts them ([`Effect`] says when). Only the decision's time
//! decides whether a request falls in the period: a download that started on the last
//! evening of March counts for March even if it finished in April.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use time::OffsetDateTime;

use super::{KEYS_LISTED, KeyUse, Keys, Period, Served, Totals, Usage, Volume};
use crate::audit::replicas::Entry;
use crate::grant::usage::{Effect, Object};
use crate::model::Action;
use crate::record::{Completion, Decision, Denial, Kind, S3, Verdict};
use crate::s3::{effect_of, rule_for};

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

/// What a decision says about the request it decided.
struct Decided<'a> {
    at: OffsetDateTime,
    op: &'a str,
    principal: Option<&'a str>,
    grant: Option<&'a str>,
    bucket: Option<&'a str>,
    key: Option<&'a str>,
}

/// Reads the trail for `period`.
pub(super) fn collect(period: Period, records: &[Entry]) -> Trail {
    // A completion points at its decision by seq, within its own replica's chain.
    let mut completions: HashMap<(&str, u64), &Completion> = HashMap::new();
    for Entry { replica, record } in records {
        if let Kind::Completion(c) = &record.body.kind
            && let Some(decision) = c.decision
        {
            // One per decision: its answer ends once.
            completions.entry((replica, decision)).or_insert(c);
        }
    }
    let mut trail = Trail::default();
    for Entry { replica, record } in records {
        let (decided, verdict) = match &record.body.kind {
            Kind::S3(S3::Allowed(d)) => (Decided::of(d), Verdict::Allowed),
            Kind::S3(S3::Denied(d)) => (Decided::of(d), Verdict::Denied),
            Kind::Share(u) => (
                Decided {
                    at: u.at,
                    op: &u.op,
                    principal: u.principal.as_deref(),
                    grant: u.grant.as_deref(),
                    bucket: u.bucket.as_deref(),
                    key: u.key.as_deref(),
                },
                u.decision,
            ),
            Kind::S3(S3::Refused(r)) => {
                if period.contains(r.at) {
                    trail.totals.s3_refused += 1;
                }
                continue;
            }
            // Completions are joined above; a refusal after parsing overrides a decision
            // already counted; the rest are not requests.
            Kind::Completion(_)
            | Kind::DeniedAfterParse(_)
            | Kind::Lifecycle(_)
            | Kind::Checkpoint(_) => continue,
        };
        if !period.contains(decided.at) {
            continue;
        }
        match verdict {
            Verdict::Allowed => {
                trail.totals.s3_allowed += 1;
                let completion = completions.get(&(replica.as_str(), record.seq)).copied();
                trail.allowed(&decided, replica, completion);
            }
            Verdict::Denied => {
                let reason = record.body.kind.denial().map(Denial::name);
                trail.totals.s3_denied += 1;
                count(&mut trail.totals.denied_by_reason, reason);
                served(&mut trail.totals.by_replica, replica).denied += 1;
                if let Some(grant) = decided.grant {
                    let usage = &mut trail.tallies.entry(grant.to_owned()).or_default().usage;
                    usage.denied += 1;
                    count(&mut usage.denied_by_reason, reason);
                    served(&mut usage.by_replica, replica).denied += 1;
                }
            }
        }
    }
    trail
}

impl<'a> Decided<'a> {
    fn of(d: &'a Decision) -> Decided<'a> {
        Decided {
            at: d.at,
            op: &d.op,
            principal: d.principal.as_deref(),
            grant: d.grant.as_deref(),
            bucket: d.bucket.as_deref(),
            key: d.key.as_deref(),
        }
    }
}

impl Trail {
    fn allowed(&mut self, d: &Decided<'_>, replica: &str, completion: Option<&Completion>) {
        let effect = effect_of(d.op);
        let key = d.key.filter(|k| !k.is_empty());
        let (read, written) = effect.moved(completion);
        self.totals.bytes_read += read;
        self.totals.bytes_written += written;
        served(&mut self.totals.by_replica, replica).allowed_moving(read, written);
        add(
            &mut self.by_principal,
            d.principal.unwrap_or("(unknown)"),
            read,
            written,
        );
        if let (Some(bucket), Some(key)) = (d.bucket, key) {
            add(&mut self.by_prefix, &prefix_of(bucket, key), read, written);
        }
        let Some(grant) = d.grant else {
            return;
        };
        let tally = self.tallies.entry(grant.to_owned()).or_default();
        let u = &mut tally.usage;
        u.allowed += 1;
        u.first_use = Some(u.first_use.map_or(d.at, |t| t.min(d.at)));
        u.last_use = Some(u.last_use.map_or(d.at, |t| t.max(d.at)));
        u.bytes_read += read;
        u.bytes_written += written;
        served(&mut u.by_replica, replica).allowed_moving(read, written);
        match effect.object() {
            Some(Object::Read) => u.objects_read += 1,
            Some(Object::Written) => u.objects_written += 1,
            Some(Object::Deleted) => u.objects_deleted += 1,
            None => {}
        }
        if let Some(rule) = rule_for(d.op) {
            tally.actions.insert(rule.action);
        }
        let into = match effect {
            Effect::Download | Effect::Inspect => &mut tally.read,
            Effect::Store | Effect::Part | Effect::Delete => &mut tally.written,
            Effect::None => return,
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

/// What `replica` served, so far.
fn served<'a>(by_replica: &'a mut BTreeMap<String, Served>, replica: &str) -> &'a mut Served {
    by_replica.entry(replica.to_owned()).or_default()
}

impl Served {
    /// One more request allowed, which moved these bytes.
    fn allowed_moving(&mut self, read: u64, written: u64) {
        self.allowed += 1;
        self.bytes_read += read;
        self.bytes_written += written;
    }
}

/// One more denial for `reason`, when the record gave one.
fn count(by_reason: &mut BTreeMap<&'static str, u64>, reason: Option<&'static str>) {
    if let Some(reason) = reason {
        *by_reason.entry(reason).or_default() += 1;
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
