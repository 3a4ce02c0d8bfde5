//! The command line. `serve` runs the gateway; the other verbs talk to its control API and
//! print a table for people or JSON for scripts. The tree itself is in `args.rs`.

mod args;
mod audit;
mod client;
mod output;
mod policy;
mod process;
mod workflow;

use std::process::ExitCode;
use std::sync::Arc;

use clap::FromArgMatches as _;

pub use self::args::Cli;
use self::args::{
    AuditCommand, Command, Format, GrantCommand, MfaCommand, PolicyCommand, ServeArgs,
    ShareCommand, UserCommand,
};
use self::client::{CliError, Client};
use crate::api::bodies;
use crate::api::views::{CreatedGrant, CredentialView, GrantView, ShareView};
use crate::config::Config;
use crate::model::scope::parse_actions;

#[must_use]
pub fn main() -> ExitCode {
    let matches = Cli::command_documented().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if token_on_command_line(&matches) {
        eprintln!(
            "warning: a token given with --token is visible to every user of this machine while the command runs (ps); set SESAME_TOKEN instead, or keep it with `sesame login`"
        );
    }
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

/// Whether `--token` was given on the command line (rather than in `SESAME_TOKEN`): it keeps
/// working, as the README shows it, but every user of the machine can read it.
fn token_on_command_line(matches: &clap::ArgMatches) -> bool {
    let mut deepest = matches;
    while let Some((_, sub)) = deepest.subcommand() {
        deepest = sub;
    }
    deepest.try_contains_id("token").unwrap_or(false)
        && deepest.value_source("token") == Some(clap::parser::ValueSource::CommandLine)
}

#[allow(clippy::too_many_lines)] // a flat dispatch table: one short arm per verb
async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve(*args).await,
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
            let body = bodies::CreateGrant {
                scope,
                principal,
                actions,
                duration_seconds: duration.whole_seconds(),
                starts_at: None,
            };
            let created: CreatedGrant = client.post("/v1/grants", &body).await?;
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
                .post_empty(&format!("/v1/grants/{id}/revoke"))
                .await?;
            if let (Some(note), false) = (&grant.note, json) {
                eprintln!("{note}");
            }
            print!("{}", output::grant(&grant, json));
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
        Command::Share {
            command: Some(ShareCommand::Revoke { conn, id, json }),
            ..
        } => {
            let share: ShareView = conn
                .client()?
                .post_empty(&format!("/v1/shares/{id}/revoke"))
                .await?;
            print!("{}", output::share(&share, json));
            Ok(())
        }
        Command::Share {
            command: None,
            conn,
            uri,
            ttl,
            max_downloads,
            why,
            grant,
            json,
        } => {
            let ttl_seconds = ttl
                .map(|t| crate::duration::parse(&t).map(time::Duration::whole_seconds))
                .transpose()
                .map_err(CliError::Usage)?;
            let body = bodies::CreateShare {
                uri: uri.ok_or_else(|| {
                    CliError::Usage("name the object to share: sesame share s3://bucket/key".into())
                })?,
                ttl_seconds,
                max_downloads,
                why,
                grant,
            };
            let share: ShareView = conn.client()?.post("/v1/shares", &body).await?;
            print!("{}", output::share(&share, json));
            Ok(())
        }
        Command::Report {
            conn,
            from,
            to,
            format,
            output,
        } => audit::report(&conn.client()?, from, to, &format, output.as_deref()).await,
        Command::Shares { conn, json } => {
            let shares: Vec<ShareView> = conn.client()?.get("/v1/shares").await?;
            print!("{}", output::shares(&shares, json));
            Ok(())
        }
        Command::Policy(command) => run_policy(command).await,
        Command::Audit {
            conn,
            audit_dir,
            command,
            filter,
            json,
            format,
        } => {
            let shown = if json { audit::Shown::Json } else { format };
            let remote = conn.server.is_some()
                || (conn.data_dir.is_none() && audit_dir.is_none() && client::has_saved_login());
            let root = || {
                let data_dir = conn
                    .data_dir
                    .clone()
                    .unwrap_or_else(crate::config::default_data_dir);
                crate::server::audit_root(&data_dir, audit_dir.as_deref())
            };
            match command {
                Some(AuditCommand::Verify) => print!("{}", audit::verify(&root())?),
                None if remote => {
                    let records = audit::query_remote(&conn.client()?, &filter, shown).await?;
                    print!("{records}");
                }
                None => print!("{}", audit::query(&root(), &filter, shown)?),
            }
            Ok(())
        }
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
            let body = bodies::Decide { totp, reason: None };
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
            let body = bodies::Decide {
                totp,
                reason: Some(why),
            };
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
                    bodies::Decide::default(),
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
            let body = bodies::Extend {
                duration_seconds: extra.whole_seconds(),
                justification: why,
                totp,
            };
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
        Command::Mfa(MfaCommand::Enroll { conn, totp, json }) => {
            print!(
                "{}",
                workflow::enroll_mfa(&conn.client()?, totp.as_deref(), json).await?
            );
            Ok(())
        }
        Command::Mfa(MfaCommand::Reset { conn, user, json }) => {
            let reset: serde_json::Value = conn
                .client()?
                .post_empty(&format!("/v1/users/{user}/mfa/reset"))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reset).expect("json"));
            } else {
                println!("{user}'s authenticator was removed; they can enrol a new one");
            }
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
                        .post_empty(&format!("/v1/grants/{grant}/credentials"))
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
                conn.client()?.post_empty("/v1/policies/reload").await?;
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
            conn,
            policies,
            user,
            mut groups,
            scope,
            actions,
            duration,
            why,
            json,
        } => {
            let actions = actions.actions()?;
            if groups.is_empty() {
                groups = groups_of(&conn, &user).await;
            }
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

/// A local user's groups from the gateway, or none (said on stderr) when it cannot tell.
async fn groups_of(conn: &args::Connection, user: &str) -> Vec<String> {
    let found = async {
        let users: Vec<crate::api::views::UserView> = conn.client()?.get("/v1/users").await?;
        Ok::<_, CliError>(users.into_iter().find(|u| u.name == user).map(|u| u.groups))
    };
    match found.await {
        Ok(Some(groups)) => groups,
        Ok(None) => {
            eprintln!(
                "note: {user} is not a local user of the gateway; explaining with no groups (pass --group)"
            );
            Vec::new()
        }
        Err(e) => {
            eprintln!(
                "note: {user}'s groups could not be looked up ({e}); explaining with no groups (pass --group)"
            );
            Vec::new()
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
    let env = |name: &str| std::env::var(name).ok();
    let config = Config::load(args.settings, &env, args.config.as_deref())
        .map_err(|e| CliError::Usage(e.to_string()))?;
    init_logging(config.log_json);
    let clock: crate::clock::SharedClock = Arc::new(crate::clock::SystemClock);
    // Installed before the first line is printed, so a signal sent as soon as the gateway
    // says it serves is a drain, not the default death.
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| CliError::Unreachable(format!("cannot watch for SIGTERM: {e}")))?;
    let running = crate::server::start(&config, clock)
        .await
        .map_err(|e| CliError::Unreachable(e.to_string()))?;
    tracing::info!(s3 = %running.s3_addr, api = %running.api_addr, backend = ?config.backend, "sesame is serving");
    println!(
        "Sesame is serving S3 on {} (backend: {:?})",
        running.s3_endpoint, config.backend
    );
    println!(
        "Control API on {}; admin token in {}",
        running.api_url,
        running.admin_token_path.display()
    );
    println!();
    println!("Grant yourself access and point aws-cli at it:");
    println!(
        "  eval \"$(sesame grant create s3://my-bucket/ --to me --actions read,list,write,delete --for 1h)\""
    );
    println!("  aws s3 ls s3://my-bucket/");
    if config.tls.s3.is_some() {
        println!(
            "  (over TLS: if its certificate's CA is not among the system's roots, give it to aws-cli with --ca-bundle FILE or AWS_CA_BUNDLE, and to sesame with --ca-bundle or SESAME_CA_BUNDLE)"
        );
    }
    let signal = tokio::select! {
        interrupted = tokio::signal::ctrl_c() => {
            if let Err(e) = interrupted {
                tracing::error!(error = %e, "cannot wait for SIGINT");
            }
            "SIGINT"
        }
        _ = terminate.recv() => "SIGTERM",
    };
    tracing::info!(
        signal,
        grace_secs = config.listen.drain_grace.as_secs(),
        "stopping: no new connections; requests in flight may finish"
    );
    running.drain().await;
    tracing::info!("stopped");
    Ok(())
}

fn init_logging(json: bool) {
    // s3s logs every error answer at ERROR (twice for some); the gateway logs each refusal
    // itself, once, at INFO with its reason (`s3::record`).
    let filter = tracing_subscriber::EnvFilter::try_from_env("SESAME_LOG")
        .unwrap_or_else(|_| "info,s3s=off".into());
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
        Cli::command_documented().debug_assert();
    }

    #[test]
    fn audit_takes_json_like_every_verb_and_still_reads_format_json() {
        use clap::Parser as _;
        let shown = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Audit { json, format, .. }) => Ok((json, format)),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.kind()),
        };
        assert_eq!(
            shown(&["sesame", "audit", "--json"]),
            Ok((true, audit::Shown::Table))
        );
        assert_eq!(
            shown(&["sesame", "audit", "--format", "json"]),
            Ok((false, audit::Shown::Json))
        );
        assert_eq!(
            shown(&["sesame", "audit", "--format", "csv", "--grant", "g-1"]),
            Ok((false, audit::Shown::Csv))
        );
        assert_eq!(
            shown(&["sesame", "audit", "--json", "--format", "csv"]),
            Err(clap::error::ErrorKind::ArgumentConflict)
        );
    }
}
