//! The policy both listeners (S3 and the control API) serve under: the accept loop, the
//! connection limit, header-read and idle timeouts, backoff on accept errors, and the drain
//! on shutdown.
//!
//! - **Connection limit.** A listener holds at most `max_connections` connections. Past that
//!   it does not accept: the next connection waits in the kernel's backlog, costing this
//!   process no descriptor and no memory, and is accepted as soon as one closes. Answering
//!   503 instead would spend a descriptor and a write on every excess connection, which is
//!   what a flood of them wants; the timeouts below bound how long any slot can be held by
//!   a client that sends nothing.
//! - **Header timeout.** A request head (request line and headers, at most 64 KiB) must
//!   arrive whole within `header_timeout` of the gateway starting to wait for it; otherwise
//!   the connection is closed. hyper starts this clock when a connection opens and again
//!   when a response ends, so a kept-alive connection waiting for its next request is
//!   closed after it too.
//! - **Idle timeout.** A connection on which no byte moves either way for `idle_timeout` is
//!   closed: a client that stops sending the body it announced, or stops reading a download.
//!   A backend that takes longer than this to start its answer is cut as well.
//! - **Accept errors.** Errors about one connection (reset or aborted before it was accepted)
//!   are skipped; any other (`EMFILE`, `ENFILE`, `ENOBUFS`) would repeat at once, so the
//!   loop waits, doubling from 5 ms to 1 s, and resets after a success.
//! - **Drain.** On [`Shutdown::begin`] the socket is closed (new connections are refused),
//!   each connection finishes the request in flight and closes instead of keeping alive,
//!   and after `drain_grace` whatever is still open (a long transfer) is cut.
//! - **TLS.** A listener given a TLS configuration ([`crate::tls`]) does the handshake in
//!   the connection's own task, under the header timeout (a client that opens a connection
//!   and says nothing is closed alike), and the idle timeout counts the encrypted bytes.
//!   A verified client certificate's names reach the handler in each request's extensions
//!   as [`crate::tls::ClientNames`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_mins(1);
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(10);
const PLAIN_TIMEOUT: Duration = Duration::from_mins(5);
/// The most a request head may take (hyper's own default is about 400 KiB), so that what
/// unauthenticated clients can make the gateway hold is at most this per connection: the
/// longest presigned URL and signed headers a real client sends fit many times over.
/// A longer head is answered 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How each listener treats its connections (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// Per listener.
    pub max_connections: usize,
    /// How long in-flight requests may run on after shutdown begins.
    pub drain_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            drain_grace: DEFAULT_DRAIN_GRACE,
        }
    }
}

/// Tells every listener it was given to to stop accepting and drain; cloned into each.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn begin(&self) {
        self.0.cancel();
    }

    async fn begun(&self) {
        self.0.cancelled().await;
    }
}

/// A bound socket with the policy it serves under.
pub struct Listener {
    pub socket: TcpListener,
    pub settings: Settings,
    pub shutdown: Shutdown,
    /// `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Listener {
    /// For loopback helpers that only the gateway itself connects to, such as the in-process
    /// directory backend: timeouts of five minutes, longer than the gateway's own connection
    /// pool keeps an idle connection, so the pool always lets go first and never sends a
    /// request on a connection closing under it; a shutdown nobody begins (they end when
    /// their task is dropped).
    #[must_use]
    pub fn plain(socket: TcpListener) -> Listener {
        Listener {
            socket,
            settings: Settings {
                header_timeout: PLAIN_TIMEOUT,
                idle_timeout: PLAIN_TIMEOUT,
                ..Settings::default()
            },
            shutdown: Shutdown::default(),
            tls: None,
        }
    }
}

/// Serves HTTP/1.1 on `listener` until its shutdown has begun and drained; `handler` gets
/// each request with the peer it came from. Dropping the future cuts every connection.
pub async fn serve<F, Fut, B>(listener: Listener, handler: F)
where
    F: Fn(SocketAddr, hyper::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<hyper::Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Listener {
        socket,
        settings,
        shutdown,
        tls,
    } = listener;
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let mut connections = JoinSet::new();
    let mut backoff = Backoff::default();
    loop {
        while let Some(ended) = connections.try_join_next() {
            if let Err(e) = ended {
                tracing::error!(error = %e, "a connection task failed");
            }
        }
        let slot = tokio::select! {
            biased;
            () = shutdown.begun() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            biased;
            () = shutdown.begun() => break,
            accepted = socket.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => {
                backoff.reset();
                conn
            }
            Err(e) => {
                if let Some(delay) = backoff.after(&e) {
                    tracing::warn!(error = %e, delay_ms = delay.as_millis(), "accept failed; waiting before the next accept");
                    tokio::select! {
                        () = shutdown.begun() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                continue;
            }
        };
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            connection(stream, peer, tls, handler, settings, &shutdown).await;
            drop(slot);
        });
    }
    drop(socket);
    drain(connections, settings.drain_grace).await;
}

/// Waits for the open connections to finish, for at most `grace`; cuts the rest.
async fn drain(mut connections: JoinSet<()>, grace: Duration) {
    let all_done = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all_done).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            grace_secs = grace.as_secs(),
            "connections still open at the end of the drain grace period are cut"
        );
        connections.abort_all();
    }
}

/// One connection: its TLS handshake when the listener has TLS, then HTTP.
async fn connection<F, Fut, B>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: F,
    settings: Settings,
    shutdown: &Shutdown,
) where
    F: Fn(SocketAddr, hyper::Request<Incoming>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<hyper::Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, %peer, "cannot set TCP_NODELAY");
    }
    let io = Idle::new(stream, settings.idle_timeout);
    let Some(acceptor) = tls else {
        return http(io, peer, None, handler, settings, shutdown).await;
    };
    let handshake = tokio::select! {
        () = shutdown.begun() => return,
        done = tokio::time::timeout(settings.header_timeout, acceptor.accept(io)) => done,
    };
    match handshake {
        Ok(Ok(io)) => {
            let names = crate::tls::ClientNames::of(io.get_ref().1.peer_certificates());
            http(io, peer, names, handler, settings, shutdown).await;
        }
        Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake not done within the header timeout"),
    }
}

/// HTTP/1.1 on one connection under the header and idle timeouts, closed gracefully on
/// shutdown; `names` (a verified client certificate's) go with every request.
async fn http<I, F, Fut, B>(
    io: I,
    peer: SocketAddr,
    names: Option<crate::tls::ClientNames>,
    handler: F,
    settings: Settings,
    shutdown: &Shutdown,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(SocketAddr, hyper::Request<Incoming>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<hyper::Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .max_header_size(MAX_HEAD_BYTES);
    let service = service_fn(move |mut req| {
        if let Some(names) = &names {
            req.extensions_mut().insert(names.clone());
        }
        handler(peer, req)
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = shutdown.begun() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}

/// The delay before the next accept after an error.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    /// `None` for an error about one connection only (accept again at once); else the wait.
    fn after(&mut self, e: &std::io::Error) -> Option<Duration> {
        use std::io::ErrorKind;
        if matches!(
            e.kind(),
            ErrorKind::ConnectionAborted
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionRefused
                | ErrorKind::Interrupted
        ) {
            return None;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        Some(delay)
    }

    fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

/// A stream that fails with `TimedOut` once no byte has moved either way for `limit`.
/// The timer is re-armed lazily: activity only records when it happened.
struct Idle<T> {
    io: T,
    limit: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> Idle<T> {
    fn new(io: T, limit: Duration) -> Self {
        let last = Instant::now();
        Idle {
            io,
            limit,
            last,
            timer: Box::pin(tokio::time::sleep_until(last + limit)),
        }
    }

    fn moved(&mut self) {
        self.last = Instant::now();
    }

    /// Called when the stream would wait: an error once the connection has been idle too
    /// long, else pending with the timer armed to wake this task.
    fn wait<R>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<R>> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = self.last + self.limit;
            if deadline <= Instant::now() {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no byte moved for {:?}: idle timeout", self.limit),
                )));
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending => this.wait(cx),
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Pending => this.wait(cx),
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.wait(cx),
            ready @ Poll::Ready(_) => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Real time with short limits: these wait for the stream's own timer, never sleep.

    #[tokio::test]
    async fn a_stream_with_no_bytes_moving_fails_after_the_idle_limit() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut idle = Idle::new(near, Duration::from_millis(200));
        let mut buf = [0u8; 8];
        far.write_all(b"x").await.unwrap();
        assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
        // Then nothing: the read fails, naming the timeout.
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "no byte moved for 200ms: idle timeout");
    }

    #[tokio::test]
    async fn a_reader_that_stops_reading_fails_the_writer_after_the_idle_limit() {
        let (near, _far) = tokio::io::duplex(4);
        let mut idle = Idle::new(near, Duration::from_millis(200));
        let err = idle.write_all(b"more than four bytes").await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    #[test]
    fn accept_errors_back_off_unless_they_concern_one_connection() {
        use std::io::{Error, ErrorKind};
        let mut backoff = Backoff::default();
        // A connection reset before it was accepted: accept the next one at once.
        assert_eq!(
            backoff.after(&Error::from(ErrorKind::ConnectionAborted)),
            None
        );
        // Out of descriptors (EMFILE): wait, doubling up to a second.
        let emfile = Error::from_raw_os_error(24);
        let delays: Vec<_> = (0..10).filter_map(|_| backoff.after(&emfile)).collect();
        assert_eq!(delays[0], Duration::from_millis(5));
        assert_eq!(delays[1], Duration::from_millis(10));
        assert_eq!(*delays.last().unwrap(), Duration::from_secs(1));
        // A success starts over.
        backoff.reset();
        assert_eq!(backoff.after(&emfile), Some(Duration::from_millis(5)));
    }

    #[tokio::test]
    async fn the_drain_cuts_what_is_still_open_at_the_end_of_the_grace_period() {
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let shutdown = Shutdown::default();
        let settings = Settings {
            drain_grace: Duration::from_millis(200),
            ..Settings::default()
        };
        let listener = Listener {
            socket,
            settings,
            shutdown: shutdown.clone(),
            tls: None,
        };
        // A handler that says it was reached, then never answers: the request stays in flight.
        let reached = Arc::new(tokio::sync::Notify::new());
        let handler = {
            let reached = reached.clone();
            move |_, _| {
                reached.notify_one();
                std::future::pending::<Result<hyper::Response<String>, Infallible>>()
            }
        };
        let served = tokio::spawn(serve(listener, handler));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        reached.notified().await;
        shutdown.begin();
        // The listener returns once the grace period has cut the request in flight.
        served.await.unwrap();
        let mut rest = Vec::new();
        let read = client.read_to_end(&mut rest).await;
        assert!(read.is_err() || rest.is_empty(), "{read:?} {rest:?}");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
