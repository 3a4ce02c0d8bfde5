//! Usage counted from the trail's records, fed in order: decisions under a grant count
//! requests and objects; completions add the bytes their decision's operation moved. The
//! same count runs at start (over the trail after the gateway's row) and afterwards (over
//! each committed batch), so what a row says is exactly what the trail through its seq says.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Direction, Effect, Meter, Usage};
use crate::record::{Body, Completion, Kind, S3, StopKind, Verdict};

/// Usage per grant as the trail has it through record `through_seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// The last trail record counted (0: none).
    pub through_seq: u64,
    pub grants: BTreeMap<String, Usage>,
    /// Decisions through `through_seq` whose completion, carrying their object bytes, comes
    /// after it; keyed by the decision's seq.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<u64, Pending>,
}

/// A decision whose bytes its completion will say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub grant: String,
    pub direction: Direction,
}

pub struct Replay {
    totals: Totals,
    /// The operation table's data-effect column (`s3::ops::effect_of`), which sits above.
    effect_of: fn(&str) -> Effect,
}

impl Replay {
    /// Counting from the start of the trail.
    #[must_use]
    pub fn new(effect_of: fn(&str) -> Effect) -> Replay {
        Replay::resume(effect_of, Totals::default())
    }

    /// Counting on from `totals`: records through its seq are already in it and skipped.
    #[must_use]
    pub fn resume(effect_of: fn(&str) -> Effect, totals: Totals) -> Replay {
        Replay { totals, effect_of }
    }

    /// Counts record `seq`, unless it is already counted.
    pub fn add(&mut self, seq: u64, body: &Body) {
        if seq <= self.totals.through_seq {
            return;
        }
        self.totals.through_seq = seq;
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
        self.totals
            .grants
            .entry(grant.to_owned())
            .or_default()
            .admitted(effect, at);
        if let Some(direction) = effect.bytes() {
            let grant = grant.to_owned();
            self.totals
                .pending
                .insert(seq, Pending { grant, direction });
        }
    }

    fn denied(&mut self, grant: Option<&str>) {
        if let Some(grant) = grant {
            self.totals
                .grants
                .entry(grant.to_owned())
                .or_default()
                .denied += 1;
        }
    }

    fn completed(&mut self, c: &Completion) {
        let Some(pending) = c.decision.and_then(|d| self.totals.pending.remove(&d)) else {
            return;
        };
        let usage = self.totals.grants.entry(pending.grant).or_default();
        if c.stop_kind == Some(StopKind::Limit) {
            usage.cut_at_limit.clone_from(&c.stopped);
        }
        let (read, written) = pending.direction.moved(c);
        usage.bytes_read += read;
        usage.bytes_written += written;
    }

    /// Forgets the decisions still waiting for their bytes: at start, once the trail is
    /// read, they were made by a process that is gone, so no completion can follow.
    pub fn forget_pending(&mut self) {
        self.totals.pending.clear();
    }

    /// Treats the trail as ending at `seq` although the totals were counted further: for a
    /// trail that is behind the row counted from it (a data directory restored from a
    /// backup), so that its next records are counted rather than taken as counted.
    pub fn rebase(&mut self, seq: u64) {
        self.totals.through_seq = seq;
    }

    #[must_use]
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// A meter starting from the totals, as a gateway alone on its store would.
    #[must_use]
    pub fn finish(self) -> Meter {
        Meter::starting("", self.totals.grants)
    }
}
