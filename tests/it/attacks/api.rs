//! Control-API authorisation: every route, asked by every role (nobody, a forged token, the
//! admin, a requester, an approver, an auditor, an unrelated user), answers what that role
//! may have and refuses the rest with the status and error code it names, and a refusal
//! changes nothing. Each row is a raw HTTP request sent with curl, and every route of the
//! route table has one: a new route fails the test until its row says who may call it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::harness::ServeProcess;
use crate::workflow::{add_user, json};

const POLICY: &str = r#"
[[rule]]
name = "ops"
groups = ["oncall"]
scopes = ["s3://ops/"]
actions = ["read", "list"]
max_duration = "2h"
approvals = 1
approver_groups = ["leads"]
"#;

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Nobody,
    Forged,
    Admin,
    /// alice: holds the grant and filed the request.
    Requester,
    /// bob: in the group that approves alice's requests.
    Approver,
    /// audrey: in `auditors`.
    Auditor,
    /// eve: no grant, no group that matters.
    Stranger,
}

const ROLES: [Role; 7] = [
    Role::Nobody,
    Role::Forged,
    Role::Admin,
    Role::Requester,
    Role::Approver,
    Role::Auditor,
    Role::Stranger,
];

struct Site {
    server: ServeProcess,
    api: String,
    admin: String,
    alice: String,
    bob: String,
    audrey: String,
    eve: String,
    grant: String,
    request: String,
    share: String,
}

impl Site {
    fn token(&self, role: Role) -> Option<&str> {
        match role {
            Role::Nobody => None,
            Role::Forged => Some("sesame_user_0000000000000000000000000000000000000000000000"),
            Role::Admin => Some(&self.admin),
            Role::Requester => Some(&self.alice),
            Role::Approver => Some(&self.bob),
            Role::Auditor => Some(&self.audrey),
            Role::Stranger => Some(&self.eve),
        }
    }

    /// A route's path with its `{...}` segment filled in: the grant, request or link made
    /// for the test, or bob for a user.
    fn path(&self, template: &str) -> String {
        let Some((before, rest)) = template.split_once('{') else {
            return template.to_owned();
        };
        let (_, after) = rest.split_once('}').expect("a closed segment");
        let filled = match before.split('/').nth(2) {
            Some("grants") => &self.grant,
            Some("requests") => &self.request,
            Some("shares") => &self.share,
            Some("users") => "bob",
            _ => panic!("{template}: say here what fills its segment"),
        };
        format!("{before}{filled}{after}")
    }

    /// (status, body) of one request.
    fn call(&self, role: Role, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}"])
            .arg(format!("{}{path}", self.api));
        if let Some(token) = self.token(role) {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        if let Some(body) = body {
            cmd.args(["-H", "content-type: application/json", "-d", body]);
        }
        let out = cmd.output().expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (status.trim().parse().unwrap_or(0), body.to_owned())
    }
}

fn site(dir: &Path) -> Site {
    let objects = dir.join("objects");
    std::fs::create_dir_all(objects.join("ops")).unwrap();
    std::fs::write(objects.join("ops/x.txt"), b"x").unwrap();
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("ops.toml"), POLICY).unwrap();
    let server = ServeProcess::start(
        &dir.join("data"),
        &[
            "--backend",
            objects.to_str().unwrap(),
            "--policies",
            policies.to_str().unwrap(),
        ],
        &[],
    );
    let alice = add_user(&server, "alice", "oncall");
    let bob = add_user(&server, "bob", "leads");
    let audrey = add_user(&server, "audrey", "auditors");
    let eve = add_user(&server, "eve", "visitors");
    let request = json(
        &server
            .cli_as(
                &alice,
                &["request", "s3://ops/", "--read", "--for", "1h", "--json"],
            )
            .ok()
            .stdout,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = server.cli(&[
        "grant",
        "create",
        "s3://ops/",
        "--to",
        "alice",
        "--actions",
        "read",
        "--for",
        "1h",
        "--format",
        "json",
    ]);
    let grant = json(&out.ok().stdout)["GrantId"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = server.cli_as(&alice, &["share", "s3://ops/x.txt", "--json"]);
    let share = json(&out.ok().stdout)["id"].as_str().unwrap().to_owned();
    let api = std::fs::read_to_string(dir.join("data/api.url"))
        .unwrap()
        .trim()
        .to_owned();
    let admin = std::fs::read_to_string(dir.join("data/admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    Site {
        server,
        api,
        admin,
        alice,
        bob,
        audrey,
        eve,
        grant,
        request,
        share,
    }
}

/// A route (method, path as the route table writes it, body) and what each role gets from
/// it.
type Row<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Box<dyn Fn(Role) -> (u16, &'static str)>,
);

/// What a role gets from a route: a status, and for refusals the error code.
type Expect = fn(Role) -> (u16, &'static str);

fn open_to_all(_: Role) -> (u16, &'static str) {
    (200, "")
}

/// Signed-in callers only; the route answers `ok` to every one of them.
fn signed_in(ok: u16) -> impl Fn(Role) -> (u16, &'static str) {
    move |role| match role {
        Role::Nobody | Role::Forged => (401, "unauthorized"),
        Role::Admin | Role::Requester | Role::Approver | Role::Auditor | Role::Stranger => (ok, ""),
    }
}

#[test]
fn every_route_answers_each_role_what_it_may_have() {
    let grant_body =
        r#"{"scope":"s3://ops/","actions":["read"],"principal":"eve","duration_seconds":600}"#;
    let file_body = r#"{"scope":"s3://ops/","actions":["read"],"duration_seconds":600}"#;
    let share_body = r#"{"uri":"s3://ops/x.txt"}"#;

    // (method, route, body, what each role gets), one row for each route of
    // src/api/routes.rs. Rows that change state are refused for every role here; the ones
    // allowed are taken once, at the end.
    // Reports and the trail: the admin and the auditors group.
    let auditors_only = |role| match role {
        Role::Nobody | Role::Forged => (401, "unauthorized"),
        Role::Admin | Role::Auditor => (200, ""),
        Role::Requester | Role::Approver | Role::Stranger => (403, "forbidden"),
    };
    let admin_only = |role| match role {
        Role::Nobody | Role::Forged => (401, "unauthorized"),
        Role::Admin => (0, ""),
        Role::Requester | Role::Approver | Role::Auditor | Role::Stranger => (403, "forbidden"),
    };
    let rows: Vec<Row> = vec![
        ("GET", "/v1/health", None, Box::new(open_to_all as Expect)),
        (
            "GET",
            "/v1/openapi.json",
            None,
            Box::new(open_to_all as Expect),
        ),
        ("GET", "/v1/whoami", None, Box::new(signed_in(200))),
        ("GET", "/v1/grants", None, Box::new(signed_in(200))),
        ("GET", "/v1/requests", None, Box::new(signed_in(200))),
        ("GET", "/v1/shares", None, Box::new(signed_in(200))),
        ("GET", "/v1/policies", None, Box::new(signed_in(200))),
        (
            "GET",
            "/v1/grants/{id}",
            None,
            Box::new(|role| match role {
                Role::Nobody | Role::Forged => (401, "unauthorized"),
                Role::Admin | Role::Requester => (200, ""),
                Role::Approver | Role::Auditor | Role::Stranger => (404, "not_found"),
            }),
        ),
        (
            "POST",
            "/v1/grants/{id}/credentials",
            None,
            Box::new(|role| match role {
                Role::Nobody | Role::Forged => (401, "unauthorized"),
                Role::Admin | Role::Requester => (201, ""),
                Role::Approver | Role::Auditor | Role::Stranger => (404, "not_found"),
            }),
        ),
        (
            "GET",
            "/v1/requests/{id}",
            None,
            Box::new(|role| match role {
                Role::Nobody | Role::Forged => (401, "unauthorized"),
                Role::Admin | Role::Requester | Role::Approver => (200, ""),
                Role::Auditor | Role::Stranger => (404, "not_found"),
            }),
        ),
        (
            "GET",
            "/v1/shares/{id}",
            None,
            Box::new(|role| match role {
                Role::Nobody | Role::Forged => (401, "unauthorized"),
                Role::Admin | Role::Requester => (200, ""),
                Role::Approver | Role::Auditor | Role::Stranger => (404, "not_found"),
            }),
        ),
        ("GET", "/v1/report", None, Box::new(auditors_only)),
        ("GET", "/v1/audit", None, Box::new(auditors_only)),
        (
            "GET",
            "/v1/users",
            None,
            Box::new(move |role| match admin_only(role) {
                (0, _) => (200, ""),
                other => other,
            }),
        ),
        // Changes, refused to everyone who may not make them.
        (
            "POST",
            "/v1/grants",
            Some(grant_body),
            Box::new(move |role| match admin_only(role) {
                (0, _) => (0, ""),
                other => other,
            }),
        ),
        (
            "POST",
            "/v1/users",
            Some(r#"{"name":"mallory","groups":["leads"]}"#),
            Box::new(move |role| match admin_only(role) {
                (0, _) => (0, ""),
                other => other,
            }),
        ),
        (
            "POST",
            "/v1/users/{name}/mfa/reset",
            None,
            Box::new(move |role| match admin_only(role) {
                (0, _) => (0, ""),
                other => other,
            }),
        ),
        (
            "POST",
            "/v1/policies/reload",
            None,
            Box::new(move |role| match admin_only(role) {
                (0, _) => (0, ""),
                other => other,
            }),
        ),
        (
            "POST",
            "/v1/requests",
            Some(file_body),
            Box::new(|role| match role {
                Role::Nobody | Role::Forged => (401, "unauthorized"),
                Role::Admin => (403, "forbidden"),
                Role::Approver | Role::Auditor | Role::Stranger => (403, "denied_by_policy"),
                Role::Requester => (0, ""),
            }),
        ),
        (
            "POST",
            "/v1/requests/{id}/approve",
            Some("{}"),
            Box::new(|role| match role {
                Role::Nobody | Role::Forged => (401, "unauthorized"),
                Role::Admin | Role::Approver => (0, ""),
                Role::Requester | Role::Auditor | Role::Stranger => (403, "forbidden"),
            }),
        ),
        (
            "POST",
            "/v1/requests/{id}/deny",
            Some(r#"{"reason":"no"}"#),
            Box::new(|role| match role {
                Role::Nobody | Role::Forged => (401, "unauthorized"),
                Role::Admin | Role::Approver => (0, ""),
                Role::Requester | Role::Auditor | Role::Stranger => (403, "forbidden"),
            }),
        ),
        (
            "POST",
            "/v1/requests/{id}/withdraw",
            Some("{}"),
            Box::new(|role| match role {
                Role::Nobody | Role::Forged => (401, "unauthorized"),
                Role::Requester => (0, ""),
                Role::Admin | Role::Approver | Role::Auditor | Role::Stranger => (403, "forbidden"),
            }),
        ),
        (
            "POST",
            "/v1/grants/{id}/extend",
            Some(r#"{"duration_seconds":60}"#),
            Box::new(|role| match role {
                Role::Nobody | Role::Forged => (401, "unauthorized"),
                Role::Requester => (0, ""),
                Role::Admin | Role::Approver | Role::Auditor | Role::Stranger => (403, "forbidden"),
            }),
        ),
        (
            "POST",
            "/v1/grants/{id}/revoke",
            None,
            Box::new(|role| match role {
                Role::Nobody | Role::Forged => (401, "unauthorized"),
                Role::Admin | Role::Requester => (0, ""),
                Role::Approver | Role::Auditor | Role::Stranger => (404, "not_found"),
            }),
        ),
        (
            "POST",
            "/v1/shares",
            Some(share_body),
            Box::new(|role| match role {
                Role::Nobody | Role::Forged => (401, "unauthorized"),
                Role::Requester => (0, ""),
                Role::Admin | Role::Approver | Role::Auditor | Role::Stranger => (403, "forbidden"),
            }),
        ),
        (
            "POST",
            "/v1/shares/{id}/revoke",
            None,
            Box::new(|role| match role {
                Role::Nobody | Role::Forged => (401, "unauthorized"),
                Role::Admin | Role::Requester => (0, ""),
                Role::Approver | Role::Auditor | Role::Stranger => (404, "not_found"),
            }),
        ),
        (
            "POST",
            "/v1/mfa/enroll",
            None,
            Box::new(|role| match role {
                Role::Nobody | Role::Forged => (401, "unauthorized"),
                Role::Admin => (403, "forbidden"),
                Role::Requester | Role::Approver | Role::Auditor | Role::Stranger => (0, ""),
            }),
        ),
    ];

    // Every route of the table has its row, and every row is a route: a new route fails
    // here until it says what each role gets from it.
    let routed: BTreeSet<(String, &str)> = sesame::api::routes()
        .map(|(method, path)| (method.to_string(), path))
        .collect();
    let rowed: BTreeSet<(String, &str)> = rows
        .iter()
        .map(|(method, path, ..)| ((*method).to_owned(), *path))
        .collect();
    let missing: Vec<_> = routed.difference(&rowed).collect();
    let unrouted: Vec<_> = rowed.difference(&routed).collect();
    assert!(
        missing.is_empty() && unrouted.is_empty() && rowed.len() == rows.len(),
        "routes in src/api/routes.rs with no row here (add one): {missing:?}; \
         rows for no route: {unrouted:?}; {} rows for {} routes",
        rows.len(),
        rowed.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let s = site(dir.path());
    let before = (
        s.server.cli(&["grants", "--json"]).ok().stdout.clone(),
        s.server.cli(&["requests", "--json"]).ok().stdout.clone(),
        s.server
            .cli(&["user", "list", "--json"])
            .ok()
            .stdout
            .clone(),
    );
    let mut wrong = Vec::new();
    let mut asked = 0;
    for (method, template, body, expect) in &rows {
        let path = s.path(template);
        for role in ROLES {
            let (status, code) = expect(role);
            if status == 0 {
                continue; // allowed and changes state: not taken here
            }
            asked += 1;
            let (got, text) = s.call(role, method, &path, *body);
            let code_ok = code.is_empty() || text.contains(&format!("\"{code}\""));
            if got != status || !code_ok {
                wrong.push(format!(
                    "{role:?} {method} {path}: expected {status} {code}, got {got} {text}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {asked} rows wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Nothing refused changed anything (credentials issued above are the one allowed change).
    let after = (
        s.server.cli(&["grants", "--json"]).ok().stdout.clone(),
        s.server.cli(&["requests", "--json"]).ok().stdout.clone(),
        s.server
            .cli(&["user", "list", "--json"])
            .ok()
            .stdout
            .clone(),
    );
    assert_eq!(before.0, after.0, "grants changed");
    assert_eq!(before.1, after.1, "requests changed");
    assert_eq!(before.2, after.2, "users changed");

    // The allowed changes, once each, by the role that may make them.
    let taken = [
        (
            Role::Approver,
            "POST",
            "/v1/requests/{id}/approve",
            Some("{}"),
            200,
        ),
        (Role::Requester, "POST", "/v1/shares", Some(share_body), 201),
        (Role::Requester, "POST", "/v1/shares/{id}/revoke", None, 200),
        (Role::Requester, "POST", "/v1/grants/{id}/revoke", None, 200),
        (Role::Admin, "POST", "/v1/grants", Some(grant_body), 201),
    ];
    for (role, method, template, body, status) in taken {
        let path = s.path(template);
        let (got, text) = s.call(role, method, &path, body);
        assert_eq!(got, status, "{role:?} {method} {path}: {text}");
    }
}
