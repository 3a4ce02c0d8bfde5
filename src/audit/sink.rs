//! Sinks of the committed trail. After each batch is durable, the writer hands its stored
//! lines to every tap (the forwarder, each webhook, an embedder's channel) without waiting on
//! any of them, so nothing reaches a sink that the trail does not hold and no sink slows the
//! trail. A sink that must carry on across restarts keeps a [`Cursor`] (the last seq it
//! handled, in a small file beside the trail) and reads what it has not handled back from the
//! files ([`read_back`]). The outgoing sinks deliver with [`deliver`]: one POST, retried on
//! one [`Backoff`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use super::chain::Record;
use super::files;
use crate::http::HttpClient;

/// One committed batch: its lines exactly as stored, each ending in a newline, for the
/// records `first..=last` (checkpoints included).
#[derive(Debug, Clone)]
pub struct Committed {
    pub lines: Bytes,
    pub first: u64,
    pub last: u64,
}

impl Committed {
    /// How many records it holds.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.last + 1 - self.first
    }

    /// Its records of one `kind` (`lifecycle`), parsed. Stored lines are canonical, so each
    /// is first looked at for the tag and only those carrying it are parsed: a sink that
    /// wants lifecycle events does not parse a busy trail's S3 records. A line this build
    /// cannot read (it wrote them all) is logged and left out.
    #[must_use]
    pub fn records_of_kind(&self, kind: &str) -> Vec<Record> {
        let tag = format!("\"kind\":\"{kind}\"");
        String::from_utf8_lossy(&self.lines)
            .lines()
            .filter(|line| line.contains(&tag))
            .filter_map(|line| match Record::parse(line) {
                Ok(record) => Some(record),
                Err(e) => {
                    tracing::error!(error = %e, "a committed line cannot be read back");
                    None
                }
            })
            .filter(|record| record.body.kind.name() == kind)
            .collect()
    }
}

/// Hears of each committed batch, on the writer thread, so it must never wait; it answers
/// whether it wants the next one (a sink that has stopped says no and is forgotten).
pub type Tap = Box<dyn FnMut(&Committed) -> bool + Send>;

/// Where the writer publishes committed batches: the seq of the last committed record, and
/// the taps. Both change under one lock, so a tap added after a batch never misses the next
/// one and every batch it misses is at or before the seq it was told.
pub(super) struct Taps(Mutex<Published>);

struct Published {
    committed: u64,
    taps: Vec<Tap>,
}

impl Taps {
    pub(super) fn new(committed: u64) -> Taps {
        Taps(Mutex::new(Published {
            committed,
            taps: Vec::new(),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Called by the writer once `batch` is durable.
    pub(super) fn publish(&self, batch: &Committed) {
        let mut published = self.lock();
        published.committed = batch.last;
        published.taps.retain_mut(|tap| tap(batch));
    }

    /// Adds a tap for every batch committed from now on; the seq of the last record
    /// committed before it.
    pub(super) fn add(&self, tap: Tap) -> u64 {
        let mut published = self.lock();
        published.taps.push(tap);
        published.committed
    }

    pub(super) fn committed(&self) -> u64 {
        self.lock().committed
    }
}

/// Each record with a seq in `after + 1..=upto`, in order, from the trail files in `dir`
/// (across rotations). Files that end before `after` are skipped unread (the first line of
/// the file after says so), and nothing past `upto` is read, so a batch the writer is still
/// writing is never looked at. Used after a restart or a gap, by sinks that keep a cursor.
pub fn read_back(
    dir: &Path,
    after: u64,
    upto: u64,
    mut f: impl FnMut(Record),
) -> Result<(), String> {
    use std::io::BufRead as _;
    if upto <= after {
        return Ok(());
    }
    let files = files::list(dir)?;
    let open = |file: &files::TrailFile| {
        std::fs::File::open(&file.path)
            .map(std::io::BufReader::new)
            .map_err(|e| format!("{}: {e}", file.path.display()))
    };
    let first_seq = |file: &files::TrailFile| -> Result<Option<u64>, String> {
        let mut line = String::new();
        open(file)?
            .read_line(&mut line)
            .map_err(|e| format!("{}: {e}", file.path.display()))?;
        Ok(Record::parse(line.trim_end()).ok().map(|r| r.seq))
    };
    let mut start = 0;
    for (i, next) in files.iter().enumerate().skip(1) {
        match first_seq(next)? {
            Some(seq) if seq <= after + 1 => start = i,
            _ => break,
        }
    }
    for file in &files[start..] {
        for line in open(file)?.lines() {
            let line = line.map_err(|e| format!("{}: {e}", file.path.display()))?;
            let record = Record::parse(&line).map_err(|e| format!("{}: {e}", file.name()))?;
            if record.seq > after {
                let seq = record.seq;
                f(record);
                if seq >= upto {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// The last seq a sink handled, kept in `<trail folder>/<name>.cursor` and replaced
/// atomically, so after a crash it says where the sink had got to (or a little before).
#[derive(Debug, Clone)]
pub struct Cursor {
    dir: PathBuf,
    name: String,
}

impl Cursor {
    #[must_use]
    pub fn new(dir: &Path, name: &str) -> Cursor {
        Cursor {
            dir: dir.to_owned(),
            name: format!("{name}.cursor"),
        }
    }

    /// The seq stored; `None` when there is no cursor yet.
    pub fn load(&self) -> Result<Option<u64>, String> {
        let path = self.dir.join(&self.name);
        match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| format!("{}: not a seq: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    pub fn store(&self, seq: u64) -> Result<(), String> {
        files::replace(&self.dir, &self.name, format!("{seq}\n").as_bytes())
            .map_err(|e| format!("{}: {e}", self.dir.join(&self.name).display()))
    }
}

/// How a delivery is retried: the first retry waits `first`, each next one twice as long up
/// to `max`, for `attempts` tries in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub attempts: u32,
    pub max: Duration,
}

impl Backoff {
    /// The waits between attempts, one fewer than the attempts (at least one attempt).
    pub fn delays(&self) -> impl Iterator<Item = Duration> {
        let max = self.max;
        std::iter::successors(Some(self.first.min(max)), move |d| {
            Some(d.saturating_mul(2).min(max))
        })
        .take(self.attempts.max(1) as usize - 1)
    }
}

/// One POST to a sink's receiver.
#[derive(Debug, Clone)]
pub struct Post<'a> {
    /// Who sends it, for the log: `audit forwarding`, `webhook`.
    pub what: &'static str,
    pub url: &'a str,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

/// One attempt may take this long before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `post` until the receiver answers 2xx, waiting out `backoff` between attempts; the
/// last error when every attempt failed. Each failed attempt is logged.
pub async fn deliver(
    client: &HttpClient,
    post: &Post<'_>,
    backoff: &Backoff,
) -> Result<(), String> {
    let mut delays = backoff.delays();
    let mut attempt = 1;
    loop {
        let error = match attempt_once(client, post).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let Some(delay) = delays.next() else {
            return Err(error);
        };
        tracing::warn!(
            what = post.what,
            %error,
            attempt,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "delivery failed; will retry"
        );
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

async fn attempt_once(client: &HttpClient, post: &Post<'_>) -> Result<(), String> {
    let mut req =
        hyper::Request::post(post.url).header(hyper::header::CONTENT_TYPE, post.content_type);
    for (name, value) in &post.headers {
        req = req.header(*name, value);
    }
    let req = req
        .body(Full::new(post.body.clone()))
        .map_err(|e| format!("{}: {e}", post.url))?;
    match tokio::time::timeout(TIMEOUT, client.request(req)).await {
        Ok(Ok(res)) if res.status().is_success() => Ok(()),
        Ok(Ok(res)) => Err(format!("{} answered {}", post.url, res.status())),
        Ok(Err(e)) => Err(format!("{}: {e}", post.url)),
        Err(_) => Err(format!(
            "{}: no answer within {}s",
            post.url,
            TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::receiver::Receiver;
    use crate::audit::tests::writer;
    use crate::record::note;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_double_from_the_first_up_to_the_most_and_one_fewer_than_the_attempts() {
        let backoff = Backoff {
            first: ms(100),
            attempts: 6,
            max: ms(500),
        };
        let delays: Vec<Duration> = backoff.delays().collect();
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        let once = Backoff {
            attempts: 0,
            ..backoff
        };
        assert_eq!(once.delays().count(), 0, "zero attempts still make one");
    }

    #[tokio::test]
    async fn a_post_is_retried_on_the_backoff_until_it_is_taken() {
        let mut receiver = Receiver::start(2);
        let backoff = Backoff {
            first: ms(40),
            attempts: 4,
            max: ms(1000),
        };
        let client = crate::http::client().unwrap();
        let url = receiver.url.clone();
        let post = Post {
            what: "test",
            url: &url,
            content_type: "text/plain",
            headers: vec![("x-sesame-event", "e".into())],
            body: Bytes::from_static(b"hello"),
        };
        deliver(&client, &post, &backoff).await.unwrap();
        let posts = [
            receiver.next().await,
            receiver.next().await,
            receiver.next().await,
        ];
        assert_eq!(posts.each_ref().map(|p| p.status), [503, 503, 200]);
        assert!(posts.iter().all(|p| p.body == b"hello"
            && p.header("content-type") == "text/plain"
            && p.header("x-sesame-event") == "e"));
        // The waits between the attempts are the backoff's: 40 ms, then 80 ms.
        assert!(posts[1].at - posts[0].at >= ms(40));
        assert!(posts[2].at - posts[1].at >= ms(80));

        let refused = Receiver::start(usize::MAX);
        let post = Post {
            url: &refused.url,
            ..post
        };
        let err = deliver(
            &client,
            &post,
            &Backoff {
                attempts: 2,
                ..backoff
            },
        )
        .await
        .unwrap_err();
        assert!(err.contains("answered 503"), "{err}");
    }

    #[test]
    fn the_writer_hands_on_each_committed_batch_and_its_records_are_read_by_kind() {
        let root = tempfile::tempdir().unwrap();
        let mut w = writer(&root.path().join("audit"), u64::MAX);
        let (tx, rx) = std::sync::mpsc::channel();
        assert_eq!(
            w.taps
                .add(Box::new(move |batch| tx.send(batch.clone()).is_ok())),
            0
        );
        let u = crate::record::examples::Use {
            at: time::macros::datetime!(2026-11-29 10:00 UTC),
            op: "GetObject",
            principal: "alice",
            grant: "g-1",
            bucket: "data",
            key: "a",
        };
        let bodies = [crate::record::examples::decision(u, true), note("reloaded")];
        w.commit(bodies.iter().map(crate::record::Body::canonical).collect())
            .unwrap();
        let batch = rx.try_recv().unwrap();
        assert_eq!((batch.first, batch.last, batch.count()), (1, 2, 2));
        assert_eq!(w.taps.committed(), 2);
        let seqs =
            |kind| -> Vec<u64> { batch.records_of_kind(kind).iter().map(|r| r.seq).collect() };
        assert_eq!((seqs("lifecycle"), seqs("s3")), (vec![2], vec![1]));
        assert_eq!(
            std::str::from_utf8(&batch.lines).unwrap(),
            std::fs::read_to_string(&w.current.path).unwrap()
        );
    }

    #[test]
    fn a_cursor_is_absent_then_holds_the_last_seq_stored() {
        let dir = tempfile::tempdir().unwrap();
        let cursor = Cursor::new(dir.path(), "webhook-1");
        assert_eq!(cursor.load(), Ok(None));
        cursor.store(7).unwrap();
        cursor.store(42).unwrap();
        assert_eq!(cursor.load(), Ok(Some(42)));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("webhook-1.cursor")).unwrap(),
            "42\n"
        );
        std::fs::write(dir.path().join("webhook-1.cursor"), "x").unwrap();
        assert!(cursor.load().unwrap_err().contains("not a seq"));
    }

    #[test]
    fn read_back_goes_across_rotations_from_after_the_cursor_up_to_the_committed_seq() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("audit");
        // Rotating past every batch: three records to a file.
        let mut w = writer(&dir, 1);
        let bodies = |from: usize| {
            (from..from + 3)
                .map(|i| note(format!("record {i}")).canonical())
                .collect()
        };
        for batch in 0..4 {
            w.commit(bodies(batch * 3)).unwrap();
            w.rotate_if_full();
        }
        assert_eq!(files::list(&dir).unwrap().len(), 4);
        // A line the writer is still writing, past what was committed.
        super::super::writer::append_to(&w.current.path, b"{\"seq\":13,\"prev\":").unwrap();
        let seqs = |after, upto| {
            let mut seqs = Vec::new();
            read_back(&dir, after, upto, |r| seqs.push(r.seq)).unwrap();
            seqs
        };
        assert_eq!(seqs(4, 8), [5, 6, 7, 8]);
        assert_eq!(seqs(9, 12), [10, 11, 12]);
        assert_eq!(seqs(11, 12), [12]);
        assert_eq!(seqs(0, 2), [1, 2]);
        assert_eq!(seqs(12, 12), Vec::<u64>::new());
        // The files before the one holding seq 7 are not read: a damaged one is not noticed.
        std::fs::write(dir.join(files::name(1)), "damaged\n").unwrap();
        assert_eq!(seqs(6, 7), [7]);
    }
}
