//! The only place that reads the current time. Everything else asks a [`Clock`], so tests can
//! drive expiry with a [`ManualClock`] instead of sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::watch;

/// A future that resolves once a deadline has passed. `Sync` because it lives inside response
/// and request body streams, which s3s requires to be `Sync`.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;

    /// Resolves once `now() >= deadline`.
    fn sleep_until(&self, deadline: OffsetDateTime) -> Sleep;
}

pub type SharedClock = Arc<dyn Clock>;

/// The wall clock, with tokio timers for deadlines.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the wall clock
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn sleep_until(&self, deadline: OffsetDateTime) -> Sleep {
        let wait = deadline - self.now();
        let wait = std::time::Duration::try_from(wait).unwrap_or_default();
        // A timer can fire a hair early relative to the wall clock; callers re-check `now()`.
        Box::pin(tokio::time::sleep(
            wait + std::time::Duration::from_millis(1),
        ))
    }
}

/// A clock that only moves when told to. Sleepers wake as soon as `advance` passes their
/// deadline.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<OffsetDateTime>>,
}

impl ManualClock {
    #[must_use]
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(watch::Sender::new(start)),
        }
    }

    pub fn advance(&self, by: time::Duration) {
        self.now.send_modify(|now| *now += by);
    }

    pub fn set(&self, to: OffsetDateTime) {
        self.now.send_replace(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: OffsetDateTime) -> Sleep {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // `wait_for` only errs when the sender is gone; then time can never reach the
            // deadline and the sleeper must stay asleep, like a timer that never fires.
            if rx.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[tokio::test]
    async fn manual_sleeper_wakes_only_when_time_passes_its_deadline() {
        let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
        let mut sleep = clock.sleep_until(datetime!(2026-01-01 00:10 UTC));
        let not_yet = futures::poll!(sleep.as_mut());
        assert!(not_yet.is_pending());

        clock.advance(time::Duration::minutes(9));
        assert!(futures::poll!(sleep.as_mut()).is_pending());

        clock.advance(time::Duration::minutes(1));
        tokio::time::timeout(std::time::Duration::from_secs(5), sleep)
            .await
            .expect("woke up");
    }
}
