//! The command tree: every verb, flag and environment variable, in one place.

use std::path::PathBuf;

use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};

use super::client::{CliError, Client};
use super::workflow;
use crate::config::default_data_dir;

#[derive(Debug, Parser)]
#[command(
    name = "sesame",
    version,
    about = "Just-in-time access gateway for S3 object storage"
)]
#[command(
    after_help = "Exit codes: 0 ok, 1 refused by the server, 2 bad usage, 3 server unreachable, 4 not found."
)]
pub struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Args)]
pub(super) struct Connection {
    /// Control API of the gateway, e.g. `http://127.0.0.1:9441` [default: from the data directory]
    #[arg(long, env = "SESAME_SERVER", global = true)]
    pub(super) server: Option<String>,
    /// Bearer token; better in `SESAME_TOKEN`, as `ps` shows flags to every user [default:
    /// `sesame login`'s, else admin.token in the data directory]
    #[arg(long, env = "SESAME_TOKEN", global = true, hide_env_values = true)]
    pub(super) token: Option<String>,
    /// Data directory of a local gateway, used to find its address and token.
    #[arg(long = "data-dir", env = "SESAME_DATA_DIR", global = true)]
    pub(super) data_dir: Option<PathBuf>,
    /// CA bundle (PEM) an https:// server's certificate is verified against [default: the
    /// system's roots]
    #[arg(
        long = "ca-bundle",
        env = "SESAME_CA_BUNDLE",
        global = true,
        value_name = "FILE"
    )]
    pub(super) ca_bundle: Option<PathBuf>,
    /// Client certificate (PEM) to present to an https:// server that maps it to a principal;
    /// with no token given, it alone says who is calling
    #[arg(
        long = "client-cert",
        env = "SESAME_CLIENT_CERT",
        global = true,
        value_name = "FILE"
    )]
    pub(super) client_cert: Option<PathBuf>,
    /// Private key (PEM) of `--client-cert`
    #[arg(
        long = "client-key",
        env = "SESAME_CLIENT_KEY",
        global = true,
        value_name = "FILE"
    )]
    pub(super) client_key: Option<PathBuf>,
}

impl Cli {
    /// The command tree as clap declares it, with each of `serve`'s settings showing its
    /// variable in `--help`.
    #[must_use]
    pub fn command_documented() -> clap::Command {
        Cli::command().mut_subcommand("serve", crate::config::document_env)
    }
}

impl Connection {
    pub(super) fn client(&self) -> Result<Client, CliError> {
        let data_dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
        let trust = super::client::Trust {
            ca_bundle: self.ca_bundle.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        };
        Client::discover(self.server.clone(), self.token.clone(), trust, &data_dir)
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Run the gateway (S3 listener and control API).
    Serve(Box<ServeArgs>),
    /// Create, list, show and revoke grants (operator commands).
    #[command(subcommand)]
    Grant(GrantCommand),
    /// List grants (same as `grant list`).
    Grants {
        #[command(flatten)]
        conn: Connection,
        #[arg(long)]
        json: bool,
    },
    /// Ask for access to a scope, e.g. `sesame request s3://hr-data/payroll/ --read --for 1h --why INC-1`.
    Request {
        #[command(flatten)]
        conn: Connection,
        /// `s3://bucket/prefix/` or `s3://bucket/key`
        scope: String,
        #[command(flatten)]
        actions: workflow::ActionFlags,
        /// How long, e.g. 30m, 2h.
        #[arg(long = "for")]
        duration: String,
        /// The justification (policies may require a pattern, e.g. INC-1234).
        #[arg(long)]
        why: Option<String>,
        /// A fresh MFA code, where the policy asks the requester for one.
        #[arg(long)]
        totp: Option<String>,
        /// Start later (RFC 3339), e.g. 2026-12-01T09:00:00Z.
        #[arg(long)]
        starts_at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Requests you filed or can approve.
    Requests {
        #[command(flatten)]
        conn: Connection,
        /// Only those still pending.
        #[arg(long)]
        pending: bool,
        #[arg(long)]
        json: bool,
    },
    /// Approve a request (with --totp where the policy asks approvers for MFA).
    Approve {
        #[command(flatten)]
        conn: Connection,
        id: String,
        #[arg(long)]
        totp: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Deny a request; one denial by an approver ends it.
    Deny {
        #[command(flatten)]
        conn: Connection,
        id: String,
        /// Why, for the requester and the audit trail.
        #[arg(long)]
        why: String,
        #[arg(long)]
        totp: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a request you filed.
    Withdraw {
        #[command(flatten)]
        conn: Connection,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask for more time on a grant you hold; decided like a new request.
    Extend {
        #[command(flatten)]
        conn: Connection,
        /// The grant.
        id: String,
        /// How much longer, e.g. 30m.
        #[arg(long = "for")]
        duration: String,
        #[arg(long)]
        why: Option<String>,
        #[arg(long)]
        totp: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a grant now (same as `grant revoke`).
    Revoke {
        #[command(flatten)]
        conn: Connection,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Local users and their API tokens (admin).
    #[command(subcommand)]
    User(UserCommand),
    /// Multi-factor authentication.
    #[command(subcommand)]
    Mfa(MfaCommand),
    /// Remember a server and token for later commands (~/.config/sesame/login.toml, 0600).
    Login {
        #[command(flatten)]
        conn: Connection,
    },
    /// Query the audit trail: through the gateway named by --server (or `sesame login`),
    /// else from the data directory (--data-dir, or the default one); `audit verify` checks
    /// the data directory's trail offline.
    #[command(args_conflicts_with_subcommands = true)]
    Audit {
        #[command(flatten)]
        conn: Connection,
        /// The trail root, read for every replica's chain, offline (as `audit.dir` of the
        /// gateways that write it) [default: <data-dir>/audit]
        #[arg(
            long = "audit-dir",
            env = "SESAME_AUDIT_DIR",
            global = true,
            value_name = "DIR"
        )]
        audit_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: Option<AuditCommand>,
        #[command(flatten)]
        filter: super::audit::Filter,
        /// The records as the trail stores them, one JSON object per line (for a SIEM).
        #[arg(long)]
        json: bool,
        /// `table` or `csv`.
        #[arg(long, value_enum, default_value_t = super::audit::Shown::Table, conflicts_with = "json")]
        format: super::audit::Shown,
    },
    /// Make a link to one object that works with curl or a browser, e.g.
    /// `sesame share s3://hr-data/payroll/march.csv --ttl 15m --max-downloads 1`
    /// (or `share revoke ID`).
    #[command(args_conflicts_with_subcommands = true)]
    Share {
        #[command(subcommand)]
        command: Option<ShareCommand>,
        #[command(flatten)]
        conn: Connection,
        /// `s3://bucket/key` of an object a grant you hold can read.
        #[arg(required = true)]
        uri: Option<String>,
        /// How long the link works, e.g. 15m (capped by policy and by the grant's end).
        #[arg(long)]
        ttl: Option<String>,
        /// Downloads allowed (each GET counts, Range requests included; HEAD does not).
        #[arg(long)]
        max_downloads: Option<u32>,
        /// Why, for the audit trail.
        #[arg(long)]
        why: Option<String>,
        /// The grant to make it under [default: your active grant that reads it and ends last].
        #[arg(long)]
        grant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The auditor's report: who had access to what and when, who approved it and why, and
    /// what they did (admin or the `auditors` group).
    Report {
        #[command(flatten)]
        conn: Connection,
        /// Start of the period: a date (2026-03-01, midnight UTC) or an RFC 3339 time
        /// [default: 30 days before --to]
        #[arg(long)]
        from: Option<String>,
        /// End of the period (exclusive) [default: now]
        #[arg(long)]
        to: Option<String>,
        /// `html` (one self-contained file with charts), `json` or `csv`.
        #[arg(long, default_value = "html")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Share links you made (all of them for the admin).
    Shares {
        #[command(flatten)]
        conn: Connection,
        #[arg(long)]
        json: bool,
    },
    /// Who the token in use belongs to.
    Whoami {
        #[command(flatten)]
        conn: Connection,
        #[arg(long)]
        json: bool,
    },
    /// Check policy files and explain what they decide (no server needed).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print new credentials for a grant; `--format json` suits aws-cli's `credential_process`.
    Credentials {
        #[command(flatten)]
        conn: Connection,
        /// A grant you hold; or use --scope to find or request one.
        #[arg(long, conflicts_with = "scope", required_unless_present = "scope")]
        grant: Option<String>,
        /// As aws-cli's `credential_process`: reuse a grant on this scope or request one and wait.
        #[arg(long)]
        scope: Option<String>,
        #[command(flatten)]
        actions: workflow::ActionFlags,
        /// With --scope: how long to ask for.
        #[arg(long = "for", default_value = "1h")]
        duration: String,
        /// With --scope: the justification.
        #[arg(long)]
        why: Option<String>,
        /// With --scope: a fresh MFA code, where the policy asks for one.
        #[arg(long)]
        totp: Option<String>,
        /// With --scope: how long to wait for approval.
        #[arg(long, default_value = "15m")]
        wait: String,
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Profile name for `--format aws-profile` [default: sesame-<grant id>]
        #[arg(long)]
        profile: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(
    after_help = "Every setting is read, in this order, from its flag, from its SESAME_* variable, from the file given with --config, else its default. Secrets have no flag (ps shows every flag's value): give them in the environment, the file, or a file of their own."
)]
pub(super) struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "SESAME_CONFIG", hide_env_values = true)]
    pub(super) config: Option<PathBuf>,
    #[command(flatten)]
    pub(super) settings: crate::config::Settings,
}

#[derive(Debug, Subcommand)]
pub(super) enum GrantCommand {
    /// Grant a principal access to a scope now, and print credentials for it.
    Create {
        #[command(flatten)]
        conn: Connection,
        /// `s3://bucket/prefix/` (ends with '/') or `s3://bucket/key` (one object)
        scope: String,
        /// Who the grant is for.
        #[arg(long = "to")]
        principal: String,
        /// Comma-separated: read, list, write, delete.
        #[arg(long)]
        actions: String,
        /// How long, e.g. 30m, 2h, 1h30m, 1d.
        #[arg(long = "for")]
        duration: String,
        #[arg(long, value_enum, default_value_t = Format::Env)]
        format: Format,
        /// Profile name for `--format aws-profile` [default: sesame-<grant id>]
        #[arg(long)]
        profile: Option<String>,
    },
    /// Revoke a grant now; transfers under it are cut.
    Revoke {
        #[command(flatten)]
        conn: Connection,
        id: String,
        #[arg(long)]
        json: bool,
    },
    List {
        #[command(flatten)]
        conn: Connection,
        #[arg(long)]
        json: bool,
    },
    Show {
        #[command(flatten)]
        conn: Connection,
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
    /// Add a user; prints their API token once.
    Add {
        #[command(flatten)]
        conn: Connection,
        name: String,
        /// A group (repeat for several).
        #[arg(long = "group")]
        groups: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[command(flatten)]
        conn: Connection,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum MfaCommand {
    /// Enrol a TOTP authenticator; prints the otpauth URI and the base32 secret. Replacing
    /// one already enrolled needs a current code from it (--totp).
    Enroll {
        #[command(flatten)]
        conn: Connection,
        /// A current code of the authenticator already enrolled.
        #[arg(long)]
        totp: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a user's authenticator (admin), e.g. after a lost phone; they enrol anew.
    Reset {
        #[command(flatten)]
        conn: Connection,
        user: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum PolicyCommand {
    /// Reload the gateway's policies now (admin); an invalid folder keeps the last good set.
    Reload {
        #[command(flatten)]
        conn: Connection,
        #[arg(long)]
        json: bool,
    },
    /// The gateway's policy folder, rule count and the last reload error, if any.
    Status {
        #[command(flatten)]
        conn: Connection,
        #[arg(long)]
        json: bool,
    },
    /// Validate every *.toml in a folder; errors name file, line and field.
    Check {
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Say whether a request would be allowed, by which rule, and what it would need.
    Explain {
        #[command(flatten)]
        conn: Connection,
        /// Policy folder.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// The requester.
        #[arg(long = "as")]
        user: String,
        /// A group of the requester (repeat for several) [default: the local user's groups,
        /// looked up on the gateway]
        #[arg(long = "group")]
        groups: Vec<String>,
        /// `s3://bucket/prefix/` or `s3://bucket/key`
        scope: String,
        #[command(flatten)]
        actions: workflow::ActionFlags,
        /// How long, e.g. 30m, 2h.
        #[arg(long = "for")]
        duration: String,
        /// The justification.
        #[arg(long)]
        why: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// How credentials are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Format {
    /// `export AWS_...=` lines for a shell.
    Env,
    /// aws-cli `credential_process` JSON, plus `GrantId`.
    Json,
    /// A `[profile ...]` block for ~/.aws/config.
    AwsProfile,
}

#[derive(Debug, Subcommand)]
pub(super) enum ShareCommand {
    /// Revoke a link now; downloads in progress are cut.
    Revoke {
        #[command(flatten)]
        conn: Connection,
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Check every replica's hash chain; exit 0 when all are intact, 1 naming the first
    /// broken record of each broken one.
    Verify,
}
