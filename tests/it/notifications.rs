//! Webhooks: every lifecycle event delivered, signed, and retried when the receiver fails.

use std::path::Path;

use crate::harness::ServeProcess;
use crate::workflow::{add_user, json};

/// (event, signature, body) of each accepted delivery.
type Deliveries = std::sync::Arc<std::sync::Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A webhook receiver on a free loopback port: answers 500 to the very first delivery (to
/// exercise retries) and 200 after, keeping every (event, signature, body) it accepted.
fn webhook_receiver() -> (String, Deliveries) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = received.clone();
    std::thread::spawn(move || {
        let mut first = true;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut event, mut signature) = (0usize, String::new(), String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "x-sesame-event" => value.trim().clone_into(&mut event),
                    "x-sesame-signature" => value.trim().clone_into(&mut signature),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = if first {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            if !first {
                keep.lock().unwrap().push((event, signature, body));
            }
            first = false;
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (url, received)
}

#[test]
fn webhooks_are_signed_retried_and_cover_the_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let (url, received) = webhook_receiver();
    let config = dir.path().join("sesame.toml");
    std::fs::write(
        &config,
        format!("[[webhook]]\nurl = \"{url}\"\nsecret = \"hook-secret\"\nfirst_retry_ms = 20\n"),
    )
    .unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples");
    let server = ServeProcess::start(
        &dir.path().join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--backend",
            objects.to_str().unwrap(),
            "--policies",
            policies.to_str().unwrap(),
        ],
        &[],
    );
    let ann = add_user(&server, "ann", "analysts");
    let alice = add_user(&server, "alice", "data-eng");
    let bob = add_user(&server, "bob", "hr-approvers");
    // A 5-minute grant is already within ten minutes of its end: "expiring soon" at once.
    let out = server.cli_as(
        &ann,
        &[
            "request",
            "s3://analytics/",
            "--read",
            "--for",
            "5m",
            "--json",
        ],
    );
    let grant = json(&out.ok().stdout)["grant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = server.cli_as(
        &alice,
        &[
            "request",
            "s3://hr-data/payroll/",
            "--read",
            "--for",
            "1h",
            "--why",
            "INC-3",
            "--json",
        ],
    );
    let id = json(&out.ok().stdout)["id"].as_str().unwrap().to_owned();
    server
        .cli_as(&bob, &["deny", &id, "--why", "no incident"])
        .ok();
    server.cli(&["revoke", &grant]).ok();

    let wanted = [
        "request.created",
        "request.approved",
        "grant.expiring_soon",
        "request.denied",
        "grant.revoked",
    ];
    let events = crate::garage::readiness_poll("webhook deliveries", || {
        let got = received.lock().unwrap().clone();
        wanted
            .iter()
            .all(|w| got.iter().any(|(e, _, _)| e == w))
            .then_some(got)
    });
    for (event, signature, body) in &events {
        assert_eq!(
            signature,
            &sesame::notify::signature("hook-secret", body),
            "{event} is signed"
        );
        let payload = json(std::str::from_utf8(body).unwrap());
        assert_eq!(payload["event"], event.as_str());
    }
    let denied = events
        .iter()
        .find(|(e, _, _)| e == "request.denied")
        .unwrap();
    assert!(
        std::str::from_utf8(&denied.2)
            .unwrap()
            .contains("denied by bob: no incident")
    );
}
