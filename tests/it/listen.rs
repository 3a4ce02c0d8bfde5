//! The listeners under hostile or ending connections, against `sesame serve` as a process:
//! a half-sent request head is closed after the header timeout, connections over the limit
//! wait without breaking the gateway, an anonymous form POST is refused from its headers
//! before its body is held, and SIGTERM drains a download in flight then exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::harness::{ServeProcess, credential_from_json, sdk_config};

/// A gateway on the embedded directory backend with `env` set, and its S3 `host:port`.
fn serve(dir: &Path, env: &[(&str, &str)]) -> (ServeProcess, String) {
    let objects = dir.join("objects");
    std::fs::create_dir_all(objects.join("bkt")).unwrap();
    let server = ServeProcess::start(
        &dir.join("data"),
        &["--backend", objects.to_str().unwrap()],
        env,
    );
    let addr = server.s3_url.trim_start_matches("http://").to_owned();
    (server, addr)
}

/// Reads until the peer closes; `Err` names what happened if it did not within `within`.
fn read_until_closed(socket: &mut TcpStream, within: Duration) -> Result<Vec<u8>, String> {
    socket.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e) => return Err(format!("{e} after {} byte(s)", got.len())),
        }
    }
}

/// The response head (through the blank line), read within `within`.
fn read_head(socket: &mut TcpStream, within: Duration) -> String {
    socket.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match socket.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => got.push(byte[0]),
            Err(e) => panic!(
                "no response head within {within:?} ({e}); got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn a_half_sent_request_head_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (server, s3) = serve(dir.path(), &[("SESAME_LISTEN_HEADER_TIMEOUT", "1s")]);
    let api = std::fs::read_to_string(server.data_dir.join("api.url")).unwrap();
    let api = api.trim().trim_start_matches("http://");
    for (listener, addr) in [("S3", s3.as_str()), ("control API", api)] {
        let mut socket = TcpStream::connect(addr).unwrap();
        // A slowloris client: the request line and half a header, then nothing.
        socket
            .write_all(b"GET /v1/health HTTP/1.1\r\nHost: sesame\r\nX-Half: ")
            .unwrap();
        let got = read_until_closed(&mut socket, Duration::from_secs(20)).unwrap_or_else(|e| {
            panic!(
                "the {listener} listener still held a half-sent request head after 20 s ({e}); the header timeout is 1 s"
            )
        });
        let got = String::from_utf8_lossy(&got);
        assert!(
            !got.starts_with("HTTP/1.1 2"),
            "the {listener} listener answered half a request as a whole one: {got:?}"
        );
    }
}

#[test]
fn connections_over_the_limit_wait_and_are_served_once_others_close() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(
        dir.path(),
        &[
            ("SESAME_LISTEN_MAX_CONNECTIONS", "4"),
            ("SESAME_LISTEN_HEADER_TIMEOUT", "5m"),
        ],
    );
    // Four connections that send nothing take every slot.
    let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Four more, each with a whole request: over the limit, so not accepted yet.
    let request = b"GET /bkt/ HTTP/1.1\r\nHost: sesame\r\nConnection: close\r\n\r\n";
    let mut waiting: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(request).unwrap();
            s
        })
        .collect();
    waiting[0]
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    if let Ok(n) = waiting[0].read(&mut byte) {
        panic!(
            "a fifth connection was served ({n} byte(s)) while four held the limit of 4 connections"
        );
    }
    drop(held);
    // Every waiting request is answered once the slots are free: an S3 error for anonymous.
    for socket in &mut waiting {
        let got = read_until_closed(socket, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("a waiting connection got no answer once slots freed: {e}"));
        let got = String::from_utf8_lossy(&got);
        assert!(got.starts_with("HTTP/1.1 403"), "{got:?}");
    }
    // And the gateway still serves new connections.
    let mut fresh = TcpStream::connect(&addr).unwrap();
    fresh.write_all(request).unwrap();
    let got = read_until_closed(&mut fresh, Duration::from_secs(20)).unwrap();
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 403"));
}

#[test]
fn an_anonymous_form_post_is_refused_from_its_headers_before_its_body_is_held() {
    const FILE: usize = 64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = serve(dir.path(), &[]);
    let boundary = "sesame-form-boundary";
    let fields = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nbig.bin\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let head = |expect: &str| {
        format!(
            "POST /bkt HTTP/1.1\r\nHost: sesame\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\n\
             Content-Length: {}\r\n{expect}\r\n",
            fields.len() + FILE + tail.len()
        )
    };
    let baseline = server.peak_rss_kib();

    // A client that sends the whole body without waiting: the gateway must not hold it.
    let mut socket = TcpStream::connect(&addr).unwrap();
    socket
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let sent = socket
        .write_all(head("").as_bytes())
        .and_then(|()| socket.write_all(fields.as_bytes()))
        .and_then(|()| (0..FILE / chunk.len()).try_for_each(|_| socket.write_all(&chunk)))
        .and_then(|()| socket.write_all(tail.as_bytes()));
    // Refused part-way, the write fails: the gateway closed its side.
    drop(sent);
    drop(read_until_closed(&mut socket, Duration::from_secs(20)));
    let grown_mib = server.peak_rss_kib().saturating_sub(baseline) / 1024;
    assert!(
        grown_mib < 32,
        "an anonymous 64 MiB form POST grew the gateway's peak RSS by {grown_mib} MiB"
    );

    // A client that waits for `100 Continue` gets the refusal instead: nothing of the body
    // was asked for.
    let mut socket = TcpStream::connect(&addr).unwrap();
    socket
        .write_all(head("Expect: 100-continue\r\n").as_bytes())
        .unwrap();
    let answer = read_head(&mut socket, Duration::from_secs(20));
    assert!(
        answer.starts_with("HTTP/1.1 501"),
        "a form POST should be refused from its headers, before its body is asked for; the gateway answered {answer:?}"
    );
    let body = read_until_closed(&mut socket, Duration::from_secs(20)).unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("<Code>NotImplemented</Code>"), "{body}");
    assert!(
        body.contains("form POST uploads (multipart/form-data) are not accepted"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_lets_a_download_finish_and_exits_zero() {
    const SIZE: usize = 32 << 20;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("objects/bkt")).unwrap();
    let object: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("objects/bkt/big.bin"), &object).unwrap();
    let (mut server, addr) = serve(dir.path(), &[("SESAME_LISTEN_DRAIN_GRACE", "1m")]);
    let out = server.cli(&[
        "grant",
        "create",
        "s3://bkt/",
        "--to",
        "alice",
        "--actions",
        "read",
        "--for",
        "30m",
        "--format",
        "json",
    ]);
    let cred = credential_from_json(&out.ok().stdout);
    let client = aws_sdk_s3::Client::from_conf(sdk_config(&server.s3_url, &cred).build());

    let got = client
        .get_object()
        .bucket("bkt")
        .key("big.bin")
        .send()
        .await
        .expect("download starts");
    let mut body = got.body;
    let mut received = body.next().await.expect("a first chunk").unwrap().to_vec();

    let term = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // New connections are refused while the download is still in flight.
    crate::harness::readiness_poll_async("the S3 listener refusing after SIGTERM", || async {
        match tokio::net::TcpStream::connect(&addr).await {
            Err(_) => Ok(()),
            Ok(_) => Err("it still accepts connections".to_owned()),
        }
    })
    .await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "sesame serve ended with a download in flight instead of draining it"
    );

    while let Some(chunk) = body.next().await {
        received.extend_from_slice(&chunk.expect("the download finishes after SIGTERM"));
    }
    assert!(received == object, "the download was cut or changed");

    let status =
        crate::harness::readiness_poll_async("sesame serve exiting after its download", || {
            let exited = server.child.try_wait().unwrap();
            async move { exited.ok_or_else(|| "still running".to_owned()) }
        })
        .await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}
