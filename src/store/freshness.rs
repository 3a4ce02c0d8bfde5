//! How current this process's view of the store is. The feed follower marks every successful
//! read of the store; the data path, which acts on the books' copies without asking the store,
//! refuses once the last read is older than the bound, because a revocation made through
//! another gateway may be waiting there unseen (DESIGN rule 12: a replica that cannot see the
//! current state refuses). It recovers by itself at the next successful read.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long a gateway acts on what it last read from its store when no read succeeds.
pub const STALE_AFTER: Duration = Duration::from_secs(5);

pub struct Freshness {
    last_read: Mutex<Instant>,
    bound: Duration,
    store: String,
}

/// The view is older than the bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// The store, as [`super::Store::describe`] names it.
    pub store: String,
    /// Seconds since the last successful read.
    pub seconds: u64,
}

impl Freshness {
    /// Fresh as of now.
    #[must_use]
    pub fn new(store: String, bound: Duration) -> Freshness {
        Freshness {
            last_read: Mutex::new(Instant::now()),
            bound,
            store,
        }
    }

    /// The store was just read successfully.
    pub fn read_now(&self) {
        *self.lock() = Instant::now();
    }

    /// Refuses when the last successful read is older than the bound.
    pub fn check(&self) -> Result<(), Stale> {
        let age = self.lock().elapsed();
        if age <= self.bound {
            return Ok(());
        }
        Err(Stale {
            store: self.store.clone(),
            seconds: age.as_secs(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.last_read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_view_older_than_the_bound_is_refused_until_the_next_read() {
        let freshness = Freshness::new("postgresql db:5432/sesame".into(), STALE_AFTER);
        assert_eq!(freshness.check(), Ok(()));
        tokio::time::advance(STALE_AFTER).await;
        assert_eq!(freshness.check(), Ok(()), "at the bound it still acts");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            freshness.check(),
            Err(Stale {
                store: "postgresql db:5432/sesame".into(),
                seconds: 7
            })
        );
        freshness.read_now();
        assert_eq!(freshness.check(), Ok(()), "recovered by itself");
    }
}
