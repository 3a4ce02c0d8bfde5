//! The configuration: each setting from each layer in its precedence, the defaults, the
//! checks, and secrets that no `Debug` shows.

use std::collections::{BTreeSet, HashMap};

use super::*;

/// One setting as each layer writes it, and what the merged settings hold.
struct Row {
    /// Its key in the file: `key`, or `table.key`.
    key: &'static str,
    /// Its flag's name; secrets have none.
    flag: Option<&'static str>,
    env: &'static str,
    /// As the file (TOML), the environment and the flag write it.
    given: [&'static str; 3],
    /// What the merged settings hold, when the file, the environment or the flag is the
    /// highest layer that says it.
    holds: [&'static str; 3],
    read: fn(&Settings) -> String,
}

fn exposed(secret: Option<&Secret>) -> String {
    format!("{:?}", secret.map(Secret::expose))
}

/// Every setting that more than the file can give.
#[rustfmt::skip]
const ROWS: &[Row] = &[
    Row {
        key: "data_dir", flag: Some("data-dir"), env: "SESAME_DATA_DIR",
        given: [r#""/f""#, "/e", "/c"],
        holds: [r#"Some("/f")"#, r#"Some("/e")"#, r#"Some("/c")"#],
        read: |s| format!("{:?}", s.data_dir),
    },
    Row {
        key: "store", flag: Some("store"), env: "SESAME_STORE",
        given: [r#""postgres://f/s""#, "postgres://e/s", "postgres://c/s"],
        holds: [r#"Some("postgres://f/s")"#, r#"Some("postgres://e/s")"#, r#"Some("postgres://c/s")"#],
        read: |s| format!("{:?}", s.store),
    },
    Row {
        key: "s3_addr", flag: Some("s3-addr"), env: "SESAME_S3_ADDR",
        given: [r#""127.0.0.1:1001""#, "127.0.0.1:1002", "127.0.0.1:1003"],
        holds: ["Some(127.0.0.1:1001)", "Some(127.0.0.1:1002)", "Some(127.0.0.1:1003)"],
        read: |s| format!("{:?}", s.s3_addr),
    },
    Row {
        key: "api_addr", flag: Some("api-addr"), env: "SESAME_API_ADDR",
        given: [r#""127.0.0.1:2001""#, "127.0.0.1:2002", "127.0.0.1:2003"],
        holds: ["Some(127.0.0.1:2001)", "Some(127.0.0.1:2002)", "Some(127.0.0.1:2003)"],
        read: |s| format!("{:?}", s.api_addr),
    },
    Row {
        key: "domain", flag: Some("domain"), env: "SESAME_DOMAIN",
        given: [r#""f.example""#, "e.example", "c.example"],
        holds: [r#"Some("f.example")"#, r#"Some("e.example")"#, r#"Some("c.example")"#],
        read: |s| format!("{:?}", s.domain),
    },
    Row {
        key: "public_url", flag: Some("public-url"), env: "SESAME_PUBLIC_URL",
        given: [r#""https://f""#, "https://e", "https://c"],
        holds: [r#"Some("https://f")"#, r#"Some("https://e")"#, r#"Some("https://c")"#],
        read: |s| format!("{:?}", s.public_url),
    },
    Row {
        key: "region", flag: Some("region"), env: "SESAME_REGION",
        given: [r#""f-1""#, "e-1", "c-1"],
        holds: [r#"Some("f-1")"#, r#"Some("e-1")"#, r#"Some("c-1")"#],
        read: |s| format!("{:?}", s.region),
    },
    Row {
        key: "log_format", flag: Some("log-format"), env: "SESAME_LOG_FORMAT",
        given: [r#""json""#, "text", "json"],
        holds: [r#"Some("json")"#, r#"Some("text")"#, r#"Some("json")"#],
        read: |s| format!("{:?}", s.log_format),
    },
    Row {
        key: "policies", flag: Some("policies"), env: "SESAME_POLICIES",
        given: [r#""/pf""#, "/pe", "/pc"],
        holds: [r#"Some("/pf")"#, r#"Some("/pe")"#, r#"Some("/pc")"#],
        read: |s| format!("{:?}", s.policies),
    },
    Row {
        key: "require_mfa", flag: Some("require-mfa"), env: "SESAME_REQUIRE_MFA",
        given: ["true", "false", "true"],
        holds: ["Some(true)", "Some(false)", "Some(true)"],
        read: |s| format!("{:?}", s.require_mfa),
    },
    Row {
        key: "allow_plain_http", flag: Some("allow-plain-http"), env: "SESAME_ALLOW_PLAIN_HTTP",
        given: ["true", "false", "true"],
        holds: ["Some(true)", "Some(false)", "Some(true)"],
        read: |s| format!("{:?}", s.allow_plain_http),
    },
    Row {
        key: "tls.cert", flag: Some("tls-cert"), env: "SESAME_TLS_CERT",
        given: [r#""/tf""#, "/te", "/tc"],
        holds: [r#"Some("/tf")"#, r#"Some("/te")"#, r#"Some("/tc")"#],
        read: |s| format!("{:?}", s.tls.cert),
    },
    Row {
        key: "tls.key", flag: Some("tls-key"), env: "SESAME_TLS_KEY",
        given: [r#""/uf""#, "/ue", "/uc"],
        holds: [r#"Some("/uf")"#, r#"Some("/ue")"#, r#"Some("/uc")"#],
        read: |s| format!("{:?}", s.tls.key),
    },
    Row {
        key: "tls.api_cert", flag: Some("tls-api-cert"), env: "SESAME_TLS_API_CERT",
        given: [r#""/vf""#, "/ve", "/vc"],
        holds: [r#"Some("/vf")"#, r#"Some("/ve")"#, r#"Some("/vc")"#],
        read: |s| format!("{:?}", s.tls.api_cert),
    },
    Row {
        key: "tls.api_key", flag: Some("tls-api-key"), env: "SESAME_TLS_API_KEY",
        given: [r#""/wf""#, "/we", "/wc"],
        holds: [r#"Some("/wf")"#, r#"Some("/we")"#, r#"Some("/wc")"#],
        read: |s| format!("{:?}", s.tls.api_key),
    },
    Row {
        key: "tls.api_client_ca", flag: Some("tls-api-client-ca"),
        env: "SESAME_TLS_API_CLIENT_CA",
        given: [r#""/xf""#, "/xe", "/xc"],
        holds: [r#"Some("/xf")"#, r#"Some("/xe")"#, r#"Some("/xc")"#],
        read: |s| format!("{:?}", s.tls.api_client_ca),
    },
    Row {
        key: "backend.endpoint", flag: Some("backend"), env: "SESAME_BACKEND",
        given: [r#""http://f:9000""#, "http://e:9000", "http://c:9000"],
        holds: [r#"Some("http://f:9000")"#, r#"Some("http://e:9000")"#, r#"Some("http://c:9000")"#],
        read: |s| format!("{:?}", s.backend.endpoint),
    },
    Row {
        key: "backend.region", flag: Some("backend-region"), env: "SESAME_BACKEND_REGION",
        given: [r#""f-2""#, "e-2", "c-2"],
        holds: [r#"Some("f-2")"#, r#"Some("e-2")"#, r#"Some("c-2")"#],
        read: |s| format!("{:?}", s.backend.region),
    },
    // The flag and its variable say the opposite of the file's key.
    Row {
        key: "backend.path_style", flag: Some("backend-virtual-hosted"),
        env: "SESAME_BACKEND_VIRTUAL_HOSTED",
        given: ["true", "true", "false"],
        holds: ["Some(true)", "Some(false)", "Some(true)"],
        read: |s| format!("{:?}", s.backend.path_style),
    },
    Row {
        key: "backend.access_key_id", flag: Some("backend-access-key-id"),
        env: "SESAME_BACKEND_ACCESS_KEY_ID",
        given: [r#""GKF""#, "GKE", "GKC"],
        holds: [r#"Some("GKF")"#, r#"Some("GKE")"#, r#"Some("GKC")"#],
        read: |s| format!("{:?}", s.backend.access_key_id),
    },
    Row {
        key: "backend.secret_access_key", flag: None, env: "SESAME_BACKEND_SECRET_ACCESS_KEY",
        given: [r#""sf""#, "se", ""],
        holds: [r#"Some("sf")"#, r#"Some("se")"#, ""],
        read: |s| exposed(s.backend.secret_access_key.as_ref()),
    },
    Row {
        key: "backend.secret_access_key_file", flag: Some("backend-secret-access-key-file"),
        env: "SESAME_BACKEND_SECRET_ACCESS_KEY_FILE",
        given: [r#""/kf""#, "/ke", "/kc"],
        holds: [r#"Some("/kf")"#, r#"Some("/ke")"#, r#"Some("/kc")"#],
        read: |s| format!("{:?}", s.backend.secret_access_key_file),
    },
    Row {
        key: "backend.ca", flag: Some("backend-ca"), env: "SESAME_BACKEND_CA",
        given: [r#""/caf""#, "/cae", "/cac"],
        holds: [r#"Some("/caf")"#, r#"Some("/cae")"#, r#"Some("/cac")"#],
        read: |s| format!("{:?}", s.backend.ca),
    },
    Row {
        key: "audit.rotate_bytes", flag: Some("audit-rotate-bytes"),
        env: "SESAME_AUDIT_ROTATE_BYTES",
        given: ["1", "2", "3"],
        holds: ["Some(1)", "Some(2)", "Some(3)"],
        read: |s| format!("{:?}", s.audit.rotate_bytes),
    },
    Row {
        key: "audit.retain_days", flag: Some("audit-retain-days"), env: "SESAME_AUDIT_RETAIN_DAYS",
        given: ["4", "5", "6"],
        holds: ["Some(4)", "Some(5)", "Some(6)"],
        read: |s| format!("{:?}", s.audit.retain_days),
    },
    Row {
        key: "audit.forward_url", flag: Some("audit-forward-url"), env: "SESAME_AUDIT_FORWARD_URL",
        given: [r#""https://f""#, "https://e", "https://c"],
        holds: [r#"Some("https://f")"#, r#"Some("https://e")"#, r#"Some("https://c")"#],
        read: |s| format!("{:?}", s.audit.forward_url),
    },
    Row {
        key: "audit.forward_secret", flag: None, env: "SESAME_AUDIT_FORWARD_SECRET",
        given: [r#""hf""#, "he", ""],
        holds: [r#"Some("hf")"#, r#"Some("he")"#, ""],
        read: |s| exposed(s.audit.forward_secret.as_ref()),
    },
    Row {
        key: "audit.forward_secret_file", flag: Some("audit-forward-secret-file"),
        env: "SESAME_AUDIT_FORWARD_SECRET_FILE",
        given: [r#""/hf""#, "/he", "/hc"],
        holds: [r#"Some("/hf")"#, r#"Some("/he")"#, r#"Some("/hc")"#],
        read: |s| format!("{:?}", s.audit.forward_secret_file),
    },
    Row {
        key: "audit.dir", flag: Some("audit-dir"), env: "SESAME_AUDIT_DIR",
        given: [r#""/af""#, "/ae", "/ac"],
        holds: [r#"Some("/af")"#, r#"Some("/ae")"#, r#"Some("/ac")"#],
        read: |s| format!("{:?}", s.audit.dir),
    },
    Row {
        key: "store_stale_after", flag: Some("store-stale-after"),
        env: "SESAME_STORE_STALE_AFTER",
        given: [r#""7s""#, "8s", "9s"],
        holds: [r#"Some("7s")"#, r#"Some("8s")"#, r#"Some("9s")"#],
        read: |s| format!("{:?}", s.store_stale_after),
    },
    Row {
        key: "listen.header_timeout", flag: Some("listen-header-timeout"),
        env: "SESAME_LISTEN_HEADER_TIMEOUT",
        given: [r#""1s""#, "2s", "3s"],
        holds: [r#"Some("1s")"#, r#"Some("2s")"#, r#"Some("3s")"#],
        read: |s| format!("{:?}", s.listen.header_timeout),
    },
    Row {
        key: "listen.idle_timeout", flag: Some("listen-idle-timeout"),
        env: "SESAME_LISTEN_IDLE_TIMEOUT",
        given: [r#""4s""#, "5s", "6s"],
        holds: [r#"Some("4s")"#, r#"Some("5s")"#, r#"Some("6s")"#],
        read: |s| format!("{:?}", s.listen.idle_timeout),
    },
    Row {
        key: "listen.max_connections", flag: Some("listen-max-connections"),
        env: "SESAME_LISTEN_MAX_CONNECTIONS",
        given: ["7", "8", "9"],
        holds: ["Some(7)", "Some(8)", "Some(9)"],
        read: |s| format!("{:?}", s.listen.max_connections),
    },
    Row {
        key: "listen.drain_grace", flag: Some("listen-drain-grace"),
        env: "SESAME_LISTEN_DRAIN_GRACE",
        given: [r#""7s""#, "8s", "9s"],
        holds: [r#"Some("7s")"#, r#"Some("8s")"#, r#"Some("9s")"#],
        read: |s| format!("{:?}", s.listen.drain_grace),
    },
];

/// Settings the file alone gives.
const FILE_ONLY: [&str; 3] = ["webhook", "oidc", "tls.api_clients"];

impl Row {
    fn toml(&self) -> String {
        match self.key.split_once('.') {
            Some((table, key)) => format!("[{table}]\n{key} = {}\n", self.given[0]),
            None => format!("{} = {}\n", self.key, self.given[0]),
        }
    }

    /// The settings with the file, the environment and the flag each saying this setting or
    /// not.
    fn layered(&self, file: bool, env: bool, flag: bool) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sesame.toml");
        std::fs::write(&path, if file { self.toml() } else { String::new() }).unwrap();
        let vars: HashMap<&str, &str> = [(self.env, self.given[1])].into_iter().collect();
        let lookup = |name: &str| vars.get(name).filter(|_| env).map(|v| (*v).to_owned());
        let flags = match (self.flag, flag) {
            (Some(flag), true) => parse_flags(&[&format!("--{flag}={}", self.given[2])]),
            _ => Settings::default(),
        };
        Settings::layered(flags, &lookup, Some(&path)).unwrap()
    }
}

fn parse_flags(args: &[&str]) -> Settings {
    let matches = flags().try_get_matches_from(args).unwrap();
    Settings::from_arg_matches(&matches).unwrap()
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn each_setting_is_taken_from_its_flag_else_its_variable_else_the_file() {
    for row in ROWS {
        let read = |file, env, flag| (row.read)(&row.layered(file, env, flag));
        let none = (row.read)(&Settings::default());
        assert_eq!(
            read(true, false, false),
            row.holds[0],
            "{}: the file",
            row.key
        );
        assert_eq!(
            read(true, true, false),
            row.holds[1],
            "{}: env over file",
            row.key
        );
        assert_eq!(
            read(false, true, false),
            row.holds[1],
            "{}: env alone",
            row.key
        );
        assert_eq!(
            read(false, false, false),
            none,
            "{}: nothing given",
            row.key
        );
        if row.flag.is_some() {
            assert_eq!(
                read(true, true, true),
                row.holds[2],
                "{}: flag over both",
                row.key
            );
            assert_eq!(
                read(false, false, true),
                row.holds[2],
                "{}: flag alone",
                row.key
            );
        }
    }
}

#[test]
fn the_rows_cover_every_setting_once() {
    let mut declared = BTreeSet::new();
    for field in Settings::FIELDS {
        let table: &[&str] = match *field {
            "backend" => BackendSettings::FIELDS,
            "audit" => AuditSettings::FIELDS,
            "listen" => ListenSettings::FIELDS,
            "tls" => TlsSettings::FIELDS,
            top if FILE_ONLY.contains(&top) => continue,
            top => {
                declared.insert(top.to_owned());
                continue;
            }
        };
        declared.extend(
            table
                .iter()
                .map(|key| format!("{field}.{key}"))
                .filter(|key| !FILE_ONLY.contains(&key.as_str())),
        );
    }
    let rows: BTreeSet<String> = ROWS.iter().map(|r| r.key.to_owned()).collect();
    assert_eq!(rows, declared);
    assert_eq!(rows.len(), ROWS.len(), "a setting has two rows");

    let longs: BTreeSet<String> = flags()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    let rows: BTreeSet<String> = ROWS
        .iter()
        .filter_map(|r| r.flag.map(str::to_owned))
        .collect();
    assert_eq!(rows, longs);
    for row in ROWS {
        if let Some(flag) = row.flag {
            assert_eq!(env_name(flag), row.env, "{flag}");
        }
    }
}

#[test]
fn the_readme_documents_every_setting() {
    let readme = include_str!("../../README.md");
    for row in ROWS {
        let flag = row
            .flag
            .map_or_else(|| "none".to_owned(), |f| format!("`--{f}`"));
        let key = format!("| `{}`", row.key);
        let line = readme
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("README has no row for {}", row.key));
        assert!(
            line.contains(&format!("| {flag}")) && line.contains(&format!("| `{}` |", row.env)),
            "README's row for {} names {flag} and {}: {line}",
            row.key,
            row.env
        );
    }
}

#[test]
fn serve_help_names_each_flags_variable() {
    let help = document_env(flags()).render_help().to_string();
    for row in ROWS {
        if let Some(flag) = row.flag {
            let line = help
                .lines()
                .skip_while(|l| !l.contains(&format!("--{flag}")))
                .take(2)
                .collect::<String>();
            assert!(
                line.contains(&format!("[env: {}]", row.env)),
                "{flag}: {line}"
            );
        }
    }
    for secret in [BACKEND_SECRET_ENV, AUDIT_FORWARD_SECRET_ENV] {
        assert!(
            help.contains(secret),
            "{secret} is named next to its file's flag"
        );
    }
}

#[test]
fn switches_can_be_turned_off_by_a_higher_layer() {
    let s = parse_flags(&["--require-mfa", "--backend-virtual-hosted"]);
    assert_eq!(
        (s.require_mfa, s.backend.path_style),
        (Some(true), Some(false))
    );
    let s = parse_flags(&["--require-mfa=no", "--backend-virtual-hosted=false"]);
    assert_eq!(
        (s.require_mfa, s.backend.path_style),
        (Some(false), Some(true))
    );
    let env = |name: &str| (name == "SESAME_REQUIRE_MFA").then(|| "0".to_owned());
    let file = Settings::from_toml("require_mfa = true").unwrap();
    let merged = Settings::from_env(&env).unwrap().over(file);
    assert_eq!(merged.require_mfa, Some(false));
}

#[test]
fn a_bad_variable_is_named_and_an_empty_one_is_unset() {
    let env = |name: &str| (name == "SESAME_S3_ADDR").then(|| "nowhere".to_owned());
    assert_eq!(
        Settings::from_env(&env).unwrap_err().0,
        "SESAME_S3_ADDR=\"nowhere\" is not valid: invalid socket address syntax"
    );
    let env = |name: &str| (name == "SESAME_AUDIT_RETAIN_DAYS").then(|| "soon".to_owned());
    assert_eq!(
        Settings::from_env(&env).unwrap_err().0,
        "SESAME_AUDIT_RETAIN_DAYS=\"soon\" is not valid: invalid digit found in string"
    );
    let empty = |_: &str| Some(String::new());
    let s = Settings::from_env(&empty).unwrap();
    assert!(s.s3_addr.is_none() && s.backend.secret_access_key.is_none());
}

#[test]
fn secret_flags_do_not_exist() {
    for flag in ["--backend-secret-access-key=x", "--audit-forward-secret=x"] {
        let err = flags().try_get_matches_from([flag]).unwrap_err();
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::UnknownArgument,
            "{flag}"
        );
    }
}

#[test]
fn the_file_alone_gives_webhooks_the_identity_provider_and_a_backend_directory() {
    let s = Settings::from_toml(
        r#"
        [backend]
        directory = "/srv/objects"
        [[webhook]]
        url = "https://hooks.example/sesame"
        [oidc]
        issuer = "https://login.example"
        audience = "sesame"
        "#,
    )
    .unwrap();
    let c = Config::resolve(s).unwrap();
    assert!(matches!(&c.backend, Backend::Directory(p) if p == Path::new("/srv/objects")));
    assert_eq!(c.webhooks[0].url, "https://hooks.example/sesame");
    assert_eq!(c.oidc.unwrap().audience, "sesame");
}

#[test]
fn no_debug_of_the_configuration_shows_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let forward_key = dir.path().join("forward.key");
    std::fs::write(&forward_key, "forward-secret-from-a-file\n").unwrap();
    let file = dir.path().join("sesame.toml");
    std::fs::write(
        &file,
        format!(
            r#"
            [backend]
            endpoint = "https://s3.example"
            access_key_id = "GK1"
            secret_access_key = "backend-secret-in-the-file"
            [audit]
            forward_url = "https://siem.example"
            forward_secret_file = {forward_key:?}
            [[webhook]]
            url = "https://hooks.example"
            secret = "webhook-secret-in-the-file"
            "#
        ),
    )
    .unwrap();
    let env = |name: &str| (name == BACKEND_SECRET_ENV).then(|| "backend-secret-in-env".to_owned());
    let secrets = [
        "backend-secret-in-the-file",
        "backend-secret-in-env",
        "forward-secret-from-a-file",
        "webhook-secret-in-the-file",
    ];
    let file_layer = Settings::from_file(&file).unwrap();
    let env_layer = Settings::from_env(&env).unwrap();
    let config = Config::load(Settings::default(), &env, Some(&file)).unwrap();
    let shown = format!("{file_layer:?} {env_layer:?} {config:?} {config:#?}");
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    // They are there, only not shown.
    let Backend::Endpoint { credentials, .. } = &config.backend else {
        panic!("{:?}", config.backend)
    };
    assert_eq!(
        credentials.as_ref().unwrap().1.expose(),
        "backend-secret-in-env"
    );
    let forward = config.audit.forward.unwrap();
    assert_eq!(
        forward.secret.unwrap().expose(),
        "forward-secret-from-a-file"
    );
    assert_eq!(
        config.webhooks[0].secret.as_ref().unwrap().expose(),
        "webhook-secret-in-the-file"
    );
}

#[test]
fn defaults_are_a_local_directory_on_loopback() {
    let c = Config::resolve(Settings {
        data_dir: Some("/d".into()),
        ..Settings::default()
    })
    .unwrap();
    assert!(matches!(&c.backend, Backend::Directory(p) if p == Path::new("/d/objects")));
    assert!(c.s3_addr.ip().is_loopback() && c.api_addr.ip().is_loopback());
    assert_eq!(
        (c.region.as_str(), c.log_json, c.require_mfa),
        ("sesame", false, false)
    );
}

/// A gateway on its default region ("sesame", so that clients presign with SigV4) still
/// signs for AWS's default region on a backend whose region nobody gave.
#[test]
fn the_backend_region_is_the_gateways_when_set_else_us_east_1() {
    let backend_region = |toml: &str| {
        let toml = format!("{toml}\n[backend]\nendpoint = \"http://127.0.0.1:3900\"\n");
        match Config::resolve(Settings::from_toml(&toml).unwrap())
            .unwrap()
            .backend
        {
            Backend::Endpoint { region, .. } => region,
            Backend::Directory(_) => unreachable!("an endpoint was given"),
        }
    };
    assert_eq!(backend_region(""), "us-east-1");
    assert_eq!(backend_region("region = \"garage\""), "garage");
}

#[test]
fn a_backend_url_takes_the_credentials_and_region_given() {
    let s = Settings::from_toml(
        r#"
        region = "eu-west-1"
        [backend]
        endpoint = "http://127.0.0.1:3900"
        access_key_id = "GK1"
        secret_access_key = "s"
        "#,
    )
    .unwrap();
    let c = Config::resolve(s).unwrap();
    assert!(matches!(
        &c.backend,
        Backend::Endpoint { url, region, credentials: Some(_), path_style: true, ca: None }
            if url == "http://127.0.0.1:3900" && region == "eu-west-1"
    ));
}

#[test]
fn the_audit_table_has_defaults() {
    let c = Config::resolve(Settings::default()).unwrap();
    assert_eq!(c.audit.rotate_bytes, crate::audit::DEFAULT_ROTATE_BYTES);
    assert!(c.audit.retain_days.is_none() && c.audit.forward.is_none());
    // No trail root: the gateway's is `<data dir>/audit`; one given is where the chains go.
    assert_eq!(c.audit.root, None);
    let c = Config::resolve(Settings::from_toml("[audit]\ndir = \"/srv/trail\"").unwrap()).unwrap();
    assert_eq!(c.audit.root.as_deref(), Some(Path::new("/srv/trail")));
}

#[test]
fn audit_mistakes_name_the_value() {
    let resolve = |toml: &str| {
        Config::resolve(Settings::from_toml(toml).unwrap())
            .unwrap_err()
            .0
    };
    assert!(resolve("[audit]\nrotate_bytes = 0").contains("rotate_bytes 0"));
    assert!(resolve("[audit]\nretain_days = 0").contains("retain_days 0"));
    assert!(resolve("[audit]\nforward_url = \"siem:514\"").contains("\"siem:514\" must be http"));
    assert!(
        resolve("[audit]\nforward_secret_file = \"/nonexistent/k\"").contains("/nonexistent/k")
    );
    assert!(resolve("[audit]\nforward_secret = \"k\"").contains("no forward_url"));
    let err = Settings::from_toml("[audit]\nretain = 3").unwrap_err().0;
    assert!(err.contains("retain"), "{err}");
}

#[test]
fn the_listen_table_has_defaults_and_checked_durations() {
    let c = Config::resolve(Settings::default()).unwrap();
    assert_eq!(c.listen, crate::listen::Settings::default());
    let resolve = |toml: &str| {
        Config::resolve(Settings::from_toml(toml).unwrap())
            .unwrap_err()
            .0
    };
    assert_eq!(
        resolve("[listen]\nidle_timeout = \"soon\""),
        "listen idle_timeout \"soon\" is not a duration like 10s or 1m"
    );
    assert!(resolve("[listen]\nmax_connections = 0").contains("max_connections 0"));
    let l = Config::resolve(Settings::from_toml("[listen]\ndrain_grace = \"1m\"").unwrap())
        .unwrap()
        .listen;
    assert_eq!(l.drain_grace, std::time::Duration::from_mins(1));
}

#[test]
fn mistakes_are_named() {
    let err = Settings::from_toml("s3_adr = \"x\"").unwrap_err().0;
    assert!(err.contains("s3_adr"), "{err}");
    let s = parse_flags(&["--backend=http://x", "--backend-access-key-id=id"]);
    let err = Config::load(s, &no_env, None).unwrap_err().0;
    assert!(err.contains("together"), "{err}");
    let err = Config::resolve(Settings::from_toml("log_format = \"xml\"").unwrap())
        .unwrap_err()
        .0;
    assert_eq!(err, "log format \"xml\" is not text or json");
}

#[test]
fn the_public_url_is_checked_and_loses_its_trailing_slash() {
    let resolve = |url: &str| {
        Config::resolve(Settings {
            public_url: Some(url.to_owned()),
            ..Settings::default()
        })
    };
    assert_eq!(
        resolve("https://files.example.com/")
            .unwrap()
            .public_url
            .as_deref(),
        Some("https://files.example.com")
    );
    let err = resolve("files.example.com").unwrap_err();
    assert_eq!(
        err.0,
        "public URL \"files.example.com\" is not like https://s3.example.com"
    );
}

#[test]
fn a_listener_off_loopback_needs_tls_or_the_operators_word() {
    let resolve = |toml: &str| Config::resolve(Settings::from_toml(toml).unwrap());
    let err = resolve(r#"s3_addr = "0.0.0.0:9440""#).unwrap_err().0;
    assert_eq!(
        err,
        "s3_addr 0.0.0.0:9440 is not a loopback address, and without TLS the credentials, session tokens, admin and user tokens, share links and objects sent through it would cross the network in clear: give --tls-cert and --tls-key, or --allow-plain-http if a proxy in front of Sesame terminates TLS"
    );
    let err = resolve(r#"api_addr = "[::]:9441""#).unwrap_err().0;
    assert!(
        err.starts_with("api_addr [::]:9441 is not a loopback address"),
        "{err}"
    );
    // TLS on both, or the operator saying a proxy terminates it, or loopback: it starts.
    let tls = "[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"";
    let c = resolve(&format!(
        "s3_addr = \"0.0.0.0:9440\"\napi_addr = \"0.0.0.0:9441\"\n{tls}"
    ))
    .unwrap();
    assert_eq!(c.tls.s3, c.tls.api);
    resolve("s3_addr = \"0.0.0.0:9440\"\nallow_plain_http = true").unwrap();
    resolve("s3_addr = \"[::1]:9440\"").unwrap();
    // TLS on the S3 listener covers the control API too, unless it has its own pair.
    let c = resolve(&format!(
        "{tls}\napi_cert = \"/ac.pem\"\napi_key = \"/ak.pem\""
    ))
    .unwrap();
    assert_eq!(c.tls.s3.unwrap().cert, Path::new("/c.pem"));
    assert_eq!(c.tls.api.unwrap().cert, Path::new("/ac.pem"));
    // The control API alone over TLS, its own pair given: the S3 listener stays plain.
    let c = resolve("[tls]\napi_cert = \"/ac.pem\"\napi_key = \"/ak.pem\"").unwrap();
    assert!(c.tls.s3.is_none() && c.tls.api.is_some());
}

#[test]
fn tls_mistakes_name_the_setting() {
    let resolve = |toml: &str| {
        Config::resolve(Settings::from_toml(toml).unwrap())
            .unwrap_err()
            .0
    };
    assert_eq!(
        resolve("[tls]\ncert = \"/c.pem\""),
        "tls cert and key must be given together"
    );
    assert_eq!(
        resolve("[tls]\napi_key = \"/k.pem\""),
        "tls api_cert and api_key must be given together"
    );
    assert!(
        resolve("[tls]\napi_client_ca = \"/ca.pem\"")
            .starts_with("tls api_client_ca is given but the control API has no TLS certificate"),
    );
    assert!(
        resolve("[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n[tls.api_clients]\n\"bot.example\" = \"bot\"")
            .starts_with("[tls.api_clients] is given but no api_client_ca")
    );
    assert_eq!(
        resolve("[backend]\nendpoint = \"http://minio:9000\"\nca = \"/ca.pem\""),
        "backend ca is given but the backend http://minio:9000 is not https://: there is no certificate to verify"
    );
}

#[test]
fn client_certificates_map_names_to_principals_from_the_file() {
    let c = Config::resolve(
        Settings::from_toml(
            r#"
            [tls]
            cert = "/c.pem"
            key = "/k.pem"
            api_client_ca = "/clients.pem"
            [tls.api_clients]
            "deploy-bot.ci.example" = "deploy-bot"
            "spiffe://example/ops" = "admin"
            "#,
        )
        .unwrap(),
    )
    .unwrap();
    let clients = c.tls.api_clients.unwrap();
    assert_eq!(clients.ca, Path::new("/clients.pem"));
    assert_eq!(clients.principals["deploy-bot.ci.example"], "deploy-bot");
    assert_eq!(clients.principals["spiffe://example/ops"], "admin");
}

#[test]
fn the_store_is_in_the_data_dir_or_a_postgres_url_and_goes_stale_after_a_duration() {
    let resolved = |store: Option<&str>| {
        Config::resolve(Settings {
            data_dir: Some("/d".into()),
            store: store.map(str::to_owned),
            ..Settings::default()
        })
    };
    assert_eq!(resolved(None).unwrap().store, StoreLocation::DataDir);
    let url = "postgres://sesame:hunter2@db.internal:5432/sesame";
    let StoreLocation::Postgres(kept) = resolved(Some(url)).unwrap().store else {
        panic!("a postgres store");
    };
    assert_eq!(kept.expose(), url);
    // A mistyped URL is refused, without echoing a password it may hold.
    let err = resolved(Some("mysql://sesame:hunter2@db.internal/sesame"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a postgres:// URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let stale_after = |given: Option<&str>| {
        Config::resolve(Settings {
            store_stale_after: given.map(str::to_owned),
            ..Settings::default()
        })
    };
    assert_eq!(
        stale_after(None).unwrap().store_stale_after,
        crate::store::STALE_AFTER
    );
    assert_eq!(
        stale_after(Some("2s")).unwrap().store_stale_after,
        std::time::Duration::from_secs(2)
    );
    for bad in ["soon", "0s"] {
        assert_eq!(
            stale_after(Some(bad)).unwrap_err().to_string(),
            format!("configuration: store_stale_after {bad:?} is not a duration like 5s or 1m")
        );
    }
}
