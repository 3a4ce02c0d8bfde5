//! The change feed, followed: every change committed to the store (by this process or by
//! another gateway sharing it) reaches this process's books in revision order, so their
//! copies, and the watch channels that cut transfers, follow the store. Woken by the store
//! after a commit, and polling on a short period as the safety net for wake-ups that are
//! lost (a listener reconnecting, another process's commit the engine cannot announce).

use std::sync::Arc;

use crate::desk::Workflow;
use crate::grant::Grants;
use crate::grant::usage::Meter;
use crate::identity::Users;
use crate::s3::Uploads;
use crate::share::Shares;
use crate::store::{Change, Revision, SharedStore, StoreError, Table};

/// How often the feed is read when no wake-up comes: the bound on how late a change made by
/// another gateway is seen here when its announcement was lost.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// How many changes are read at once.
const BATCH: usize = 512;

/// The books the feed keeps current.
#[derive(Clone)]
pub struct Books {
    pub grants: Arc<Grants>,
    pub shares: Arc<Shares>,
    pub users: Arc<Users>,
    pub workflow: Arc<Workflow>,
    pub uploads: Arc<Uploads>,
    pub meter: Arc<Meter>,
}

impl Books {
    fn apply(&self, change: &Change) -> Result<(), StoreError> {
        match change.table {
            Table::Grants | Table::Credentials => self.grants.apply(change),
            Table::Shares => self.shares.apply(change),
            Table::Users => self.users.apply(change),
            Table::Requests => self.workflow.apply(change),
            Table::Uploads => self.uploads.apply(change),
            Table::Usage => self.meter.apply(change),
            Table::Policies => self.workflow.apply_policies(change),
            // Read where they are used, not kept in a book.
            Table::Owed | Table::Keys | Table::Claims => Ok(()),
        }
    }
}

/// Follows the feed from the start (the books ignore versions they already hold) until the
/// task is dropped.
pub async fn follow(store: SharedStore, books: Books) {
    let wakeups = store.wakeups();
    let mut after: Revision = 0;
    loop {
        match catch_up(&*store, &books, &mut after).await {
            Ok(()) => {
                books.grants.freshness().read_now();
            }
            Err(e) => {
                tracing::warn!(store = %store.describe(), error = %e, "cannot read the store's changes; retrying");
            }
        }
        tokio::select! {
            () = wakeups.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Applies every change after `after`, moving `after` along as it goes.
async fn catch_up(
    store: &dyn crate::store::Store,
    books: &Books,
    after: &mut Revision,
) -> Result<(), StoreError> {
    loop {
        let changes = store.changes_since(*after, BATCH).await?;
        for change in &changes {
            if let Err(e) = books.apply(change) {
                // A value this build cannot read is skipped, loudly; the rest still flows.
                tracing::error!(table = change.table.name(), id = %change.id, error = %e, "a stored change cannot be taken in");
            }
            *after = change.revision;
        }
        if changes.len() < BATCH {
            return Ok(());
        }
    }
}
