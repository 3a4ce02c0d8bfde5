//! What the S3 listener counts against a grant's limits, the same for an S3 request and a
//! share link's use: the request itself when it is admitted (an object read, written or
//! deleted, as the operation table's data-effect column says), and the object bytes of its
//! body as they stream ([`tally`]). A denial is counted when it is recorded
//! (`record::commit`).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use time::OffsetDateTime;

use super::denial::Denial;
use super::transfer::Tally;
use crate::grant::LiveGrant;
use crate::grant::usage::{Direction, Effect, Meter};
use crate::model::Grant;

/// Counts an admitted request against `grant`'s limits, or says which limit it would cross.
pub fn admit(
    meter: &Meter,
    grant: &Grant,
    effect: Effect,
    now: OffsetDateTime,
) -> Result<(), Denial> {
    meter
        .admit(grant, effect, now)
        .map_err(|message| Denial::LimitReached { message })
}

/// Counts a body's object bytes moving `direction` under `grant`, and into `counted` (the
/// request's own count, for its completion record).
pub fn tally(
    meter: &Meter,
    grant: &LiveGrant,
    direction: Direction,
    counted: Arc<AtomicU64>,
) -> Tally {
    let grant = grant.borrow();
    Tally {
        usage: meter.of(&grant.id),
        limits: grant.limits,
        direction,
        counted,
    }
}
