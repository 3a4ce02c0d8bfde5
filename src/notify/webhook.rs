//! Webhooks, a sink of the committed trail: each `[[webhook]]` is sent the request and grant
//! notices the trail holds, in trail order, as JSON signed with HMAC-SHA256 (or a
//! Slack-compatible text payload), each POST retried on the sinks' one backoff
//! ([`sink::deliver`]). Nothing is sent before the trail has committed it.
//!
//! Each hook keeps a durable cursor beside the trail (`webhook-<hash of the url>.cursor`: the
//! last seq it delivered or gave up on). At start it reads back the notices committed after
//! its cursor (from the trail's files, rotated ones too) before taking live batches, so a
//! notice committed just before a crash, or while the receiver was down, is delivered after a
//! restart; a hook that falls behind while running reads its gap back the same way. Reading
//! back is bounded (notices no older than `replay_within`, at most the newest `replay_max`)
//! and what it leaves out is logged. Delivery is at least once: a notice delivered just
//! before a crash, its cursor not yet stored, is sent again.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize as _;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Notice, notice_in};
use crate::audit::AuditLog;
use crate::audit::sink::{self, Backoff, Committed, Cursor, Post};
use crate::clock::SharedClock;
use crate::http::HttpClient;
use crate::secret::{Secret, signature};

/// Where notices go: one `[[webhook]]` table of the configuration file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// Key for the `X-Sesame-Signature` HMAC; from a file or inline.
    pub secret: Option<Secret>,
    pub secret_file: Option<std::path::PathBuf>,
    /// `json` (default) or `slack`.
    #[serde(default)]
    pub format: Format,
    /// Retry delays start here and double, up to `max_retry_ms`, for up to `attempts` tries.
    #[serde(default = "default_first_retry_ms")]
    pub first_retry_ms: u64,
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    #[serde(default = "default_max_retry_ms")]
    pub max_retry_ms: u64,
    /// Read back after a restart, notices older than this are not sent (`24h` by default).
    #[serde(
        default = "default_replay_within",
        deserialize_with = "people_duration"
    )]
    pub replay_within: time::Duration,
    /// Read back after a restart, at most this many notices are sent: the newest.
    #[serde(default = "default_replay_max")]
    pub replay_max: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Slack,
}

fn default_first_retry_ms() -> u64 {
    1000
}

fn default_attempts() -> u32 {
    6
}

fn default_max_retry_ms() -> u64 {
    60_000
}

fn default_replay_within() -> time::Duration {
    time::Duration::hours(24)
}

fn default_replay_max() -> usize {
    100
}

/// `30m`, `24h`, `7d`, as [`crate::duration::parse`] reads them.
fn people_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<time::Duration, D::Error> {
    let text = String::deserialize(d)?;
    crate::duration::parse(&text).map_err(serde::de::Error::custom)
}

/// The body for a hook's format.
#[must_use]
pub fn payload(format: Format, notice: &Notice) -> Vec<u8> {
    let value = match format {
        Format::Json => serde_json::to_value(notice).expect("notices serialise"),
        Format::Slack => {
            serde_json::json!({"text": format!("Sesame {}: {}", notice.event.name(), notice.summary)})
        }
    };
    serde_json::to_vec(&value).expect("json")
}

/// Committed batches a hook may fall behind by before it reads the rest back from the files.
const QUEUE: usize = 1024;

/// Starts one sink per hook on the committed trail of `audit` (none: nothing to start); the
/// tasks, for the gateway to stop with the rest. A hook that cannot work (a bad url, an
/// unreadable secret, a cursor that cannot be written) keeps the gateway from starting.
pub fn start(
    hooks: Vec<Webhook>,
    audit: &AuditLog,
    clock: &SharedClock,
) -> Result<Vec<JoinHandle<()>>, String> {
    if hooks.is_empty() {
        return Ok(Vec::new());
    }
    let mut resolved: Vec<Hook> = Vec::new();
    for hook in hooks {
        let hook = Hook::resolve(hook)?;
        if resolved.iter().any(|h| h.url == hook.url) {
            return Err(format!("webhook url {:?} is given twice", hook.url));
        }
        resolved.push(hook);
    }
    let client = crate::http::client()?;
    resolved
        .into_iter()
        .map(|hook| Sink::start(hook, audit, client.clone(), clock.clone(), QUEUE))
        .collect()
}

/// A hook as it is sent to.
struct Hook {
    url: String,
    secret: Option<Secret>,
    format: Format,
    backoff: Backoff,
    replay_within: time::Duration,
    replay_max: usize,
}

impl Hook {
    fn resolve(hook: Webhook) -> Result<Hook, String> {
        if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
            return Err(format!(
                "webhook url {:?} must be http:// or https://",
                hook.url
            ));
        }
        let secret = match (hook.secret, &hook.secret_file) {
            (Some(s), _) => Some(s),
            (None, Some(path)) => {
                Some(Secret::from_file(path).map_err(|e| format!("webhook secret {e}"))?)
            }
            (None, None) => None,
        };
        Ok(Hook {
            url: hook.url,
            secret,
            format: hook.format,
            backoff: Backoff {
                first: Duration::from_millis(hook.first_retry_ms),
                attempts: hook.attempts,
                max: Duration::from_millis(hook.max_retry_ms),
            },
            replay_within: hook.replay_within,
            replay_max: hook.replay_max,
        })
    }
}

/// The cursor of the hook at `url`, named by a hash of it (a hook's url can be a secret).
fn cursor_for(dir: &Path, url: &str) -> Cursor {
    Cursor::new(
        dir,
        &format!("webhook-{}", &crate::secret::token_hash(url)[..16]),
    )
}

/// One hook's sink.
struct Sink {
    hook: Hook,
    cursor: Cursor,
    audit: AuditLog,
    client: HttpClient,
    clock: SharedClock,
}

impl Sink {
    /// Taps the trail, then finds where the hook had got to, and spawns its task: first what
    /// was committed after its cursor, then the live batches.
    fn start(
        hook: Hook,
        audit: &AuditLog,
        client: HttpClient,
        clock: SharedClock,
        capacity: usize,
    ) -> Result<JoinHandle<()>, String> {
        let cursor = cursor_for(audit.dir(), &hook.url);
        let (tx, batches) = mpsc::channel(capacity);
        let behind = Arc::new(AtomicBool::new(false));
        let missed = behind.clone();
        let committed = audit.tap(move |batch| match tx.try_send(batch.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                missed.store(true, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        let done = match cursor.load() {
            Ok(Some(seq)) if seq > committed => {
                tracing::warn!(url = %hook.url, cursor = seq, committed, "webhook cursor is past the end of the trail; starting at its end");
                committed
            }
            Ok(Some(seq)) => seq,
            // A new hook starts at the end of the trail: it is not sent the trail's history.
            Ok(None) => {
                cursor.store(committed)?;
                committed
            }
            Err(e) => {
                tracing::error!(url = %hook.url, error = %e, "webhook cursor unreadable; reading back as far as the replay bounds allow");
                0
            }
        };
        let sink = Sink {
            hook,
            cursor,
            audit: audit.clone(),
            client,
            clock,
        };
        Ok(tokio::spawn(sink.run(batches, behind, done, committed)))
    }

    async fn run(
        self,
        mut batches: mpsc::Receiver<Committed>,
        behind: Arc<AtomicBool>,
        mut done: u64,
        committed: u64,
    ) {
        done = self.read_back(done, committed).await;
        while let Some(batch) = batches.recv().await {
            if behind.swap(false, Ordering::Relaxed) {
                // Batches were dropped while this hook was busy: the files have them, up to
                // the last one committed (this one included).
                done = self.read_back(done, self.audit.committed()).await;
            }
            for record in batch.records_of_kind("lifecycle") {
                if record.seq <= done {
                    continue;
                }
                if let Some(notice) = notice_in(&record) {
                    self.send(record.seq, &notice).await;
                }
                done = record.seq;
            }
        }
    }

    /// Sends the notices committed in `after + 1..=upto`, within the replay bounds, read
    /// back from the trail's files; where it got to (`upto`, also stored as the cursor).
    async fn read_back(&self, after: u64, upto: u64) -> u64 {
        if upto <= after {
            return after;
        }
        let dir = self.audit.dir().to_owned();
        let oldest = self.clock.now() - self.hook.replay_within;
        let most = self.hook.replay_max;
        let read =
            tokio::task::spawn_blocking(move || Backlog::read(&dir, after, upto, oldest, most))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
        match read {
            Ok(backlog) => {
                backlog.log_left_out(&self.hook);
                for (seq, notice) in &backlog.notices {
                    self.send(*seq, notice).await;
                }
            }
            Err(e) => {
                tracing::error!(url = %self.hook.url, after, upto, error = %e, "webhook: the trail cannot be read back; the notices in between are not sent (they stay in the trail)");
            }
        }
        self.store_cursor(upto);
        upto
    }

    /// Delivers one notice with the hook's retries, then moves the cursor past it, delivered
    /// or given up on.
    async fn send(&self, seq: u64, notice: &Notice) {
        let body = Bytes::from(payload(self.hook.format, notice));
        let mut headers = vec![("x-sesame-event", notice.event.name().to_owned())];
        if let Some(secret) = &self.hook.secret {
            headers.push(("x-sesame-signature", signature(secret.expose(), &body)));
        }
        let post = Post {
            what: "webhook",
            url: &self.hook.url,
            content_type: "application/json",
            headers,
            body,
        };
        if let Err(e) = sink::deliver(&self.client, &post, &self.hook.backoff).await {
            tracing::error!(
                url = %self.hook.url,
                event = notice.event.name(),
                seq,
                error = %e,
                "webhook gave up after {} attempts (the notice stays in the trail)",
                self.hook.backoff.attempts
            );
        }
        self.store_cursor(seq);
    }

    fn store_cursor(&self, seq: u64) {
        if let Err(e) = self.cursor.store(seq) {
            tracing::error!(url = %self.hook.url, seq, error = %e, "webhook cursor not stored: after a restart its notices may be sent again");
        }
    }
}

/// Seqs of the notices reading back left out for one reason.
#[derive(Debug, Default)]
struct LeftOut {
    count: usize,
    first: u64,
    last: u64,
}

impl LeftOut {
    fn add(&mut self, seq: u64) {
        if self.count == 0 {
            self.first = seq;
        }
        self.count += 1;
        self.last = seq;
    }
}

/// What reading back found: the notices to send, oldest first, and those left out.
#[derive(Debug, Default)]
struct Backlog {
    notices: VecDeque<(u64, Notice)>,
    too_old: LeftOut,
    too_many: LeftOut,
}

impl Backlog {
    /// The notices in `after + 1..=upto` no older than `oldest`, at most the newest `most`.
    fn read(
        dir: &Path,
        after: u64,
        upto: u64,
        oldest: OffsetDateTime,
        most: usize,
    ) -> Result<Backlog, String> {
        let mut backlog = Backlog::default();
        sink::read_back(dir, after, upto, |record| {
            let Some(notice) = notice_in(&record) else {
                return;
            };
            if notice.at < oldest {
                backlog.too_old.add(record.seq);
                return;
            }
            backlog.notices.push_back((record.seq, notice));
            if backlog.notices.len() > most
                && let Some((seq, _)) = backlog.notices.pop_front()
            {
                backlog.too_many.add(seq);
            }
        })?;
        Ok(backlog)
    }

    fn log_left_out(&self, hook: &Hook) {
        let Backlog {
            too_old, too_many, ..
        } = self;
        if too_old.count > 0 {
            tracing::warn!(
                url = %hook.url,
                left_out = too_old.count,
                first_seq = too_old.first,
                last_seq = too_old.last,
                "webhook: read back, notices older than {} are not sent (they stay in the trail)",
                crate::duration::human(hook.replay_within)
            );
        }
        if too_many.count > 0 {
            tracing::warn!(
                url = %hook.url,
                left_out = too_many.count,
                first_seq = too_many.first,
                last_seq = too_many.last,
                "webhook: read back, only the newest {} notices are sent (the rest stay in the trail)",
                hook.replay_max
            );
        }
    }
}

#[cfg(test)]
mod tests;
