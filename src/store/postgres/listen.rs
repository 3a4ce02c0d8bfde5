//! Wake-ups from other processes: every commit sends `NOTIFY sesame_changes` in its own
//! transaction, and one dedicated connection per store listens on that channel. A notification
//! only says "look at the feed"; the follower reads what changed with `changes_since`, and polls
//! as well, so a notification lost while the connection was down delays it and loses nothing.
//! A store also hears its own commits, after the wake-up it gave itself: one spare wake-up
//! costs the follower one empty read.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

use super::{StoreError, connect_error};

/// The channel every commit notifies.
pub(super) const CHANNEL: &str = "sesame_changes";

/// The first wait before reconnecting, doubled after each failure up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// A connection that is listening. The server keeps sending notifications only while the
/// client is alive, so both are kept together.
struct Listening {
    _client: Client,
    /// Drives the connection and turns its notifications into wake-ups; ends when the
    /// connection does.
    driver: JoinHandle<()>,
}

/// Starts listening before it returns, so that no commit made after the store is open goes
/// unheard, then keeps listening on a task of its own (reconnecting when the connection drops)
/// until that task is aborted.
pub(super) async fn start(
    config: Config,
    name: String,
    wakeups: Arc<Notify>,
) -> Result<JoinHandle<()>, StoreError> {
    let first = listen(&config, &wakeups)
        .await
        .map_err(|e| connect_error(&name, &e))?;
    Ok(tokio::spawn(follow(config, name, wakeups, first)))
}

async fn follow(config: Config, name: String, wakeups: Arc<Notify>, first: Listening) {
    let mut current = first;
    loop {
        // The driver's own outcome is logged by it; only its end matters here.
        let _ = (&mut current.driver).await;
        tracing::warn!(store = %name, "the store's notification connection dropped; reconnecting");
        current = reconnect(&config, &name, &wakeups).await;
        // Whatever was committed while the connection was down went unheard: catch up now.
        wakeups.notify_one();
    }
}

/// Tries again with growing pauses until a connection listens again.
async fn reconnect(config: &Config, name: &str, wakeups: &Arc<Notify>) -> Listening {
    let mut delay = FIRST_DELAY;
    loop {
        tokio::time::sleep(delay).await;
        match listen(config, wakeups).await {
            Ok(listening) => {
                tracing::info!(store = %name, "listening for the store's changes again");
                return listening;
            }
            Err(e) => {
                tracing::warn!(
                    store = %name,
                    error = %super::full(&e),
                    retry_in = ?delay,
                    "the store's notification connection cannot be opened",
                );
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    }
}

/// Opens a connection and issues `LISTEN`. The connection is driven with `poll_message` (not
/// awaited as a future, which would discard notifications), from before `LISTEN` is sent.
async fn listen(
    config: &Config,
    wakeups: &Arc<Notify>,
) -> Result<Listening, tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let wake = wakeups.clone();
    let driver = tokio::spawn(async move {
        while let Some(message) = futures::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                Ok(AsyncMessage::Notice(notice)) => {
                    tracing::debug!(notice = %notice, "store notice");
                }
                // AsyncMessage is non-exhaustive: a kind of message added later is no wake-up.
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %super::full(&e), "the store's notification connection failed");
                    break;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok(Listening {
        _client: client,
        driver,
    })
}
