//! The command tree. `serve` runs the gateway; the other verbs talk to its control API and
//! print a table for people or JSON for scripts.

mod client;
mod output;
mod policy;
mod process;
mod workflow;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

use self::client::{CliError, Client};
use crate::api::views::{CreatedGrant, CredentialView, GrantView};
use crate::config::{Config, Overrides, default_data_dir};
use crate::grant::scope::parse_actions;

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
    command: Command,
}

#[derive(Debug, Args)]
struct Connection {
    /// Control API of the gateway, e.g. `http://127.0.0.1:9441` [default: from the data directory]
    #[arg(long, env = "SESAME_SERVER", global = true)]
    server: Option<String>,
    /// Admin token [default: admin.token in the data directory]
    #[arg(long, env = "SESAME_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Data directory of a local gateway, used to find its address and token.
    #[arg(long = "data-dir", env = "SESAME_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
}

impl Connection {
    fn client(&self) -> Result<Client, CliError> {
        let data_dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
        Client::discover(self.server.clone(), self.token.clone(), &data_dir)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (S3 listener and control API).
    Serve(ServeArgs),
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
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "SESAME_CONFIG")]
    config: Option<PathBuf>,
    /// Where the store, keys and admin token live [default: ~/.local/share/sesame]
    #[arg(long = "data-dir", env = "SESAME_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// S3 listener [default: 127.0.0.1:9440]
    #[arg(long, env = "SESAME_S3_ADDR")]
    s3_addr: Option<SocketAddr>,
    /// Control API listener [default: 127.0.0.1:9441]
    #[arg(long, env = "SESAME_API_ADDR")]
    api_addr: Option<SocketAddr>,
    /// Backend: an S3 endpoint URL, or a directory whose subfolders are buckets
    /// [default: <data-dir>/objects]
    #[arg(long, env = "SESAME_BACKEND")]
    backend: Option<String>,
    /// Domain for virtual-hosted-style requests (bucket.DOMAIN).
    #[arg(long, env = "SESAME_DOMAIN")]
    domain: Option<String>,
    #[arg(long, env = "SESAME_BACKEND_REGION")]
    backend_region: Option<String>,
    #[arg(long, env = "SESAME_BACKEND_ACCESS_KEY_ID")]
    backend_access_key_id: Option<String>,
    #[arg(long, env = "SESAME_BACKEND_SECRET_ACCESS_KEY", hide_env_values = true)]
    backend_secret_access_key: Option<String>,
    #[arg(long, env = "SESAME_BACKEND_SECRET_ACCESS_KEY_FILE")]
    backend_secret_access_key_file: Option<PathBuf>,
    /// Address the backend with virtual-hosted style instead of path style.
    #[arg(long, env = "SESAME_BACKEND_VIRTUAL_HOSTED")]
    backend_virtual_hosted: bool,
    /// `text` or `json`.
    #[arg(long, env = "SESAME_LOG_FORMAT")]
    log_format: Option<String>,
    /// Folder of policy files [default: ./policies if it exists]
    #[arg(long, env = "SESAME_POLICIES")]
    policies: Option<PathBuf>,
    /// Require a fresh MFA code for every request and approval.
    #[arg(long, env = "SESAME_REQUIRE_MFA")]
    require_mfa: bool,
}

#[derive(Debug, Subcommand)]
enum GrantCommand {
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
enum UserCommand {
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
enum MfaCommand {
    /// Enrol a TOTP authenticator; prints the otpauth URI and the base32 secret.
    Enroll {
        #[command(flatten)]
        conn: Connection,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
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
        /// Policy folder.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// The requester.
        #[arg(long = "as")]
        user: String,
        /// A group of the requester (repeat for several).
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
enum Format {
    /// `export AWS_...=` lines for a shell.
    Env,
    /// aws-cli `credential_process` JSON, plus `GrantId`.
    Json,
    /// A `[profile ...]` block for ~/.aws/config.
    AwsProfile,
}

#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Denied(explanation)) => {
            print!("{explanation}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[allow(clippy::too_many_lines)] // a flat dispatch table: one short arm per verb
async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Grant(GrantCommand::Create {
            conn,
            scope,
            principal,
            actions,
            duration,
            format,
            profile,
        }) => {
            let actions = parse_actions(&actions).map_err(|e| CliError::Usage(e.0))?;
            let duration = crate::duration::parse(&duration).map_err(CliError::Usage)?;
            let client = conn.client()?;
            let body = json!({"scope": scope, "principal": principal, "actions": actions, "duration_seconds": duration.whole_seconds()});
            let created: CreatedGrant = client.post("/v1/grants", Some(body)).await?;
            let endpoint = s3_endpoint(&client).await?;
            eprintln!(
                "grant {} for {} on {} ({}) until {}",
                created.grant.id,
                created.grant.principal,
                created.grant.scope,
                output::actions(&created.grant.actions),
                output::time(created.grant.expires_at)
            );
            print!(
                "{}",
                output::credentials(
                    &created.credentials,
                    format_of(format),
                    &endpoint,
                    profile.as_deref()
                )
            );
            Ok(())
        }
        Command::Grant(GrantCommand::Revoke { conn, id, json })
        | Command::Revoke { conn, id, json } => {
            let grant: GrantView = conn
                .client()?
                .post(&format!("/v1/grants/{id}/revoke"), None)
                .await?;
            print!("{}", output::grants(&[grant], json));
            Ok(())
        }
        Command::Grant(GrantCommand::List { conn, json }) | Command::Grants { conn, json } => {
            let grants: Vec<GrantView> = conn.client()?.get("/v1/grants").await?;
            print!("{}", output::grants(&grants, json));
            Ok(())
        }
        Command::Grant(GrantCommand::Show { conn, id, json }) => {
            let grant: GrantView = conn.client()?.get(&format!("/v1/grants/{id}")).await?;
            print!("{}", output::grant(&grant, json));
            Ok(())
        }
        Command::Policy(command) => run_policy(command).await,
        Command::Request {
            conn,
            scope,
            actions,
            duration,
            why,
            totp,
            starts_at,
            json,
        } => {
            let new = workflow::NewRequest {
                scope: &scope,
                actions: actions.actions()?,
                duration: &duration,
                why: why.as_deref(),
                totp: totp.as_deref(),
                starts_at: starts_at.as_deref(),
            };
            print!("{}", workflow::request(&conn.client()?, new, json).await?);
            Ok(())
        }
        Command::Requests {
            conn,
            pending,
            json,
        } => {
            print!("{}", workflow::list(&conn.client()?, pending, json).await?);
            Ok(())
        }
        Command::Approve {
            conn,
            id,
            totp,
            json,
        } => {
            let body = serde_json::json!({"totp": totp});
            print!(
                "{}",
                workflow::decide(&conn.client()?, &id, "approve", body, json).await?
            );
            Ok(())
        }
        Command::Deny {
            conn,
            id,
            why,
            totp,
            json,
        } => {
            let body = serde_json::json!({"reason": why, "totp": totp});
            print!(
                "{}",
                workflow::decide(&conn.client()?, &id, "deny", body, json).await?
            );
            Ok(())
        }
        Command::Withdraw { conn, id, json } => {
            print!(
                "{}",
                workflow::decide(
                    &conn.client()?,
                    &id,
                    "withdraw",
                    serde_json::json!({}),
                    json
                )
                .await?
            );
            Ok(())
        }
        Command::Extend {
            conn,
            id,
            duration,
            why,
            totp,
            json,
        } => {
            let extra = crate::duration::parse(&duration).map_err(CliError::Usage)?;
            let body = serde_json::json!({"duration_seconds": extra.whole_seconds(), "justification": why, "totp": totp});
            print!(
                "{}",
                workflow::extend(&conn.client()?, &id, body, json).await?
            );
            Ok(())
        }
        Command::User(UserCommand::Add {
            conn,
            name,
            groups,
            json,
        }) => {
            print!(
                "{}",
                workflow::add_user(&conn.client()?, &name, &groups, json).await?
            );
            Ok(())
        }
        Command::User(UserCommand::List { conn, json }) => {
            print!("{}", workflow::list_users(&conn.client()?, json).await?);
            Ok(())
        }
        Command::Mfa(MfaCommand::Enroll { conn, json }) => {
            print!("{}", workflow::enroll_mfa(&conn.client()?, json).await?);
            Ok(())
        }
        Command::Whoami { conn, json } => {
            print!("{}", workflow::whoami(&conn.client()?, json).await?);
            Ok(())
        }
        Command::Credentials {
            conn,
            grant,
            scope,
            actions,
            duration,
            why,
            totp,
            wait,
            format,
            profile,
        } => {
            let client = conn.client()?;
            let credentials: CredentialView = match (grant, scope) {
                (Some(grant), _) => {
                    client
                        .post(&format!("/v1/grants/{grant}/credentials"), None)
                        .await?
                }
                (None, Some(scope)) => {
                    let wanted = process::Wanted {
                        scope: &scope,
                        actions: actions.actions()?,
                        duration: &duration,
                        why: why.as_deref(),
                        totp: totp.as_deref(),
                        wait: &wait,
                    };
                    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
                    process::credentials_for_scope(&client, &wanted, now).await?
                }
                (None, None) => {
                    return Err(CliError::Usage(
                        "pass --grant ID or --scope s3://...".into(),
                    ));
                }
            };
            let endpoint = s3_endpoint(&client).await?;
            print!(
                "{}",
                output::credentials(
                    &credentials,
                    format_of(format),
                    &endpoint,
                    profile.as_deref()
                )
            );
            Ok(())
        }
        Command::Login { conn } => {
            let client = conn.client()?;
            let me: crate::api::views::WhoAmI = client.get("/v1/whoami").await?;
            let path = client.save_login()?;
            println!(
                "logged in as {} ({}); kept in {}",
                me.name,
                me.groups.join(", "),
                path.display()
            );
            Ok(())
        }
    }
}

async fn run_policy(command: PolicyCommand) -> Result<(), CliError> {
    match command {
        PolicyCommand::Reload { conn, json } => {
            let status: serde_json::Value =
                conn.client()?.post("/v1/policies/reload", None).await?;
            print!("{}", output::policy_status(&status, json));
            Ok(())
        }
        PolicyCommand::Status { conn, json } => {
            let status: serde_json::Value = conn.client()?.get("/v1/policies").await?;
            print!("{}", output::policy_status(&status, json));
            Ok(())
        }
        PolicyCommand::Check { dir } => {
            print!("{}", policy::check(&dir)?);
            Ok(())
        }
        PolicyCommand::Explain {
            policies,
            user,
            groups,
            scope,
            actions,
            duration,
            why,
            json,
        } => {
            let actions = actions.actions()?;
            let args = policy::ExplainArgs {
                dir: &policies,
                user: &user,
                groups: &groups,
                scope: &scope,
                actions,
                duration: &duration,
                why: why.as_deref(),
            };
            print!("{}", policy::explain(&args, json)?);
            Ok(())
        }
    }
}

fn format_of(f: Format) -> output::CredentialFormat {
    match f {
        Format::Env => output::CredentialFormat::Env,
        Format::Json => output::CredentialFormat::Json,
        Format::AwsProfile => output::CredentialFormat::AwsProfile,
    }
}

async fn s3_endpoint(client: &Client) -> Result<output::Endpoint, CliError> {
    let health: serde_json::Value = client.get("/v1/health").await?;
    let field = |name: &str| {
        health
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Ok(output::Endpoint {
        url: field("s3_endpoint"),
        region: field("region"),
    })
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let overrides = Overrides {
        data_dir: args.data_dir,
        s3_addr: args.s3_addr,
        api_addr: args.api_addr,
        backend: args.backend,
        domain: args.domain,
        backend_region: args.backend_region,
        backend_access_key_id: args.backend_access_key_id,
        backend_secret_access_key: args.backend_secret_access_key,
        backend_secret_access_key_file: args.backend_secret_access_key_file,
        backend_path_style: args.backend_virtual_hosted.then_some(false),
        log_format: args.log_format,
        policies: args.policies,
        require_mfa: args.require_mfa.then_some(true),
    };
    let config = Config::load(args.config.as_deref(), overrides)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    init_logging(config.log_json);
    let clock: crate::clock::SharedClock = Arc::new(crate::clock::SystemClock);
    let running = crate::server::start(&config, clock)
        .await
        .map_err(|e| CliError::Unreachable(e.to_string()))?;
    tracing::info!(s3 = %running.s3_addr, api = %running.api_addr, backend = ?config.backend, "sesame is serving");
    println!(
        "Sesame is serving S3 on http://{} (backend: {:?})",
        running.s3_addr, config.backend
    );
    println!(
        "Control API on http://{}; admin token in {}",
        running.api_addr,
        running.admin_token_path.display()
    );
    println!();
    println!("Grant yourself access and point aws-cli at it:");
    println!(
        "  eval \"$(sesame grant create s3://my-bucket/ --to me --actions read,list,write,delete --for 1h)\""
    );
    println!("  aws s3 ls s3://my-bucket/");
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!(error = %e, "cannot wait for ctrl-c");
    }
    tracing::info!("stopping");
    Ok(())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SESAME_LOG")
        .unwrap_or_else(|_| "info,s3s=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
