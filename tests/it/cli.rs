//! `sesame serve` and `sesame grant` as an operator uses them, on the embedded directory
//! backend that a newcomer starts with.

use std::process::Command;

use crate::harness::{ServeProcess, aws_at, credential_from_json, run};

/// A gateway on its embedded default: a directory whose subfolders are buckets.
fn serve_directory(dir: &std::path::Path) -> ServeProcess {
    let objects = dir.join("objects");
    std::fs::create_dir_all(objects.join("photos/2026")).unwrap();
    std::fs::write(objects.join("photos/2026/cat.jpg"), b"not really a cat").unwrap();
    ServeProcess::start(
        &dir.join("data"),
        &["--backend", objects.to_str().unwrap()],
        &[],
    )
}

#[test]
fn a_grant_from_the_cli_works_in_aws_cli_until_it_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_directory(dir.path());
    let home = dir.path().join("home");

    let out = server.cli(&[
        "grant",
        "create",
        "s3://photos/2026/",
        "--to",
        "alice",
        "--actions",
        "read,list",
        "--for",
        "30m",
        "--format",
        "json",
    ]);
    let cred = credential_from_json(&out.ok().stdout);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["Version"], 1);
    assert!(
        out.stderr.contains(&format!(
            "grant {} for alice on s3://photos/2026/ (read,list)",
            cred.grant_id
        )),
        "{out:#?}"
    );

    let got = aws_at(
        &server.s3_url,
        &home,
        &cred,
        &["s3", "cp", "s3://photos/2026/cat.jpg", "-"],
    );
    assert_eq!(got.ok().stdout, "not really a cat");
    let listed = aws_at(
        &server.s3_url,
        &home,
        &cred,
        &["s3", "ls", "s3://photos/2026/"],
    );
    assert!(listed.ok().stdout.contains("cat.jpg"));

    let out = server.cli(&["grants", "--json"]);
    let grants: serde_json::Value = serde_json::from_str(&out.ok().stdout).unwrap();
    assert_eq!(grants[0]["state"], "active", "{grants}");

    server.cli(&["grant", "revoke", &cred.grant_id]).ok();
    aws_at(
        &server.s3_url,
        &home,
        &cred,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "photos",
            "--key",
            "2026/cat.jpg",
            "/dev/null",
        ],
    )
    .refused("was revoked");
    let table = server.cli(&["grant", "list"]);
    assert!(
        table.ok().stdout.contains("revoked") && table.stdout.contains("s3://photos/2026/"),
        "{table:#?}"
    );
}

#[test]
fn env_and_profile_formats_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_directory(dir.path());
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    let out = server.cli(&[
        "grant",
        "create",
        "s3://photos/",
        "--to",
        "bob",
        "--actions",
        "read,list",
        "--for",
        "10m",
    ]);
    let script = format!(
        "{}\n{} s3 ls s3://photos/2026/\n",
        out.ok().stdout,
        crate::harness::python_bin("aws").display()
    );
    let mut sh = Command::new("bash");
    sh.arg("-c")
        .arg(script)
        .env("HOME", &home)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    let listed = run(sh);
    assert!(listed.ok().stdout.contains("cat.jpg"), "{listed:#?}");

    let out = server.cli(&[
        "grant",
        "create",
        "s3://photos/",
        "--to",
        "bob",
        "--actions",
        "read",
        "--for",
        "10m",
        "--format",
        "aws-profile",
        "--profile",
        "photos",
    ]);
    let config = home.join("config");
    std::fs::write(&config, format!("{}\n", out.ok().stdout)).unwrap();
    let mut aws = Command::new(crate::harness::python_bin("aws"));
    aws.args([
        "--profile",
        "photos",
        "s3",
        "cp",
        "s3://photos/2026/cat.jpg",
        "-",
    ])
    .env("HOME", &home)
    .env("AWS_CONFIG_FILE", &config)
    .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    .env_remove("AWS_ACCESS_KEY_ID");
    assert_eq!(run(aws).ok().stdout, "not really a cat");

    let fresh = server.cli(&["credentials", "--grant", &credential_id(&server, "bob")]);
    credential_from_json(&fresh.ok().stdout);
}

fn credential_id(server: &ServeProcess, principal: &str) -> String {
    let out = server.cli(&["grants", "--json"]);
    let grants: serde_json::Value = serde_json::from_str(&out.ok().stdout).unwrap();
    let list = grants
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![grants.clone()]);
    list.iter().find(|g| g["principal"] == principal).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn mistakes_get_clear_errors_and_meaningful_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_directory(dir.path());

    // (scope, actions, duration) → exit code and what stderr says.
    let cases = [
        (
            "s3://photos/",
            "read,fly",
            "1h",
            2,
            "unknown action \"fly\"",
        ),
        (
            "s3://photos/",
            "read",
            "soon",
            2,
            "duration \"soon\" is not like 30m",
        ),
        ("s3://photos/", "read", "30d", 1, "duration must be between"),
        ("photos/", "read", "1h", 1, "must start with s3://"),
        ("s3://photos/one.jpg", "list", "1h", 1, "cannot be listed"),
    ];
    for (scope, actions, duration, code, message) in cases {
        let out = server.cli(&[
            "grant",
            "create",
            scope,
            "--to",
            "a",
            "--actions",
            actions,
            "--for",
            duration,
        ]);
        assert!(
            out.code == code && out.stderr.contains(message),
            "{scope} {actions} {duration}: {out:#?}"
        );
    }
    let out = server.cli(&["grant", "revoke", "g-nope"]);
    assert!(
        out.code == 4 && out.stderr.contains("grant g-nope not found"),
        "{out:#?}"
    );
    let listed = server.cli(&["grants", "--json"]);
    assert_eq!(
        listed.ok().stdout.trim(),
        "[]",
        "refused requests created nothing"
    );

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.args(["grants"])
        .env("SESAME_DATA_DIR", dir.path().join("nowhere"));
    let out = run(cmd);
    assert!(
        out.code == 3 && out.stderr.contains("start `sesame serve`"),
        "{out:#?}"
    );

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.args(["grants", "--token", "wrong"])
        .env("SESAME_DATA_DIR", &server.data_dir);
    let out = run(cmd);
    assert!(
        out.code == 1 && out.stderr.contains("not valid"),
        "{out:#?}"
    );
}

/// `sesame serve --help` names each setting's variable; a secret's flag does not exist, so
/// a secret on the command line (which `ps` shows) is refused without being echoed; a bad
/// variable is named.
#[test]
fn config_is_documented_in_serve_help_and_secrets_never_come_from_flags() {
    let sesame = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
        cmd.args(args).envs(env.iter().copied());
        run(cmd)
    };
    let help = sesame(&["serve", "--help"], &[]).ok().stdout.clone();
    for named in [
        "--s3-addr <S3_ADDR>",
        "[env: SESAME_S3_ADDR]",
        "[env: SESAME_BACKEND_VIRTUAL_HOSTED]",
        "[env: SESAME_LISTEN_DRAIN_GRACE]",
        "[env: SESAME_CONFIG]",
        "the secret itself in `SESAME_BACKEND_SECRET_ACCESS_KEY`",
        "from its flag, from its SESAME_* variable, from the file given with --config",
    ] {
        assert!(help.contains(named), "{named} in {help}");
    }
    for flag in ["--backend-secret-access-key", "--audit-forward-secret"] {
        let out = sesame(&["serve", flag, "hunter2"], &[]);
        assert!(
            out.code == 2
                && out
                    .stderr
                    .contains(&format!("unexpected argument '{flag}'"))
                && !out.stderr.contains("hunter2"),
            "{out:#?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let out = sesame(
        &["serve", "--data-dir", data_dir],
        &[("SESAME_LISTEN_MAX_CONNECTIONS", "many")],
    );
    assert!(
        out.code == 2
            && out.stderr.contains(
                "SESAME_LISTEN_MAX_CONNECTIONS=\"many\" is not valid: invalid digit found in string"
            ),
        "{out:#?}"
    );
}

/// Regression: an id with a space, or a token with a control character, made the CLI panic
/// while building the HTTP request (exit 101); both are bad usage (exit 2), said before
/// anything is sent, so no gateway is needed here.
#[test]
fn an_id_with_a_space_or_a_token_with_a_newline_is_bad_usage_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let sesame = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
        cmd.args(args)
            .args(["--server", "http://127.0.0.1:9"])
            .env("XDG_CONFIG_HOME", dir.path())
            .env_remove("SESAME_TOKEN");
        run(cmd)
    };
    let out = sesame(&["grant", "show", "g-1 2", "--token", "t"]);
    assert!(
        out.code == 2
            && out
                .stderr
                .contains("error: \"g-1 2\" is not an id or name the gateway could have given"),
        "{out:#?}"
    );
    let out = sesame(&["grants", "--token", "sesame_user_1\n"]);
    assert!(
        out.code == 2 && out.stderr.contains("the token holds a control character"),
        "{out:#?}"
    );
    assert!(
        !out.stderr.contains("sesame_user_1"),
        "the token is not shown: {out:#?}"
    );
    // --token works, with a warning that `ps` shows it; SESAME_TOKEN has none.
    assert!(
        out.stderr
            .starts_with("warning: a token given with --token is visible to every user"),
        "{out:#?}"
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.args(["grants", "--server", "http://127.0.0.1:9"])
        .env("XDG_CONFIG_HOME", dir.path())
        .env("SESAME_TOKEN", "t");
    let out = run(cmd);
    assert!(!out.stderr.contains("warning"), "{out:#?}");
}

#[test]
fn the_control_api_needs_the_admin_token_and_describes_itself() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let server = serve_directory(dir.path());
    let token_file = server.data_dir.join("admin.token");
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let api = std::fs::read_to_string(server.data_dir.join("api.url"))
        .unwrap()
        .trim()
        .to_owned();

    let curl = |args: &[&str]| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-w", "\nHTTP %{http_code}"]).args(args);
        run(cmd)
    };
    let out = curl(&[&format!("{api}/v1/grants")]);
    assert!(
        out.stdout.contains("HTTP 401") && out.stdout.contains("\"code\": \"unauthorized\""),
        "{out:#?}"
    );
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let out = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-X",
        "POST",
        "-d",
        "{\"scope\": 1}",
        &format!("{api}/v1/grants"),
    ]);
    assert!(
        out.stdout.contains("HTTP 400") && out.stdout.contains("\"code\": \"invalid\""),
        "{out:#?}"
    );
    let out = curl(&[&format!("{api}/v1/openapi.json")]);
    let doc: serde_json::Value =
        serde_json::from_str(out.stdout.rsplit_once("\nHTTP").unwrap().0).unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/v1/grants/{id}/revoke"].is_object());
}

#[test]
fn policy_check_and_explain_work_on_the_shipped_examples() {
    let sesame = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
        cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
        run(cmd)
    };
    let out = sesame(&["policy", "check", "policies/examples"]);
    assert!(
        out.ok()
            .stdout
            .contains("2 rules, 1 sensitive labels: valid"),
        "{out:#?}"
    );

    let explain = [
        "policy",
        "explain",
        "--policies",
        "policies/examples",
        "--as",
        "alice",
        "--group",
        "data-eng",
    ];
    let ask = |extra: &[&str]| sesame(&[&explain[..], extra].concat());
    let out = ask(&[
        "s3://hr-data/payroll/",
        "--read",
        "--list",
        "--for",
        "2h",
        "--why",
        "INC-4411",
    ]);
    assert!(out.ok().stdout.starts_with("allowed by rule payroll-incident-read: 2 approval(s) from hr-approvers; approvers use MFA"), "{out:#?}");
    let out = ask(&[
        "s3://hr-data/payroll/",
        "--read",
        "--for",
        "3h",
        "--why",
        "INC-1",
    ]);
    assert!(
        out.code == 1
            && out
                .stdout
                .contains("3h exceeds the maximum of 2h set by the rule"),
        "{out:#?}"
    );
    let out = ask(&[
        "s3://hr-data/payroll/",
        "--read",
        "--for",
        "1h",
        "--why",
        "INC-1",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&out.ok().stdout).unwrap();
    assert_eq!(json["decision"]["approvals"], 2);

    let dir = tempfile::tempdir().unwrap();
    let bad = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/examples/analytics.toml"
    ))
    .unwrap()
    .replace("\"list\"", "\"lst\"");
    std::fs::write(dir.path().join("analytics.toml"), bad).unwrap();
    let out = sesame(&["policy", "check", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr
            .contains("analytics.toml:6: rule \"analytics-read\": actions: unknown action \"lst\""),
        "{out:#?}"
    );
}
