//! What was done under each grant: requests, objects and bytes read and written, first and
//! last use. Kept in memory so the data path never writes to the store, rebuilt from the
//! audit trail at start (the trail is the record of what happened), and checked against the
//! grant's limits on every decision and on every chunk that streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{Grant, Limits};

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

/// The objects an allowed operation counts as read or written. `CopyObject` writes an
/// object whose bytes never pass the gateway (the backend copies them).
#[must_use]
pub fn objects_moved(op: &str) -> Option<Direction> {
    match op {
        "GetObject" => Some(Direction::Read),
        "PutObject" | "CopyObject" | "CompleteMultipartUpload" => Some(Direction::Write),
        _ => None,
    }
}

/// The object bytes an operation streams through the gateway, and which way.
#[must_use]
pub fn bytes_moved(op: &str) -> Option<Direction> {
    match op {
        "GetObject" => Some(Direction::Read),
        "PutObject" | "UploadPart" => Some(Direction::Write),
        _ => None,
    }
}

/// Usage rebuilt from the trail's records, fed in order: decisions under a grant count
/// requests and objects; completions add the bytes their decision's operation moved.
#[derive(Default)]
pub struct Replay {
    usage: HashMap<String, Usage>,
    /// Decisions whose completion will carry object bytes, until it arrives.
    moving: HashMap<u64, (String, Direction)>,
}

impl Replay {
    pub fn add(&mut self, seq: u64, body: &serde_json::Value) {
        match body["kind"].as_str() {
            Some("s3" | "share") => {
                let Some(grant) = body["grant"].as_str() else {
                    return;
                };
                let op = body["op"].as_str().unwrap_or_default();
                let usage = self.usage.entry(grant.to_owned()).or_default();
                if body["decision"] != "allowed" {
                    usage.denied += 1;
                    return;
                }
                let at = body["at"].as_str().and_then(|a| {
                    OffsetDateTime::parse(a, &time::format_description::well_known::Rfc3339).ok()
                });
                match at {
                    Some(at) => usage.used(at),
                    None => usage.requests += 1,
                }
                match objects_moved(op) {
                    Some(Direction::Read) => usage.objects_read += 1,
                    Some(Direction::Write) => usage.objects_written += 1,
                    None => {}
                }
                if let Some(direction) = bytes_moved(op) {
                    self.moving.insert(seq, (grant.to_owned(), direction));
                }
            }
            Some("s3.complete") => {
                let Some((grant, direction)) = body["decision"]
                    .as_u64()
                    .and_then(|d| self.moving.remove(&d))
                else {
                    return;
                };
                let usage = self.usage.entry(grant).or_default();
                if body["stop_kind"] == "limit" {
                    usage.cut_at_limit = body["stopped"].as_str().map(str::to_owned);
                }
                match direction {
                    Direction::Read => usage.bytes_read += body["bytes_out"].as_u64().unwrap_or(0),
                    Direction::Write => {
                        usage.bytes_written += body["bytes_in"].as_u64().unwrap_or(0);
                    }
                }
            }
            _ => {}
        }
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
    pub fn admit(&self, grant: &Grant, op: &str, at: OffsetDateTime) -> Result<(), String> {
        let of = self.of(&grant.id);
        let mut usage = of.lock();
        if let Some(why) = usage.limit_reached(&grant.id, &grant.limits) {
            return Err(why);
        }
        usage.used(at);
        match objects_moved(op) {
            Some(Direction::Read) => usage.objects_read += 1,
            Some(Direction::Write) => usage.objects_written += 1,
            None => {}
        }
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
    use serde_json::json;
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
        meter.admit(&grant, "GetObject", T0).unwrap();
        meter.admit(&grant, "ListObjectsV2", T0).unwrap();
        meter.admit(&grant, "GetObject", T0).unwrap();
        let err = meter.admit(&grant, "HeadObject", T0).unwrap_err();
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
            meter.admit(&grant, "ListObjectsV2", T0).unwrap_err(),
            "grant g-1 reached its limit of 100 bytes read and written"
        );
        let usage = meter.get("g-1");
        assert_eq!((usage.bytes_read, usage.bytes_written), (60, 40));
    }

    #[test]
    fn usage_is_rebuilt_from_the_trail() {
        let records = [
            json!({"kind": "s3", "op": "GetObject", "grant": "g-1", "decision": "allowed", "at": "2026-11-29T10:05:00Z"}),
            json!({"kind": "s3.complete", "decision": 1, "bytes_out": 500, "bytes_in": 0}),
            json!({"kind": "s3", "op": "ListObjectsV2", "grant": "g-1", "decision": "allowed", "at": "2026-11-29T10:01:00Z"}),
            // A listing's XML is not object bytes.
            json!({"kind": "s3.complete", "decision": 3, "bytes_out": 900}),
            json!({"kind": "s3", "op": "PutObject", "grant": "g-1", "decision": "denied", "at": "2026-11-29T10:06:00Z"}),
            json!({"kind": "share", "op": "GetObject", "grant": "g-1", "decision": "allowed", "at": "2026-11-29T10:09:00Z"}),
            json!({"kind": "s3.complete", "decision": 6, "bytes_out": 20}),
            json!({"kind": "s3", "op": "PutObject", "grant": "g-2", "decision": "allowed", "at": "2026-11-29T10:07:00Z"}),
            json!({"kind": "s3.complete", "decision": 8, "bytes_out": 0, "bytes_in": 64, "stop_kind": "limit", "stopped": "grant g-2 reached its limit of 70 bytes read and written"}),
            json!({"kind": "lifecycle", "event": "policy.reloaded"}),
        ];
        let mut replay = Replay::default();
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
                first_use: Some(datetime!(2026-11-29 10:01 UTC)),
                last_use: Some(datetime!(2026-11-29 10:09 UTC)),
                cut_at_limit: None,
            }
        );
        let g2 = meter.get("g-2");
        assert_eq!((g2.objects_written, g2.bytes_written), (1, 64));
        // Cut at its limit six bytes short: still nothing more under it after a restart.
        let mut grant = example_grant("g-2", T0, T0 + time::Duration::hours(1));
        grant.limits.bytes = Some(70);
        assert_eq!(
            meter.admit(&grant, "ListObjectsV2", T0).unwrap_err(),
            "grant g-2 reached its limit of 70 bytes read and written"
        );
    }
}
