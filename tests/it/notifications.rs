//! Webhooks: every lifecycle event delivered, signed, and retried when the receiver fails.

use std::path::Path;

use crate::harness::ServeProcess;
use crate::workflow::{add_user, json};

#[test]
fn webhooks_are_signed_retried_and_cover_the_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    // 500 to the first delivery exercises the retries.
    let (url, received) =
        crate::harness::http_receiver("/hook", "500 Internal Server Error", "x-sesame-event");
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
