//! What was done under each grant: requests, objects and bytes read and written, first and
//! last use, and the grant's limits checked against it on every decision and on every chunk
//! that streams. The data path only ever touches memory: the meter (`meter.rs`) counts what
//! this process serves, beside what the other gateways sharing the store last said they
//! counted.
//!
//! What a gateway counted is durable in one row of its own in the store (`ledger.rs`): the
//! totals per grant as the trail has them through one of its records (`replay.rs` counts
//! them from the committed trail), written a few times a second. At start a gateway loads its
//! row and replays only the trail after it, so usage is exact across restarts, crashes and
//! audit retention (which keeps every trail record the row does not yet cover); limits hold
//! over the sum of every gateway's row.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::Limits;
use crate::record::Completion;

mod ledger;
mod meter;
mod replay;
#[cfg(test)]
mod tests;

pub use ledger::{FLUSH_EVERY, FlushError, Flushed, Flusher, Ledger, ReplicaUsage, Resumed};
pub use meter::{GrantUsage, Meter};
pub use replay::{Pending, Replay, Totals};

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

    /// Two counts of one grant together (two gateways', or a row's totals and what its
    /// gateway had counted beyond them): the sums, the earliest first and latest last use,
    /// and a cut at the limit if either was cut.
    #[must_use]
    pub fn plus(&self, other: &Usage) -> Usage {
        let either = |a: Option<OffsetDateTime>, b, pick: fn(_, _) -> _| match (a, b) {
            (Some(a), Some(b)) => Some(pick(a, b)),
            (a, b) => a.or(b),
        };
        Usage {
            requests: self.requests.saturating_add(other.requests),
            denied: self.denied.saturating_add(other.denied),
            objects_read: self.objects_read.saturating_add(other.objects_read),
            objects_written: self.objects_written.saturating_add(other.objects_written),
            bytes_read: self.bytes_read.saturating_add(other.bytes_read),
            bytes_written: self.bytes_written.saturating_add(other.bytes_written),
            first_use: either(self.first_use, other.first_use, OffsetDateTime::min),
            last_use: either(self.last_use, other.last_use, OffsetDateTime::max),
            cut_at_limit: self
                .cut_at_limit
                .clone()
                .or_else(|| other.cut_at_limit.clone()),
        }
    }

    /// What this count of a grant holds beyond `base`, an earlier count of the same grant
    /// (`base.plus(&beyond)` is this count again); `None` when it holds nothing more.
    #[must_use]
    pub fn beyond(&self, base: &Usage) -> Option<Usage> {
        let ahead = Usage {
            requests: self.requests.saturating_sub(base.requests),
            denied: self.denied.saturating_sub(base.denied),
            objects_read: self.objects_read.saturating_sub(base.objects_read),
            objects_written: self.objects_written.saturating_sub(base.objects_written),
            bytes_read: self.bytes_read.saturating_sub(base.bytes_read),
            bytes_written: self.bytes_written.saturating_sub(base.bytes_written),
            first_use: self.first_use,
            last_use: self.last_use,
            cut_at_limit: base
                .cut_at_limit
                .is_none()
                .then(|| self.cut_at_limit.clone())
                .flatten(),
        };
        let counted = [
            ahead.requests,
            ahead.denied,
            ahead.objects_read,
            ahead.objects_written,
            ahead.bytes_read,
            ahead.bytes_written,
        ];
        (counted.iter().any(|n| *n > 0) || ahead.cut_at_limit.is_some()).then_some(ahead)
    }
}

/// Which way an operation moves object bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Read,
    Write,
}

impl Direction {
    /// The object bytes an answer moved this way, `(read, written)`: a download's from a
    /// successful answer only (an error's XML is not the object), an upload's whatever the
    /// answer.
    #[must_use]
    pub fn moved(self, answer: &Completion) -> (u64, u64) {
        match self {
            Direction::Read if answer.status < 400 => (answer.bytes_out, 0),
            Direction::Write => (0, answer.bytes_in),
            Direction::Read => (0, 0),
        }
    }
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
        match (self.bytes(), answer) {
            (Some(direction), Some(answer)) => direction.moved(answer),
            (None, _) | (_, None) => (0, 0),
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
