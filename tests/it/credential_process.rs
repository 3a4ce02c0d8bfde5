//! aws-cli with a `credential_process` profile, as the README documents it: the first call
//! files the request and waits for its approval, then works; later calls reuse the grant.

use crate::workflow::{add_user, code, enroll, json, serve};

#[test]
fn a_credential_process_profile_waits_for_approval_then_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let alice = add_user(&server, "alice", "data-eng");
    let bob = add_user(&server, "bob", "hr-approvers");
    let carol = add_user(&server, "carol", "hr-approvers");
    let (bob_secret, carol_secret) = (enroll(&server, &bob), enroll(&server, &carol));

    // The ~/.aws/config lines the README documents.
    let home = dir.path().join("alice-home");
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("config");
    std::fs::write(
        &config,
        format!(
            "[profile payroll]\ncredential_process = {} credentials --scope s3://hr-data/payroll/ --read --list --for 1h --why INC-4411\nendpoint_url = {}\nregion = {}\n",
            env!("CARGO_BIN_EXE_sesame"),
            server.s3_url,
            crate::harness::REGION
        ),
    )
    .unwrap();
    let aws = || {
        let mut cmd = std::process::Command::new(crate::harness::python_bin("aws"));
        cmd.args([
            "--profile",
            "payroll",
            "s3",
            "cp",
            "s3://hr-data/payroll/2026/march.csv",
            "-",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("SESAME_DATA_DIR", &server.data_dir)
        .env("SESAME_TOKEN", &alice)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        cmd
    };
    let waiting = aws().spawn().unwrap();

    // The approvers see the request once credential_process has filed it, and approve it.
    let id = crate::garage::readiness_poll("the request from credential_process", || {
        let pending = json(
            &server
                .cli_as(&bob, &["requests", "--pending", "--json"])
                .ok()
                .stdout,
        );
        pending[0]["id"].as_str().map(str::to_owned)
    });
    server
        .cli_as(&bob, &["approve", &id, "--totp", &code(&bob_secret)])
        .ok();
    server
        .cli_as(&carol, &["approve", &id, "--totp", &code(&carol_secret)])
        .ok();

    let out = waiting.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alice,100\n");

    // Next time the grant is reused: no new request.
    let again = aws().output().unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let all = json(&server.cli_as(&alice, &["requests", "--json"]).ok().stdout);
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");

    // Run by hand, it says what it waits for (aws-cli keeps a credential process's stderr to
    // itself), and gives up after --wait, leaving the request open.
    let out = server.cli_as(
        &alice,
        &[
            "credentials",
            "--scope",
            "s3://hr-data/payroll/2026/",
            "--read",
            "--for",
            "30m",
            "--why",
            "INC-5",
            "--wait",
            "1s",
        ],
    );
    out.refused("is still pending after 1s; it stays open");
    assert!(
        out.stderr
            .contains("sesame: waiting for approval of request r-"),
        "{out:#?}"
    );
    assert!(
        out.stderr.contains("2 approval(s) from hr-approvers"),
        "{out:#?}"
    );
}
