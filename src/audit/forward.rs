//! Forwarding: after each committed batch, the writer hands the exact lines it stored to a
//! bounded queue, and a task POSTs them to a collector (a SIEM, a log pipeline) as
//! `application/x-ndjson`, signed like the webhooks (`X-Sesame-Signature: sha256=<HMAC>`).
//! The trail stays the source of truth: the writer never waits on the collector. When the
//! queue is full or a delivery gives up, the records are counted as dropped and logged with
//! their seqs; the collector sees the gap in `seq` and anyone can fill it from the trail.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::sync::mpsc;

use crate::http::HttpClient;
use crate::secret::Secret;

/// Batches waiting to be sent; past this, new ones are dropped (and counted).
const QUEUE: usize = 1024;
/// Batches waiting together are sent in one POST up to about this size.
const MAX_POST: usize = 4 * 1024 * 1024;
/// One POST may take this long before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_mins(1);

/// Where records go (`forward_url`, and the HMAC key from `forward_secret_file` or
/// `SESAME_AUDIT_FORWARD_SECRET`).
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub secret: Option<Secret>,
    /// The first retry waits this long; each next one twice as long, up to a minute.
    pub first_retry: Duration,
    /// Tries per POST before its records are dropped.
    pub attempts: u32,
}

impl Target {
    /// A target with the default retries: 1 s, doubling, 8 tries (about two minutes).
    #[must_use]
    pub fn new(url: String, secret: Option<Secret>) -> Target {
        Target {
            url,
            secret,
            first_retry: Duration::from_secs(1),
            attempts: 8,
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

/// Stored lines of one committed batch.
struct Batch {
    lines: Bytes,
    records: u64,
    /// First and last seq, for the log when they are dropped.
    seqs: (u64, u64),
}

/// The writer's side; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<Batch>,
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

    fn with_capacity(capacity: usize) -> (Queue, mpsc::Receiver<Batch>) {
        let (tx, rx) = mpsc::channel(capacity);
        let queue = Queue {
            tx,
            counts: Arc::default(),
        };
        (queue, rx)
    }

    /// Hands over the lines of a committed batch (`records` records, seqs `first..=last`);
    /// never waits: a full queue drops them, counted and logged.
    pub fn push(&self, lines: String, records: u64, seqs: (u64, u64)) {
        self.counts.queued.fetch_add(records, Ordering::Relaxed);
        let batch = Batch {
            lines: Bytes::from(lines),
            records,
            seqs,
        };
        if self.tx.try_send(batch).is_err() {
            let dropped = self.counts.dropped.fetch_add(records, Ordering::Relaxed) + records;
            tracing::error!(
                first_seq = seqs.0,
                last_seq = seqs.1,
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
    mut rx: mpsc::Receiver<Batch>,
    target: Target,
    client: HttpClient,
    counts: Arc<Counts>,
) {
    while let Some(first) = rx.recv().await {
        // Catch up in fewer requests: whatever is already waiting goes along.
        let mut body = first.lines.to_vec();
        let (mut records, mut seqs) = (first.records, first.seqs);
        while body.len() < MAX_POST {
            let Ok(next) = rx.try_recv() else { break };
            body.extend_from_slice(&next.lines);
            records += next.records;
            seqs.1 = next.seqs.1;
        }
        match deliver(&client, &target, Bytes::from(body)).await {
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

/// POSTs `body`, retrying with doubling delays; the last error when every attempt failed.
async fn deliver(client: &HttpClient, target: &Target, body: Bytes) -> Result<(), String> {
    let signature = target
        .secret
        .as_ref()
        .map(|s| crate::secret::signature(s.expose(), &body));
    let mut delay = target.first_retry;
    let mut last = String::new();
    for attempt in 1..=target.attempts.max(1) {
        let mut req = hyper::Request::post(&target.url)
            .header(hyper::header::CONTENT_TYPE, "application/x-ndjson");
        if let Some(signature) = &signature {
            req = req.header("x-sesame-signature", signature);
        }
        let req = req
            .body(Full::new(body.clone()))
            .map_err(|e| format!("{}: {e}", target.url))?;
        last = match tokio::time::timeout(TIMEOUT, client.request(req)).await {
            Ok(Ok(res)) if res.status().is_success() => return Ok(()),
            Ok(Ok(res)) => format!("{} answered {}", target.url, res.status()),
            Ok(Err(e)) => format!("{}: {e}", target.url),
            Err(_) => format!("{}: no answer within {}s", target.url, TIMEOUT.as_secs()),
        };
        tracing::warn!(error = %last, attempt, "audit forwarding failed; will retry");
        if attempt < target.attempts {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (queue, _rx) = Queue::with_capacity(2);
        for seq in 1..=3 {
            queue.push(format!("{{\"seq\":{seq}}}\n"), 1, (seq, seq));
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

    /// A collector on a free loopback port: refuses the first POST with 503, then keeps
    /// (content type, signature, body) of each.
    fn collector() -> (String, std::sync::mpsc::Receiver<(String, String, Vec<u8>)>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ingest", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut length, mut kind, mut signature) = (0, String::new(), String::new());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "content-type" => value.trim().clone_into(&mut kind),
                        "x-sesame-signature" => value.trim().clone_into(&mut signature),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let status = if i == 0 { "503 Busy" } else { "200 OK" };
                if i > 0 {
                    let _ = tx.send((kind, signature, body));
                }
                let _ = stream.write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        (url, rx)
    }

    #[tokio::test]
    async fn lines_arrive_as_signed_ndjson_after_a_retry() {
        let (url, received) = collector();
        let mut target = Target::new(url, Some(Secret::new("s3cret".into())));
        target.first_retry = Duration::from_millis(10);
        let queue = Queue::start(target).unwrap();
        let lines = "{\"seq\":1}\n{\"seq\":2}\n".to_owned();
        queue.push(lines.clone(), 2, (1, 2));
        let (kind, signature, body) =
            tokio::task::spawn_blocking(move || received.recv_timeout(Duration::from_secs(30)))
                .await
                .unwrap()
                .expect("a delivery");
        assert_eq!(kind, "application/x-ndjson");
        assert_eq!(body, lines.as_bytes());
        assert_eq!(
            signature,
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
