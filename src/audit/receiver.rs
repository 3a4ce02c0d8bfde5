//! A receiver for the sinks' tests, on a loopback port chosen at run time: it answers the
//! first `refuse` POSTs with 503 and the rest with 200, and keeps every POST it was sent
//! (when it arrived, the answer, the headers, the body), refused ones too.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// One POST the receiver was sent.
#[derive(Debug, Clone)]
pub(crate) struct Post {
    pub at: Instant,
    /// What it was answered: 503 or 200.
    pub status: u16,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Post {
    /// A header's value; empty when it was not sent.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

pub(crate) struct Receiver {
    pub url: String,
    posts: mpsc::UnboundedReceiver<Post>,
}

impl Receiver {
    pub(crate) fn start(refuse: usize) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, posts) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = HashMap::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
                    }
                }
                let length = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let (status, reason) = if i < refuse {
                    (503, "Busy")
                } else {
                    (200, "OK")
                };
                let post = Post {
                    at: Instant::now(),
                    status,
                    headers,
                    body,
                };
                if tx.send(post).is_err() {
                    return;
                }
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                );
            }
        });
        Receiver { url, posts }
    }

    /// The next POST it was sent, waiting up to 30 seconds for it.
    pub(crate) async fn next(&mut self) -> Post {
        tokio::time::timeout(Duration::from_secs(30), self.posts.recv())
            .await
            .expect("a POST within 30 s")
            .expect("the receiver runs")
    }

    /// The next POST it accepted (answered 200), passing over refused ones.
    pub(crate) async fn next_taken(&mut self) -> Post {
        loop {
            let post = self.next().await;
            if post.status == 200 {
                return post;
            }
        }
    }
}
