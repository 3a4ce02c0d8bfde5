//! What was done under each grant: requests, objects and bytes read and written, first and
//! last use. Kept in memory so the data path never writes to the store, rebuilt from the
//! audit trail at start (the trail is the record of what happened), and checked against the
//! grant's limits on every decision and on every chunk that streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{Grant, Limits};
use crate::record::{Body, Completion, Kind, S3, StopKind, Verdict};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Requests allowed under the grant.
    pub requests: u64,
    /// Requests refused under it (outside its scope, after its end, over a limit).
    pub denied: u64,
    pub objects_read: u64,
    pub objects_written: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_use: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_use: Option<OffsetDateTime>,
    /// Set when a transfer was cut at the byte limit: the grant serves nothing more, even
    /// if the bytes delivered stopped just short of the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_at_limit: Option<String>,
}

impl Usage {
    /// Why nothing more may be done under a grant with `limits`, if a limit is reached.
    #[must_use]
    pub fn limit_reached(&self, grant_id: &str, limits: &Limits) -> Option<String> {
        if let Some(why) = &self.cut_at_limit {
            return Some(why.clone());
        }
        if let Some(max) = limits.bytes
            && self.bytes_read + self.bytes_written >= max
        {
            return Some(format!(
                "grant {grant_id} reached its limit of {max} bytes read and written"
            ));
        }
        if let Some(max) = limits.objects
            && self.objects_read + self.objects_written >= max
        {
            return Some(format!(
                "grant {grant_id} reached its limit of {max} objects read and written"
            ));
        }
        None
    }

    fn used(&mut self, at: OffsetDateTime) {
        self.requests += 1;
        self.first_use = Some(self.first_use.map_or(at, |f| f.min(at)));
        self.last_use = Some(self.last_use.map_or(at, |l| l.max(at)));
    }
}

/// Which way an operation moves object bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Read,
    Write,
}

/// What an allowed operation does to object data: the data-effect column of the operation
/// table (`s3::ops::TABLE`), and the one place the meter (limits), the meter rebuilt from the
/// trail, and the report (what was done) all count from.
///
/// When it counts: an object counts as read, written or deleted when its operation is
/// *admitted* (its decision record), whatever the answer turns out to be; bytes count as
/// they move, so from the answer (its completion record). Admission, because the meter has
/// to refuse the request past an object limit before anything is served: counting only what
/// completed would let concurrent requests through past the limit, and the decision record
/// is durable before anything is served while a completion is written afterwards and can be
/// lost in a crash, so a meter rebuilt from the trail after a crash counts exactly what the
/// live one did. The report counts the same way so that what it says was read under a grant
/// is what the grant's limit counted: an allowed download the backend answered 404 is an
/// object read (an attempt on that key, inside the grant), with no bytes: an audit report
/// over-reports access rather than hides it. Bytes are object content only: a download's
/// come from a successful answer (status below 400; an error's XML is not the object, and
/// the live meter never sees it), an upload's whatever the answer (they passed through the
/// gateway and count against the byte limit as they do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// No object data: listings, bucket lookups, tag changes, uploads started or aborted.
    None,
    /// An object's metadata is read (HEAD, attributes, tags): its key was looked at, no
    /// content moved.
    Inspect,
    /// An object's content is downloaded: one object read, its bytes streamed out.
    Download,
    /// An object is created or replaced: one object written; its bytes stream in when the
    /// body passes through the gateway (`PutObject`), none when the backend makes it
    /// (`CopyObject`, `CompleteMultipartUpload`).
    Store,
    /// Part of an upload: bytes in when it carries them (`UploadPart`; `UploadPartCopy`
    /// copies on the backend), no object yet.
    Part,
    /// An object is deleted.
    Delete,
}

/// The object an admitted operation counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Read,
    Written,
    Deleted,
}

impl Effect {
    /// The object it counts at admission.
    #[must_use]
    pub fn object(self) -> Option<Object> {
        match self {
            Effect::Download => Some(Object::Read),
            Effect::Store => Some(Object::Written),
            Effect::Delete => Some(Object::Deleted),
            Effect::None | Effect::Inspect | Effect::Part => None,
        }
    }

    /// Which way its object bytes stream, if it moves any.
    #[must_use]
    pub fn bytes(self) -> Option<Direction> {
        match self {
            Effect::Download => Some(Direction::Read),
            Effect::Store | Effect::Part => Some(Direction::Write),
            Effect::None | Effect::Inspect | Effect::Delete => None,
        }
    }

    /// The object bytes it moved, `(read, written)`, from how its answer ended; none without
    /// a completion record (a crash between decision and answer).
    #[must_use]
    pub fn moved(self, answer: Option<&Completion>) -> (u64, u64) {
        let Some(answer) = answer else { return (0, 0) };
        match self.bytes() {
            Some(Direction::Read) if answer.status < 400 => (answer.bytes_out, 0),
            Some(Direction::Write) => (0, answer.bytes_in),
            Some(Direction::Read) | None => (0, 0),
        }
    }
}

impl Usage {
    /// Counts an admitted operation with `effect` at `at`.
    fn admitted(&mut self, effect: Effect, at: OffsetDateTime) {
        self.used(at);
        match effect.object() {
            Some(Object::Read) => self.objects_read += 1,
            Some(Object::Written) => self.objects_written += 1,
            Some(Object::Deleted) | None => {}
        }
    }
}

/// Usage rebuilt from the trail's records, fed in order: decisions under a grant count
/// requests and objects; completions add the bytes their decision's operation moved.
pub struct Replay {
    usage: HashMap<String, Usage>,
    /// Decisions whose completion will carry object bytes, until it arrives.
    moving: HashMap<u64, (String, Effect)>,
    /// The operation table's data-effect column (`s3::ops::effect_of`), which sits above.
    effect_of: fn(&str) -> Effect,
}

impl Replay {
    #[must_use]
    pub fn new(effect_of: fn(&str) -> Effect) -> Replay {
        Replay {
            usage: HashMap::new(),
            moving: HashMap::new(),
            effect_of,
        }
    }

    pub fn add(&mut self, seq: u64, body: &Body) {
        match &body.kind {
            Kind::S3(S3::Allowed(d)) => self.allowed(seq, d.grant.as_deref(), &d.op, d.at),
            Kind::S3(S3::Denied(d)) => self.denied(d.grant.as_deref()),
            Kind::Share(u) => match u.decision {
                Verdict::Allowed => self.allowed(seq, u.grant.as_deref(), &u.op, u.at),
                Verdict::Denied => self.denied(u.grant.as_deref()),
            },
            Kind::Completion(c) => self.completed(c),
            // Refused before any grant was named, refused after a decision already counted,
            // and what is not a request: no usage.
            Kind::S3(S3::Refused(_))
            | Kind::DeniedAfterParse(_)
            | Kind::Lifecycle(_)
            | Kind::Checkpoint(_) => {}
        }
    }

    fn allowed(&mut self, seq: u64, grant: Option<&str>, op: &str, at: OffsetDateTime) {
        let Some(grant) = grant else { return };
        let effect = (self.effect_of)(op);
        self.usage
            .entry(grant.to_owned())
            .or_default()
            .admitted(effect, at);
        if effect.bytes().is_some() {
            self.moving.insert(seq, (grant.to_owned(), effect));
        }
    }

    fn denied(&mut self, grant: Option<&str>) {
        if let Some(grant) = grant {
            self.usage.entry(grant.to_owned()).or_default().denied += 1;
        }
    }

    fn completed(&mut self, c: &Completion) {
        let Some((grant, effect)) = c.decision.and_then(|d| self.moving.remove(&d)) else {
            return;
        };
        let usage = self.usage.entry(grant).or_default();
        if c.stop_kind == Some(StopKind::Limit) {
            usage.cut_at_limit.clone_from(&c.stopped);
        }
        let (read, written) = effect.moved(Some(c));
        usage.bytes_read += read;
        usage.bytes_written += written;
    }

    #[must_use]
    pub fn finish(self) -> Meter {
        let grants = self
            .usage
            .into_iter()
            .map(|(id, usage)| {
                let shared = GrantUsage::new(&id, usage);
                (id, shared)
            })
            .collect();
        Meter {
            grants: Mutex::new(grants),
        }
    }
}

/// One grant's usage, shared by the meter and every transfer under the grant: a transfer
/// looks its grant up once, then counts each chunk under this grant's own lock.
#[derive(Clone, Default)]
pub struct GrantUsage {
    grant_id: Arc<str>,
    usage: Arc<Mutex<Usage>>,
}

impl GrantUsage {
    fn new(grant_id: &str, usage: Usage) -> GrantUsage {
        GrantUsage {
            grant_id: grant_id.into(),
            usage: Arc::new(Mutex::new(usage)),
        }
    }

    /// Counts `n` bytes streaming under the grant. A chunk that would cross the byte limit
    /// is not counted, marks the grant spent, and the caller cuts the transfer with the
    /// reason returned.
    pub fn add_bytes(&self, limits: &Limits, direction: Direction, n: u64) -> Result<(), String> {
        let mut usage = self.lock();
        if let Some(max) = limits.bytes
            && usage.bytes_read + usage.bytes_written + n > max
        {
            let why = format!(
                "grant {} reached its limit of {max} bytes read and written",
                self.grant_id
            );
            usage.cut_at_limit = Some(why.clone());
            return Err(why);
        }
        match direction {
            Direction::Read => usage.bytes_read += n,
            Direction::Write => usage.bytes_written += n,
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Usage> {
        self.usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Default)]
pub struct Meter {
    grants: Mutex<HashMap<String, GrantUsage>>,
}

impl Meter {
    #[must_use]
    pub fn get(&self, grant_id: &str) -> Usage {
        self.lock()
            .get(grant_id)
            .map(|g| g.lock().clone())
            .unwrap_or_default()
    }

    /// The usage of one grant, for a transfer to count its bytes into.
    #[must_use]
    pub fn of(&self, grant_id: &str) -> GrantUsage {
        let mut all = self.lock();
        if let Some(usage) = all.get(grant_id) {
            return usage.clone();
        }
        let usage = GrantUsage::new(grant_id, Usage::default());
        all.insert(grant_id.to_owned(), usage.clone());
        usage
    }

    /// Counts an allowed request; refuses it (uncounted: the caller counts refusals with
    /// [`Meter::denied`]) when a limit is already reached, or
    /// when the object it would move is one past the object limit.
    pub fn admit(&self, grant: &Grant, effect: Effect, at: OffsetDateTime) -> Result<(), String> {
        let of = self.of(&grant.id);
        let mut usage = of.lock();
        if let Some(why) = usage.limit_reached(&grant.id, &grant.limits) {
            return Err(why);
        }
        usage.admitted(effect, at);
        Ok(())
    }

    pub fn denied(&self, grant_id: &str) {
        self.of(grant_id).lock().denied += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, GrantUsage>> {
        self.grants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::example_grant;
    use crate::record::examples::{Use, completion, decision, note, share_use};
    use time::macros::datetime;

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
    fn effect_of(op: &str) -> Effect {
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
}
