//! The requester's and approver's verbs: `request`, `requests`, `approve`, `deny`,
//! `withdraw`, and the admin's `user add` and everyone's `mfa enroll`.

use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::client::{CliError, Client};
use super::output;
use crate::api::bodies::{AddUser, Decide, EnrollMfa, Extend, FileRequest};
use crate::api::views::{NewUser, RequestView, UserView, WhoAmI};
use crate::model::Action;

/// `--read --list --write --delete`.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // one flag per action, as the command line spells them
pub struct ActionFlags {
    #[arg(long)]
    pub read: bool,
    #[arg(long)]
    pub list: bool,
    #[arg(long)]
    pub write: bool,
    #[arg(long)]
    pub delete: bool,
}

impl ActionFlags {
    pub fn actions(&self) -> Result<Vec<Action>, CliError> {
        let actions: Vec<Action> = [
            (self.read, Action::Read),
            (self.list, Action::List),
            (self.write, Action::Write),
            (self.delete, Action::Delete),
        ]
        .into_iter()
        .filter_map(|(on, a)| on.then_some(a))
        .collect();
        if actions.is_empty() {
            return Err(CliError::Usage(
                "name at least one of --read, --list, --write, --delete".into(),
            ));
        }
        Ok(actions)
    }
}

pub struct NewRequest<'a> {
    pub scope: &'a str,
    pub actions: Vec<Action>,
    pub duration: &'a str,
    pub why: Option<&'a str>,
    pub totp: Option<&'a str>,
    pub starts_at: Option<&'a str>,
}

pub async fn request(
    client: &Client,
    new: NewRequest<'_>,
    json_out: bool,
) -> Result<String, CliError> {
    let duration = crate::duration::parse(new.duration).map_err(CliError::Usage)?;
    let starts_at = new
        .starts_at
        .map(|at| {
            OffsetDateTime::parse(at, &Rfc3339).map_err(|e| {
                CliError::Usage(format!(
                    "--starts-at {at:?} is not an RFC 3339 time like 2026-12-01T09:00:00Z: {e}"
                ))
            })
        })
        .transpose()?;
    let body = FileRequest {
        scope: new.scope.to_owned(),
        actions: new.actions,
        duration_seconds: duration.whole_seconds(),
        starts_at,
        justification: new.why.map(str::to_owned),
        totp: new.totp.map(str::to_owned),
    };
    let created: RequestView = client.post("/v1/requests", &body).await?;
    let mut out = output::requests(std::slice::from_ref(&created), json_out, true);
    if !json_out {
        out.push_str(&next_step(&created));
    }
    Ok(out)
}

/// What the requester does next, in one line.
fn next_step(r: &RequestView) -> String {
    match (&r.grant_id, r.state.as_str()) {
        (Some(grant), _) => {
            format!("granted: get credentials with `sesame credentials --grant {grant}`\n")
        }
        (None, "pending") => format!(
            "waiting for {} approval(s) from {}{}\n",
            r.approvals_needed - u32::try_from(r.approved_by.len()).unwrap_or(0),
            r.approver_groups.join(" or "),
            if r.approver_mfa { " (with MFA)" } else { "" }
        ),
        (None, _) => String::new(),
    }
}

pub async fn list(client: &Client, pending: bool, json_out: bool) -> Result<String, CliError> {
    let path = if pending {
        "/v1/requests?pending=true"
    } else {
        "/v1/requests"
    };
    let requests: Vec<RequestView> = client.get(path).await?;
    Ok(output::requests(&requests, json_out, false))
}

pub async fn decide(
    client: &Client,
    id: &str,
    verb: &str,
    body: Decide,
    json_out: bool,
) -> Result<String, CliError> {
    let request: RequestView = client
        .post(&format!("/v1/requests/{id}/{verb}"), &body)
        .await?;
    let mut out = output::requests(std::slice::from_ref(&request), json_out, true);
    if !json_out {
        out.push_str(&next_step(&request));
    }
    Ok(out)
}

pub async fn extend(
    client: &Client,
    grant: &str,
    body: Extend,
    json_out: bool,
) -> Result<String, CliError> {
    let request: RequestView = client
        .post(&format!("/v1/grants/{grant}/extend"), &body)
        .await?;
    let mut out = output::requests(std::slice::from_ref(&request), json_out, true);
    if !json_out && request.state == "pending" {
        out.push_str(&next_step(&request));
    }
    Ok(out)
}

pub async fn add_user(
    client: &Client,
    name: &str,
    groups: &[String],
    json_out: bool,
) -> Result<String, CliError> {
    let body = AddUser {
        name: name.to_owned(),
        groups: groups.to_vec(),
    };
    let created: NewUser = client.post("/v1/users", &body).await?;
    if json_out {
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&created).expect("json")
        ));
    }
    Ok(format!(
        "user {} ({}) created. Their token, shown only now:\n{}\nThey use it as SESAME_TOKEN (or --token).\n",
        created.user.name,
        created.user.groups.join(", "),
        created.token
    ))
}

pub async fn list_users(client: &Client, json_out: bool) -> Result<String, CliError> {
    let users: Vec<UserView> = client.get("/v1/users").await?;
    if json_out {
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&users).expect("json")
        ));
    }
    let rows: Vec<[String; 3]> = users
        .iter()
        .map(|u| {
            [
                u.name.clone(),
                u.groups.join(","),
                if u.mfa { "yes".into() } else { "no".into() },
            ]
        })
        .collect();
    Ok(output::table(&["USER", "GROUPS", "MFA"], &rows))
}

pub async fn enroll_mfa(
    client: &Client,
    totp: Option<&str>,
    json_out: bool,
) -> Result<String, CliError> {
    let body = EnrollMfa {
        totp: totp.map(str::to_owned),
    };
    let enrolled: serde_json::Value = client.post("/v1/mfa/enroll", &body).await?;
    if json_out {
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&enrolled).expect("json")
        ));
    }
    let field = |k: &str| enrolled[k].as_str().unwrap_or_default().to_owned();
    Ok(format!(
        "Add this to your authenticator app (scan the URI as a QR code, or type the secret):\n  {}\n  secret: {}\nThen pass the current code with --totp where MFA is needed.\n",
        field("uri"),
        field("secret")
    ))
}

pub async fn whoami(client: &Client, json_out: bool) -> Result<String, CliError> {
    let me: WhoAmI = client.get("/v1/whoami").await?;
    if json_out {
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&me).expect("json")
        ));
    }
    Ok(format!(
        "{}{} ({})\n",
        me.name,
        if me.admin { " [admin]" } else { "" },
        me.groups.join(", ")
    ))
}
