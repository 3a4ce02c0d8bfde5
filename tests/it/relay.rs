//! A recording hop: an HTTP relay of the test's own between the gateway and the real
//! backend. It forwards every request unchanged (signatures stay valid: the backend checks
//! them against the same host header the gateway signed) and logs what it forwarded, headers
//! included, so a test can prove that a request Sesame refused never reached the backend, and
//! see what the backend was asked for (the copy source, say) by one it let through.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::harness::{BackendKind, Ctx};

impl Ctx {
    /// A gateway that reaches its backend through a recording relay.
    pub async fn start_with_relay(kind: BackendKind) -> Ctx {
        Ctx::start_with(kind, None, None, true).await
    }

    /// Every request the relay forwarded to the backend so far.
    pub fn backend_requests(&self) -> Vec<Forwarded> {
        self.relay().requests()
    }

    /// Like [`Ctx::backend_requests`], and starts the log afresh.
    pub fn take_backend_requests(&self) -> Vec<Forwarded> {
        self.relay().take()
    }

    fn relay(&self) -> &Relay {
        self.relay
            .as_ref()
            .expect("no relay: start the context with Ctx::start_with_relay")
    }
}

/// One request the relay forwarded to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub method: String,
    pub path: String,
    /// The raw query string, empty when there is none.
    pub query: String,
    /// Every header as sent (names in lower case), in order.
    pub headers: Vec<(String, String)>,
}

impl Forwarded {
    /// Whether the raw query carries `name=value` (as sent, still percent-encoded).
    pub fn has_param(&self, name: &str, value: &str) -> bool {
        self.query
            .split('&')
            .any(|pair| pair.split_once('=') == Some((name, value)))
    }

    /// The first value of header `name` (lower case), as sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Log = Arc<Mutex<Vec<Forwarded>>>;

/// A running relay; dropping it stops accepting connections.
pub struct Relay {
    /// Where the gateway should find "the backend".
    pub url: String,
    log: Log,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts a relay to `backend` (an `http://host:port` URL) on a loopback port chosen now.
    pub async fn start(backend: &str) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("relay binds a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Log::default();
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build_http();
        let backend: Arc<str> = backend.trim_end_matches('/').into();
        let kept = log.clone();
        let handler = move |_, req: hyper::Request<Incoming>| {
            let (client, backend, log) = (client.clone(), backend.clone(), kept.clone());
            async move { Ok::<_, Infallible>(forward(&client, &backend, &log, req).await) }
        };
        let task = tokio::spawn(sesame::listen::serve(
            sesame::listen::Listener::plain(listener),
            handler,
        ));
        Relay { url, log, task }
    }

    /// Every request forwarded so far, oldest first.
    pub fn requests(&self) -> Vec<Forwarded> {
        self.log.lock().unwrap().clone()
    }

    /// Every request forwarded so far, and an empty log from now on.
    pub fn take(&self) -> Vec<Forwarded> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Logs the request, then sends it on as it came; a backend that cannot be reached is a 502.
async fn forward(
    client: &Client<HttpConnector, Incoming>,
    backend: &str,
    log: &Log,
    mut req: hyper::Request<Incoming>,
) -> hyper::Response<Either<Incoming, Empty<Bytes>>> {
    let uri = req.uri();
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let target = format!("{backend}{path_and_query}");
    log.lock().unwrap().push(Forwarded {
        method: req.method().to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_owned(), value)
            })
            .collect(),
    });
    *req.uri_mut() = target.parse().expect("backend URL and request path");
    match client.request(req).await {
        Ok(res) => res.map(Either::Left),
        Err(e) => {
            eprintln!("relay: {target}: {e}");
            hyper::Response::builder()
                .status(hyper::StatusCode::BAD_GATEWAY)
                .body(Either::Right(Empty::new()))
                .unwrap()
        }
    }
}
