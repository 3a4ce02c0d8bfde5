//! `sesame credentials --scope ...`: aws-cli's `credential_process`. It reuses a grant the
//! caller holds for that scope, or files the request and waits for its approval (saying so on
//! stderr), then prints the credential JSON aws-cli reads. aws-cli runs it again near expiry.

use std::time::Duration;

use super::client::{CliError, Client};
use crate::api::bodies::FileRequest;
use crate::api::views::{CredentialView, GrantView, RequestView};
use crate::model::{Action, GrantState, Scope};

/// A grant with less than this left is not reused, so aws-cli's refresh gets a fresh window.
const MIN_REMAINING: time::Duration = time::Duration::minutes(5);
const POLL: Duration = Duration::from_secs(2);

pub struct Wanted<'a> {
    pub scope: &'a str,
    pub actions: Vec<Action>,
    pub duration: &'a str,
    pub why: Option<&'a str>,
    pub totp: Option<&'a str>,
    /// Longest wait for approval.
    pub wait: &'a str,
}

pub async fn credentials_for_scope(
    client: &Client,
    wanted: &Wanted<'_>,
    now: time::OffsetDateTime,
) -> Result<CredentialView, CliError> {
    let scope =
        Scope::parse(wanted.scope, wanted.actions.clone()).map_err(|e| CliError::Usage(e.0))?;
    let duration = crate::duration::parse(wanted.duration).map_err(CliError::Usage)?;
    let wait = crate::duration::parse(wanted.wait).map_err(CliError::Usage)?;
    let whoami: serde_json::Value = client.get("/v1/whoami").await?;
    let me = whoami["name"].as_str().unwrap_or_default().to_owned();

    let grants: Vec<GrantView> = client.get("/v1/grants").await?;
    let reusable = grants.iter().find(|g| {
        g.principal == me
            && g.state == GrantState::Active
            && g.expires_at - now > MIN_REMAINING
            && g.scope == scope.uri()
            && scope.actions.iter().all(|a| g.actions.contains(a))
    });
    if let Some(grant) = reusable {
        return client
            .post_empty(&format!("/v1/grants/{}/credentials", grant.id))
            .await;
    }

    let body = FileRequest {
        scope: wanted.scope.to_owned(),
        actions: scope.actions,
        duration_seconds: duration.whole_seconds(),
        starts_at: None,
        justification: wanted.why.map(str::to_owned),
        totp: wanted.totp.map(str::to_owned),
    };
    let mut request: RequestView = client.post("/v1/requests", &body).await?;
    let started = std::time::Instant::now();
    let limit = Duration::try_from(wait).unwrap_or(Duration::from_mins(15));
    let mut announced = false;
    loop {
        if let Some(grant) = &request.grant_id {
            return client
                .post_empty(&format!("/v1/grants/{grant}/credentials"))
                .await;
        }
        match request.state.as_str() {
            "pending" => {}
            state => {
                let why = request
                    .denial
                    .clone()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                return Err(CliError::Invalid(format!(
                    "request {} was {state}{why}",
                    request.id
                )));
            }
        }
        if !announced {
            announce(&format!(
                "sesame: waiting for approval of request {} ({} on {}): {} approval(s) from {}\n",
                request.id,
                super::output::actions(&request.actions),
                request.scope,
                request.approvals_needed,
                request.approver_groups.join(" or ")
            ));
            announced = true;
        }
        if started.elapsed() > limit {
            return Err(CliError::Invalid(format!(
                "request {} is still pending after {}; it stays open: run the command again to keep waiting",
                request.id, wanted.wait
            )));
        }
        tokio::time::sleep(POLL).await;
        request = client.get(&format!("/v1/requests/{}", request.id)).await?;
    }
}

/// To stderr, and to the terminal when there is one: aws-cli captures a credential
/// process's stderr and shows it only on failure.
fn announce(message: &str) {
    use std::io::{IsTerminal as _, Write as _};
    eprint!("{message}");
    if std::io::stderr().is_terminal() {
        return;
    }
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = tty.write_all(message.as_bytes());
    }
}
