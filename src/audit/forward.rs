//! Forwarding, one sink of the committed trail: after each committed batch, the writer hands
//! the exact lines it stored to a bounded queue, and a task POSTs them to a collector (a SIEM,
//! a log pipeline) as `application/x-ndjson`, signed like the webhooks
//! (`X-Sesame-Signature: sha256=<HMAC>`), retried on the sinks' one backoff
//! ([`sink::deliver`]). The trail stays the source of truth: the writer never waits on the
//! collector. When the queue is full or a delivery gives up, the records are counted as
//! dropped and logged with their seqs; the collector sees the gap in `seq` and anyone can fill
//! it from the trail.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::sink::{self, Backoff, Committed, Post};
use crate::http::HttpClient;
use crate::secret::Secret;

/// Batches waiting to be sent; past this, new ones are dropped (and counted).
const QUEUE: usize = 1024;
/// Batches waiting together are sent in one POST up to about this size.
const MAX_POST: usize = 4 * 1024 * 1024;

/// Where records go (`forward_url`, and the HMAC key from `forward_secret_file` or
/// `SESAME_AUDIT_FORWARD_SECRET`), and how a POST is retried.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub secret: Option<Secret>,
    /// Tries per POST, and the waits between them, before its records are dropped.
    pub backoff: Backoff,
}

impl Target {
    /// A target with the default retries: 1 s, doubling up to a minute, 8 tries (about two
    /// minutes).
    #[must_use]
    pub fn new(url: String, secret: Option<Secret>) -> Target {
        Target {
            url,
            secret,
            backoff: Backoff {
                first: Duration::from_secs(1),
                attempts: 8,
                max: Duration::from_mins(1),
            },
        }
    }
}

/// Counts since start, in records.
#[derive(Debug, Default)]
struct Counts {
    queued: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

/// How forwarding is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub forwarded: u64,
    pub dropped: u64,
    /// Queued or being sent.
    pub behind: u64,
}

/// The writer's side; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<Committed>,
    counts: Arc<Counts>,
}

impl Queue {
    /// Starts the delivery task on the current tokio runtime.
    pub fn start(target: Target) -> Result<Queue, String> {
        if !(target.url.starts_with("http://") || target.url.starts_with("https://")) {
            return Err(format!(
                "forward url {:?} must be http:// or https://",
                target.url
            ));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "forwarding needs a tokio runtime".to_owned())?;
        let client = crate::http::client()?;
        let (queue, rx) = Queue::with_capacity(QUEUE);
        runtime.spawn(deliver_all(rx, target, client, queue.counts.clone()));
        Ok(queue)
    }

    fn with_capacity(capacity: usize) -> (Queue, mpsc::Receiver<Committed>) {
        let (tx, rx) = mpsc::channel(capacity);
        let queue = Queue {
            tx,
            counts: Arc::default(),
        };
        (queue, rx)
    }

    /// Hands over a committed batch; never waits: a full queue drops it, counted and logged.
    pub fn push(&self, batch: &Committed) {
        let records = batch.count();
        self.counts.queued.fetch_add(records, Ordering::Relaxed);
        if self.tx.try_send(batch.clone()).is_err() {
            let dropped = self.counts.dropped.fetch_add(records, Ordering::Relaxed) + records;
            tracing::error!(
                first_seq = batch.first,
                last_seq = batch.last,
                dropped_total = dropped,
                "audit forwarding queue full: records not forwarded (they stay in the trail)"
            );
        }
    }

    #[must_use]
    pub fn stats(&self) -> Stats {
        let queued = self.counts.queued.load(Ordering::Relaxed);
        let forwarded = self.counts.forwarded.load(Ordering::Relaxed);
        let dropped = self.counts.dropped.load(Ordering::Relaxed);
        Stats {
            forwarded,
            dropped,
            behind: queued.saturating_sub(forwarded + dropped),
        }
    }
}

async fn deliver_all(
    mut rx: mpsc::Receiver<Committed>,
    target: Target,
    client: HttpClient,
    counts: Arc<Counts>,
) {
    while let Some(first) = rx.recv().await {
        // Catch up in fewer requests: whatever is already waiting goes along.
        let mut body = first.lines.to_vec();
        let (mut records, mut seqs) = (first.count(), (first.first, first.last));
        while body.len() < MAX_POST {
            let Ok(next) = rx.try_recv() else { break };
            body.extend_from_slice(&next.lines);
            records += next.count();
            seqs.1 = next.last;
        }
        let body = Bytes::from(body);
        let headers = target
            .secret
            .iter()
            .map(|s| {
                (
                    "x-sesame-signature",
                    crate::secret::signature(s.expose(), &body),
                )
            })
            .collect();
        let post = Post {
            what: "audit forwarding",
            url: &target.url,
            content_type: "application/x-ndjson",
            headers,
            body,
        };
        match sink::deliver(&client, &post, &target.backoff).await {
            Ok(()) => {
                counts.forwarded.fetch_add(records, Ordering::Relaxed);
            }
            Err(e) => {
                let dropped = counts.dropped.fetch_add(records, Ordering::Relaxed) + records;
                tracing::error!(
                    url = %target.url,
                    first_seq = seqs.0,
                    last_seq = seqs.1,
                    dropped_total = dropped,
                    error = %e,
                    "audit forwarding gave up: records not forwarded (they stay in the trail)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::receiver::Receiver;

    fn batch(seq: u64) -> Committed {
        Committed {
            lines: Bytes::from(format!("{{\"seq\":{seq}}}\n")),
            first: seq,
            last: seq,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (queue, _rx) = Queue::with_capacity(2);
        for seq in 1..=3 {
            queue.push(&batch(seq));
        }
        assert_eq!(
            queue.stats(),
            Stats {
                forwarded: 0,
                dropped: 1,
                behind: 2
            }
        );
    }

    #[tokio::test]
    async fn lines_arrive_as_signed_ndjson_after_a_retry() {
        let mut collector = Receiver::start(1);
        let mut target = Target::new(collector.url.clone(), Some(Secret::new("s3cret".into())));
        target.backoff.first = Duration::from_millis(10);
        let queue = Queue::start(target).unwrap();
        let lines = "{\"seq\":1}\n{\"seq\":2}\n";
        queue.push(&Committed {
            lines: Bytes::from_static(lines.as_bytes()),
            first: 1,
            last: 2,
        });
        let post = collector.next_taken().await;
        assert_eq!(post.header("content-type"), "application/x-ndjson");
        assert_eq!(post.body, lines.as_bytes());
        assert_eq!(
            post.header("x-sesame-signature"),
            crate::secret::signature("s3cret", lines.as_bytes())
        );
        // The count follows the collector's answer.
        for _ in 0..3000 {
            if queue.stats().forwarded == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            queue.stats(),
            Stats {
                forwarded: 2,
                dropped: 0,
                behind: 0
            }
        );
    }

    #[test]
    fn a_url_that_is_not_http_is_named() {
        let err = Queue::start(Target::new("ftp://x".into(), None))
            .err()
            .unwrap();
        assert!(err.contains("\"ftp://x\""), "{err}");
    }
}
