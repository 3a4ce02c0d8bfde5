//! Webhooks: every lifecycle event delivered, signed, and retried when the receiver fails;
//! sent from the committed trail, so a notice owed when the gateway is killed is delivered
//! after it starts again; retried on the same backoff as the audit forwarder.

use std::path::Path;
use std::time::Duration;

use crate::harness::{HttpReceiver, ServeProcess};
use crate::workflow::{add_user, json};

/// `sesame serve` on `dir/data` with the example policies, a directory backend and the
/// configuration file `config`; the same `dir` starts the same gateway again.
fn serve(dir: &Path, config: &str, env: &[(&str, &str)]) -> ServeProcess {
    let file = dir.join("sesame.toml");
    std::fs::write(&file, config).unwrap();
    let objects = dir.join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples");
    ServeProcess::start(
        &dir.join("data"),
        &[
            "--config",
            file.to_str().unwrap(),
            "--backend",
            objects.to_str().unwrap(),
            "--policies",
            policies.to_str().unwrap(),
        ],
        env,
    )
}

/// `[[webhook]]` to `url`, signed with `hook-secret`, with `more` lines.
fn hook(url: &str, more: &str) -> String {
    format!("[[webhook]]\nurl = \"{url}\"\nsecret = \"hook-secret\"\n{more}")
}

/// Ann (in `analysts`) asks for read on `s3://analytics/` for 5 minutes: approved at once,
/// so `request.created` and `request.approved` are in the trail before she is answered, and
/// the grant is already within ten minutes of its end. The request as answered.
fn ann_asks(server: &ServeProcess) -> serde_json::Value {
    let ann = add_user(server, "ann", "analysts");
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
    json(&out.ok().stdout)
}

#[test]
fn webhooks_are_signed_retried_and_cover_the_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    // 500 to the first delivery exercises the retries.
    let (url, received) =
        crate::harness::http_receiver("/hook", "500 Internal Server Error", "x-sesame-event");
    let server = serve(dir.path(), &hook(&url, "first_retry_ms = 20\n"), &[]);
    let alice = add_user(&server, "alice", "data-eng");
    let bob = add_user(&server, "bob", "hr-approvers");
    // A 5-minute grant is already within ten minutes of its end: "expiring soon" at once.
    let grant = ann_asks(&server)["grant_id"].as_str().unwrap().to_owned();
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
            &sesame::secret::signature("hook-secret", body),
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

/// The receiver is down when the notices are committed; the gateway tries once, and is
/// killed (SIGKILL) while it waits to try again. Started again with the receiver up, it
/// reads the notices back from the trail after the hook's cursor and delivers them, once
/// each, in trail order.
#[test]
fn a_notice_owed_when_the_gateway_is_killed_is_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = HttpReceiver::start("/hook", 0, "", "x-sesame-event");
    receiver.set_up(false);
    // One attempt, then a minute's wait: the kill falls inside the retries.
    let config = hook(&receiver.url, "first_retry_ms = 60000\nattempts = 3\n");
    let mut server = serve(dir.path(), &config, &[]);
    let request = ann_asks(&server)["id"].as_str().unwrap().to_owned();
    crate::garage::readiness_poll("an attempt while the receiver is down", || {
        receiver
            .arrivals()
            .iter()
            .any(|a| a.kept == "request.created")
            .then_some(())
    });
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(receiver.received.lock().unwrap().is_empty());

    receiver.set_up(true);
    let _server = serve(dir.path(), &config, &[]);
    let wanted = ["request.created", "request.approved"];
    let events = crate::garage::readiness_poll("the notices after the restart", || {
        let got = receiver.received.lock().unwrap().clone();
        wanted
            .iter()
            .all(|w| got.iter().any(|(e, _, _)| e == w))
            .then_some(got)
    });
    let names: Vec<&str> = events.iter().map(|(e, _, _)| e.as_str()).collect();
    for event in wanted {
        assert_eq!(
            names.iter().filter(|n| **n == event).count(),
            1,
            "{names:?}"
        );
    }
    let position = |event| names.iter().position(|n| *n == event).unwrap();
    assert!(position("request.created") < position("request.approved"));
    for (event, signature, body) in &events {
        assert_eq!(signature, &sesame::secret::signature("hook-secret", body));
        let payload = json(std::str::from_utf8(body).unwrap());
        if event.starts_with("request.") {
            assert_eq!(payload["request_id"], request.as_str(), "{payload}");
        }
    }
}

/// Each receiver refuses its first two requests: the webhook and the forwarder each try
/// again after their first delay, and again after twice that (the webhook's 200 ms, the
/// forwarder's 1 s), on the one backoff both sinks share.
#[test]
fn the_webhook_and_the_forwarder_retry_on_the_same_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let refusal = "503 Service Unavailable";
    let hooked = HttpReceiver::start("/hook", 2, refusal, "x-sesame-event");
    let collector = HttpReceiver::start("/ingest", 2, refusal, "content-type");
    let config = hook(&hooked.url, "first_retry_ms = 200\nattempts = 4\n");
    let server = serve(
        dir.path(),
        &config,
        &[("SESAME_AUDIT_FORWARD_URL", collector.url.as_str())],
    );
    ann_asks(&server);
    let sinks = [
        (&hooked, Duration::from_millis(200), "request.created"),
        (&collector, Duration::from_secs(1), "application/x-ndjson"),
    ];
    for (receiver, first, kept) in sinks {
        let arrivals = crate::garage::readiness_poll("three attempts", || {
            let arrivals = receiver.arrivals();
            (arrivals.len() >= 3).then_some(arrivals)
        });
        let tried = &arrivals[..3];
        assert_eq!(
            tried
                .iter()
                .map(|a| (a.accepted, a.kept.as_str()))
                .collect::<Vec<_>>(),
            [(false, kept), (false, kept), (true, kept)],
            "{}",
            receiver.url
        );
        assert!(tried[1].at - tried[0].at >= first, "{}", receiver.url);
        assert!(tried[2].at - tried[1].at >= first * 2, "{}", receiver.url);
    }
}
