//! A small pool of PostgreSQL connections: at most a fixed number open at once, idle ones
//! reused, closed ones dropped. A transaction needs a connection to itself, so every store call
//! borrows one for its duration.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, PoisonError};

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, Config, NoTls};

use super::{StoreError, connect_error};

pub(super) struct Pool {
    config: Config,
    /// The store's description, for errors.
    name: String,
    idle: Mutex<Vec<Client>>,
    /// One permit per connection that may be open; a caller past the limit waits here.
    slots: Semaphore,
}

/// A borrowed connection, given back to the pool when dropped (unless it has closed).
pub(super) struct Pooled<'a> {
    client: Option<Client>,
    pool: &'a Pool,
    _slot: SemaphorePermit<'a>,
}

impl Pool {
    pub(super) fn new(config: Config, name: String, size: usize) -> Pool {
        Pool {
            config,
            name,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(size),
        }
    }

    /// An open connection: an idle one if there is one, a new one otherwise.
    pub(super) async fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let slot =
            self.slots.acquire().await.map_err(|_| {
                StoreError::Db(format!("{}: the connection pool is closed", self.name))
            })?;
        let client = match self.take_idle() {
            Some(client) => client,
            None => open(&self.config)
                .await
                .map_err(|e| connect_error(&self.name, &e))?,
        };
        Ok(Pooled {
            client: Some(client),
            pool: self,
            _slot: slot,
        })
    }

    fn take_idle(&self) -> Option<Client> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // A connection the server closed while it sat idle is of no use: drop it.
        while let Some(client) = idle.pop() {
            if !client.is_closed() {
                return Some(client);
            }
        }
        None
    }
}

/// Opens one connection and drives it on its own task, which ends when the client is dropped
/// or the server goes away.
pub(super) async fn open(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "a store connection ended");
        }
    });
    Ok(client)
}

impl Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !client.is_closed()
        {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(client);
        }
    }
}
