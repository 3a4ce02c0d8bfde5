//! The just-in-time workflow end to end with real processes: users and MFA from the CLI, a
//! request under the shipped payroll policy, two approvers with TOTP, aws-cli inside and
//! outside the grant, refusals that change nothing, and a SIGKILL restart that loses nothing.

use std::path::Path;

use sesame::identity::totp;

use crate::harness::{ServeProcess, aws_at, credential_from_json};

pub fn serve(dir: &Path) -> ServeProcess {
    let objects = dir.join("objects");
    std::fs::create_dir_all(objects.join("hr-data/payroll/2026")).unwrap();
    std::fs::write(
        objects.join("hr-data/payroll/2026/march.csv"),
        b"alice,100\n",
    )
    .unwrap();
    std::fs::write(objects.join("hr-data/board-minutes.txt"), b"secret").unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples");
    ServeProcess::start(
        &dir.join("data"),
        &[
            "--backend",
            objects.to_str().unwrap(),
            "--policies",
            policies.to_str().unwrap(),
        ],
        &[],
    )
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Adds a user and returns their token.
pub fn add_user(server: &ServeProcess, name: &str, group: &str) -> String {
    let out = server.cli(&["user", "add", name, "--group", group, "--json"]);
    let created = json(&out.ok().stdout);
    assert_eq!(created["user"]["name"], name);
    created["token"].as_str().unwrap().to_owned()
}

/// Enrols MFA and returns the secret, as the authenticator app would keep it.
pub fn enroll(server: &ServeProcess, token: &str) -> Vec<u8> {
    let out = server.cli_as(token, &["mfa", "enroll", "--json"]);
    let enrolled = json(&out.ok().stdout);
    assert!(
        enrolled["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Sesame:")
    );
    totp::from_base32(enrolled["secret"].as_str().unwrap()).unwrap()
}

/// The authenticator app's current code.
pub fn code(secret: &[u8]) -> String {
    use sesame::clock::Clock;
    totp::code_at_step(secret, totp::step_of(sesame::clock::SystemClock.now()))
}

#[test]
fn a_request_approved_by_two_approvers_with_mfa_works_in_aws_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let alice = add_user(&server, "alice", "data-eng");
    let bob = add_user(&server, "bob", "hr-approvers");
    let carol = add_user(&server, "carol", "hr-approvers");
    let dave = add_user(&server, "dave", "data-eng");
    let bob_secret = enroll(&server, &bob);
    let carol_secret = enroll(&server, &carol);

    // `policy explain --as alice` looks her groups up on the gateway.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples");
    let out = server.cli(&[
        "policy",
        "explain",
        "--policies",
        examples.to_str().unwrap(),
        "--as",
        "alice",
        "s3://hr-data/payroll/",
        "--read",
        "--for",
        "2h",
        "--why",
        "INC-4411",
    ]);
    assert!(
        out.ok()
            .stdout
            .starts_with("allowed by rule payroll-incident-read"),
        "{out:#?}"
    );

    // Refusals that change nothing: no rule, bad justification, too long.
    let ask = |token: &str, extra: &[&str]| {
        server.cli_as(
            token,
            &[
                &["request", "s3://hr-data/payroll/", "--read", "--list"][..],
                extra,
            ]
            .concat(),
        )
    };
    ask(&alice, &["--for", "1h", "--why", "because"]).refused("does not match ^INC-[0-9]+");
    ask(&alice, &["--for", "3h", "--why", "INC-1"]).refused("exceeds the maximum of 2h");
    server
        .cli_as(
            &alice,
            &[
                "request",
                "s3://hr-data/",
                "--read",
                "--for",
                "1h",
                "--why",
                "INC-1",
            ],
        )
        .refused("lies outside");
    assert_eq!(
        json(&server.cli(&["requests", "--json"]).ok().stdout),
        serde_json::json!([])
    );

    let out = ask(&alice, &["--for", "1h", "--why", "INC-4411", "--json"]);
    let request = json(&out.ok().stdout);
    assert_eq!(request["state"], "pending");
    let id = request["id"].as_str().unwrap().to_owned();

    // Self-approval, an approver outside hr-approvers, and a missing code are refused.
    server
        .cli_as(&alice, &["approve", &id])
        .refused("cannot approve or deny it");
    server
        .cli_as(&dave, &["approve", &id])
        .refused("is not in an approver group");
    server
        .cli_as(&bob, &["approve", &id])
        .refused("needs a fresh MFA code");
    let bob_code = code(&bob_secret);
    let out = server.cli_as(&bob, &["approve", &id, "--totp", &bob_code, "--json"]);
    assert_eq!(json(&out.ok().stdout)["state"], "pending");
    // The same code again is a replay; bob's approval counts once either way.
    server
        .cli_as(&bob, &["approve", &id, "--totp", &bob_code])
        .refused("already used");
    let out = server.cli_as(
        &carol,
        &["approve", &id, "--totp", &code(&carol_secret), "--json"],
    );
    let approved = json(&out.ok().stdout);
    assert_eq!(approved["state"], "active");
    let grant = approved["grant_id"].as_str().unwrap().to_owned();

    // Alice's credentials work inside the grant and nowhere else; dave gets none.
    server
        .cli_as(&dave, &["credentials", "--grant", &grant])
        .refused("not found");
    let out = server.cli_as(&alice, &["credentials", "--grant", &grant]);
    let cred = credential_from_json(&out.ok().stdout);
    let home = dir.path().join("home");
    let got = aws_at(
        &server.s3_url,
        &home,
        &cred,
        &["s3", "cp", "s3://hr-data/payroll/2026/march.csv", "-"],
    );
    assert_eq!(got.ok().stdout, "alice,100\n");
    aws_at(
        &server.s3_url,
        &home,
        &cred,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "hr-data",
            "--key",
            "board-minutes.txt",
            "/dev/null",
        ],
    )
    .refused("does not cover s3://hr-data/board-minutes.txt");

    // An approver revokes it: refused at once.
    server.cli_as(&bob, &["revoke", &grant]).ok();
    aws_at(
        &server.s3_url,
        &home,
        &cred,
        &["s3", "ls", "s3://hr-data/payroll/2026/"],
    )
    .refused("was revoked");
    let mine = json(&server.cli_as(&alice, &["requests", "--json"]).ok().stdout);
    assert_eq!(mine[0]["state"], "revoked");
    assert_eq!(mine[0]["grant_id"], grant.as_str());

    // The trail has the story: filed, approved (by whom), revoked, and the reads between.
    let data_dir = server.data_dir.to_str().unwrap().to_owned();
    let out = server.cli(&["audit", "--data-dir", &data_dir, "--json"]);
    let bodies: Vec<serde_json::Value> = out
        .ok()
        .stdout
        .lines()
        .map(|l| json(l)["body"].clone())
        .collect();
    let event = |name: &str| {
        bodies
            .iter()
            .find(|b| b["kind"] == "lifecycle" && b["event"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(event("request.created")["request_id"], id.as_str());
    assert!(
        event("request.approved")["summary"]
            .as_str()
            .unwrap()
            .contains("approved by bob, carol")
    );
    // Admin actions and credentials are in the trail too, with who did them.
    let added = event("user.added");
    assert_eq!(
        (&added["by"], &added["admin"]),
        (&serde_json::json!("admin"), &serde_json::json!(true))
    );
    assert_eq!(event("mfa.enrolled")["by"], "bob");
    let issued = event("credentials.issued");
    assert_eq!(
        (&issued["by"], &issued["grant"]),
        (&serde_json::json!("alice"), &serde_json::json!(grant))
    );
    assert!(
        event("grant.revoked")["summary"]
            .as_str()
            .unwrap()
            .starts_with("bob revoked grant")
    );
    assert!(
        bodies
            .iter()
            .any(|b| b["kind"] == "s3" && b["grant"] == grant.as_str() && b["op"] == "GetObject")
    );

    // An auditor answers "who read payroll, who approved it, and what exactly did they read"
    // from the report; people outside the auditors group cannot read it.
    let erin = add_user(&server, "erin", "auditors");
    server
        .cli_as(&dave, &["report", "--format", "json"])
        .refused("dave may not read reports");
    let report = json(
        &server
            .cli_as(
                &erin,
                &["report", "--from", "2020-01-01", "--format", "json"],
            )
            .ok()
            .stdout,
    );
    assert_eq!(report["trail"]["intact"], true, "{}", report["trail"]);
    let g = report["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == grant.as_str())
        .unwrap_or_else(|| panic!("the grant is reported: {report}"));
    assert_eq!(g["principal"], "alice");
    assert_eq!(g["scope"], "s3://hr-data/payroll/");
    assert_eq!(g["revoked_by"], "bob");
    let why = &g["requests"][0];
    assert_eq!(why["justification"], "INC-4411");
    let approvers: Vec<(&str, bool)> = why["approvers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["by"].as_str().unwrap(), a["mfa"].as_bool().unwrap()))
        .collect();
    assert_eq!(approvers, [("bob", true), ("carol", true)]);
    let read = &g["usage"]["keys_read"]["listed"][0];
    assert_eq!(read["key"], "payroll/2026/march.csv", "{g}");
    assert_eq!(read["bytes"], 10);
    assert!(g["usage"]["denied"].as_u64().unwrap() >= 1, "{g}");

    let csv = server
        .cli_as(
            &erin,
            &["report", "--from", "2020-01-01", "--format", "csv"],
        )
        .ok()
        .stdout
        .clone();
    assert!(
        csv.lines()
            .any(|l| l.contains(&grant) && l.contains("INC-4411")),
        "{csv}"
    );
    let page = dir.path().join("report.html");
    server
        .cli_as(
            &erin,
            &[
                "report",
                "--from",
                "2020-01-01",
                "-o",
                page.to_str().unwrap(),
            ],
        )
        .ok();
    let png = dir.path().join("report.png");
    crate::report::screenshot(&page, &png, &dir.path().join("profile"));
    let windows = crate::report::count_pixels(&png, &[sesame::report::palette::WINDOW])[0];
    assert!(windows > 20, "the grant's bar is drawn: {windows} pixels");
    server
        .cli_as(&erin, &["report", "--from", "2026-13-01"])
        .refused("from \"2026-13-01\" is not a date");
}

#[test]
fn withdrawal_denial_and_automatic_approval() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let alice = add_user(&server, "alice", "data-eng");
    let bob = add_user(&server, "bob", "hr-approvers");
    let ann = add_user(&server, "ann", "analysts");

    let file = |token: &str| {
        let out = server.cli_as(
            token,
            &[
                "request",
                "s3://hr-data/payroll/",
                "--read",
                "--for",
                "30m",
                "--why",
                "INC-7",
                "--json",
            ],
        );
        json(&out.ok().stdout)["id"].as_str().unwrap().to_owned()
    };
    let first = file(&alice);
    server
        .cli_as(&bob, &["withdraw", &first])
        .refused("only alice");
    assert_eq!(
        json(
            &server
                .cli_as(&alice, &["withdraw", &first, "--json"])
                .ok()
                .stdout
        )["state"],
        "withdrawn"
    );

    let second = file(&alice);
    let out = server.cli_as(
        &bob,
        &[
            "deny",
            &second,
            "--why",
            "use the anonymised copy",
            "--json",
        ],
    );
    let denied = json(&out.ok().stdout);
    assert_eq!(
        (denied["state"].as_str(), denied["denial"].as_str()),
        (Some("denied"), Some("bob: use the anonymised copy"))
    );
    server
        .cli_as(&bob, &["approve", &second])
        .refused("already denied");

    // Analysts are approved automatically; the table shows the grant at once.
    let out = server.cli_as(
        &ann,
        &[
            "request",
            "s3://analytics/",
            "--read",
            "--list",
            "--for",
            "8h",
        ],
    );
    assert!(
        out.ok()
            .stdout
            .contains("granted: get credentials with `sesame credentials --grant g-"),
        "{out:#?}"
    );
    let pending = json(
        &server
            .cli_as(&bob, &["requests", "--pending", "--json"])
            .ok()
            .stdout,
    );
    assert_eq!(pending, serde_json::json!([]));

    // The holder revokes her own grant; nobody else outside its approvers can.
    let grant = json(&server.cli_as(&ann, &["grants", "--json"]).ok().stdout)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .cli_as(&alice, &["revoke", &grant])
        .refused("not found");
    let revoked = json(
        &server
            .cli_as(&ann, &["revoke", &grant, "--json"])
            .ok()
            .stdout,
    );
    assert_eq!(
        (revoked["state"].as_str(), revoked["revoked_by"].as_str()),
        (Some("revoked"), Some("ann"))
    );
}

#[test]
fn nothing_is_lost_when_the_gateway_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, pending_id, grant) = {
        let server = serve(dir.path());
        let alice = add_user(&server, "alice", "data-eng");
        let ann = add_user(&server, "ann", "analysts");
        let out = server.cli_as(
            &alice,
            &[
                "request",
                "s3://hr-data/payroll/",
                "--read",
                "--for",
                "1h",
                "--why",
                "INC-9",
                "--json",
            ],
        );
        let pending_id = json(&out.ok().stdout)["id"].as_str().unwrap().to_owned();
        let out = server.cli_as(
            &ann,
            &[
                "request",
                "s3://analytics/",
                "--read",
                "--for",
                "1h",
                "--json",
            ],
        );
        let grant = json(&out.ok().stdout)["grant_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut server = server;
        // SIGKILL: no chance to flush anything that was not already durable.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        (alice, pending_id, grant)
    };
    let server = serve(dir.path());
    let mine = json(&server.cli_as(&alice, &["requests", "--json"]).ok().stdout);
    assert_eq!(
        (mine[0]["id"].as_str(), mine[0]["state"].as_str()),
        (Some(pending_id.as_str()), Some("pending"))
    );
    let grants = json(&server.cli(&["grants", "--json"]).ok().stdout);
    assert!(
        grants
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == grant.as_str() && g["state"] == "active"),
        "{grants}"
    );
}

#[test]
fn extensions_are_requests_and_overlapping_grants_merge() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let ann = add_user(&server, "ann", "analysts");
    let out = server.cli_as(
        &ann,
        &[
            "request",
            "s3://analytics/",
            "--read",
            "--for",
            "2h",
            "--json",
        ],
    );
    let grant = json(&out.ok().stdout)["grant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let expires = |server: &ServeProcess| {
        let grants = json(&server.cli_as(&ann, &["grants", "--json"]).ok().stdout);
        assert_eq!(
            grants.as_array().unwrap().len(),
            1,
            "one grant, merged: {grants}"
        );
        grants[0]["expires_at"].as_str().unwrap().to_owned()
    };
    let before = expires(&server);
    // Same scope again: the grant is extended, not doubled.
    let out = server.cli_as(
        &ann,
        &[
            "request",
            "s3://analytics/",
            "--read",
            "--for",
            "3h",
            "--json",
        ],
    );
    assert_eq!(json(&out.ok().stdout)["grant_id"], grant.as_str());
    let merged = expires(&server);
    assert!(merged > before, "{merged} > {before}");
    // An extension beyond the rule's 8h in all is refused; within it, granted at once.
    server
        .cli_as(&ann, &["extend", &grant, "--for", "6h"])
        .refused("exceeds the maximum of 8h");
    let out = server.cli_as(&ann, &["extend", &grant, "--for", "2h", "--json"]);
    assert_eq!(json(&out.ok().stdout)["grant_id"], grant.as_str());
    assert!(expires(&server) > merged);
}

/// Issue 8: a stolen API token alone could enrol the thief's authenticator and approve
/// with it. Replacing an authenticator needs a code from the current one, or an admin reset.
#[test]
fn re_enrolling_mfa_needs_the_current_authenticator_or_an_admin_reset() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let bob = add_user(&server, "bob", "hr-approvers");
    let secret = enroll(&server, &bob);

    server
        .cli_as(&bob, &["mfa", "enroll"])
        .refused("re-enrolling needs a current code");
    server
        .cli_as(&bob, &["mfa", "enroll", "--totp", "000000"])
        .refused("code");
    let out = server.cli_as(&bob, &["mfa", "enroll", "--totp", &code(&secret), "--json"]);
    let replaced = json(&out.ok().stdout)["secret"]
        .as_str()
        .unwrap()
        .to_owned();

    // Lost phone: the admin resets, recorded; bob enrols anew with his token alone.
    server
        .cli_as(&bob, &["mfa", "reset", "bob"])
        .refused("not the admin");
    server.cli(&["mfa", "reset", "bob"]).ok();
    let fresh = enroll(&server, &bob);
    assert_ne!(
        fresh,
        totp_secret(&replaced),
        "a new enrolment has a new secret"
    );
    let trail = server.cli(&["audit", "--json"]).ok().stdout.clone();
    assert!(trail.contains("\"mfa.reset\""), "{trail}");

    // Names the gateway uses for itself cannot be taken.
    server
        .cli(&["user", "add", "admin", "--group", "hr-approvers"])
        .refused("is reserved");
}

fn totp_secret(base32: &str) -> Vec<u8> {
    totp::from_base32(base32).unwrap()
}
