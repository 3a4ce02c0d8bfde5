//! Policies on a running gateway: a changed folder is reloaded without a restart, and an
//! invalid file keeps the last good set and is reported.

use std::path::Path;

use crate::harness::ServeProcess;
use crate::workflow::{add_user, json};

#[test]
fn policies_reload_without_restart_and_an_invalid_file_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples");
    let analytics = std::fs::read_to_string(examples.join("analytics.toml")).unwrap();
    std::fs::write(policies.join("analytics.toml"), &analytics).unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    let server = ServeProcess::start(
        &dir.path().join("data"),
        &[
            "--backend",
            objects.to_str().unwrap(),
            "--policies",
            policies.to_str().unwrap(),
        ],
        &[],
    );
    let ann = add_user(&server, "ann", "analysts");
    let ask = |hours: &str| {
        server.cli_as(
            &ann,
            &[
                "request",
                "s3://analytics/",
                "--read",
                "--for",
                hours,
                "--json",
            ],
        )
    };
    ask("8h").ok();

    // An edit takes effect on reload: at most 1h now.
    std::fs::write(
        policies.join("analytics.toml"),
        analytics.replace("\"8h\"", "\"1h\""),
    )
    .unwrap();
    let out = server.cli(&["policy", "reload", "--json"]);
    assert!(json(&out.ok().stdout)["last_error"].is_null());
    ask("8h").refused("exceeds the maximum of 1h");

    // A broken file is refused loudly and the 1h rule stays in force.
    std::fs::write(
        policies.join("analytics.toml"),
        analytics.replace("\"read\"", "\"reed\""),
    )
    .unwrap();
    server
        .cli(&["policy", "reload"])
        .refused("analytics.toml:6: rule \"analytics-read\": actions: unknown action \"reed\"");
    let status = json(&server.cli(&["policy", "status", "--json"]).ok().stdout);
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("unknown action \"reed\""),
        "{status}"
    );
    ask("1h").ok();
    ask("2h").refused("exceeds the maximum of 1h");

    // Fixed on disk, it is picked up without being asked (the folder is watched).
    std::fs::write(policies.join("analytics.toml"), &analytics).unwrap();
    let generation = status["generation"].as_u64().unwrap();
    crate::garage::readiness_poll("the policy watcher", || {
        let now = json(&server.cli(&["policy", "status", "--json"]).ok().stdout);
        (now["generation"].as_u64().unwrap() > generation).then_some(())
    });
    ask("8h").ok();
}
