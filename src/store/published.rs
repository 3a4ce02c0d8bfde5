//! The in-memory copy of one table that a book keeps: every value as last committed, with
//! the revision it was committed at, each published through a `watch` channel so whatever
//! runs under it (a transfer under a grant, a download through a link) sees a change at once.
//! Changes arrive from this process's commits and from the feed, in any order: a version
//! older than the one held is ignored.

use std::collections::HashMap;
use std::sync::RwLock;

use tokio::sync::watch;

use super::{Change, Revision, Step, Store, StoreError, Stored};

pub struct Published<T> {
    rows: RwLock<HashMap<String, (Revision, watch::Sender<T>)>>,
}

impl<T> Default for Published<T> {
    fn default() -> Self {
        Published {
            rows: RwLock::new(HashMap::new()),
        }
    }
}

impl<T: Stored> Published<T> {
    /// Holds `value` as committed at `revision`, unless a later version is held; whether
    /// anything changed.
    pub fn publish(&self, revision: Revision, value: T) -> bool {
        let mut rows = self.write();
        match rows.get_mut(&value.row_id()) {
            Some((held, _)) if *held >= revision => false,
            Some((held, sender)) => {
                *held = revision;
                sender.send_replace(value);
                true
            }
            None => {
                rows.insert(value.row_id(), (revision, watch::Sender::new(value)));
                true
            }
        }
    }

    /// Takes in a committed change of this table; whether anything changed. A deleted row
    /// is dropped (its followers see their channel close).
    pub fn apply(&self, change: &Change) -> Result<bool, StoreError> {
        debug_assert_eq!(change.table, T::TABLE);
        match &change.value {
            Some(bytes) => Ok(self.publish(change.revision, super::decode(&change.id, bytes)?)),
            None => Ok(self.forget(&change.id, change.revision)),
        }
    }

    /// Drops a row deleted at `revision`, unless a later version is held.
    pub fn forget(&self, id: &str, revision: Revision) -> bool {
        let mut rows = self.write();
        match rows.get(id) {
            Some((held, _)) if *held <= revision => rows.remove(id).is_some(),
            Some(_) | None => false,
        }
    }

    /// One serialised update ([`super::update`]) of a row that must exist (`missing` is the
    /// error when it does not), publishing the stored version, written or not: the stored
    /// version is the truth. Returns the answer and the revision the row is now at.
    pub async fn update<R, E: From<StoreError>>(
        &self,
        store: &dyn Store,
        id: &str,
        missing: impl Fn() -> E,
        mut decide: impl FnMut(&T) -> Result<Step<T, R>, E>,
    ) -> Result<(R, Revision), E> {
        let updated =
            super::update::<T, R, E>(store, id, |current| decide(current.ok_or_else(&missing)?))
                .await?;
        if let Some(value) = updated.value {
            self.publish(updated.revision, value);
        }
        Ok((updated.answer, updated.revision))
    }

    #[must_use]
    pub fn get(&self, id: &str) -> Option<T> {
        self.read()
            .get(id)
            .map(|(_, sender)| sender.borrow().clone())
    }

    #[must_use]
    pub fn contains(&self, id: &str) -> bool {
        self.read().contains_key(id)
    }

    /// A receiver that follows one value.
    #[must_use]
    pub fn subscribe(&self, id: &str) -> Option<watch::Receiver<T>> {
        self.read().get(id).map(|(_, sender)| sender.subscribe())
    }

    /// Every value, in no particular order.
    #[must_use]
    pub fn values(&self) -> Vec<T> {
        self.read()
            .values()
            .map(|(_, sender)| sender.borrow().clone())
            .collect()
    }

    /// The first value `pick` accepts, without copying the others.
    #[must_use]
    pub fn find(&self, mut pick: impl FnMut(&T) -> bool) -> Option<T> {
        self.read().values().find_map(|(_, sender)| {
            let value = sender.borrow();
            pick(&value).then(|| value.clone())
        })
    }

    fn read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<String, (Revision, watch::Sender<T>)>> {
        self.rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, (Revision, watch::Sender<T>)>> {
        self.rows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
