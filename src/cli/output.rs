//! What the CLI prints: tables for people, JSON for scripts, and credentials in the forms
//! aws-cli reads.

use std::fmt::Write;

use time::OffsetDateTime;

use crate::api::views::{CredentialView, GrantView, RequestView, ShareView};
use crate::model::Action;

#[derive(Debug, Clone, Copy)]
pub enum CredentialFormat {
    Env,
    Json,
    AwsProfile,
}

/// Where aws-cli should send requests.
pub struct Endpoint {
    pub url: String,
    pub region: String,
}

#[must_use]
pub fn time(t: OffsetDateTime) -> String {
    crate::duration::rfc3339(t)
}

#[must_use]
pub fn actions(actions: &[Action]) -> String {
    actions
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[must_use]
pub fn credentials(
    c: &CredentialView,
    format: CredentialFormat,
    endpoint: &Endpoint,
    profile: Option<&str>,
) -> String {
    match format {
        CredentialFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(c).expect("credentials serialise")
        ),
        CredentialFormat::Env => format!(
            "export AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={}\nexport AWS_SESSION_TOKEN={}\nexport AWS_ENDPOINT_URL={}\nexport AWS_DEFAULT_REGION={}\nexport AWS_REGION={}\n# grant {} expires at {}\n",
            c.access_key_id,
            c.secret_access_key,
            c.session_token,
            endpoint.url,
            endpoint.region,
            endpoint.region,
            c.grant_id,
            time(c.expiration)
        ),
        CredentialFormat::AwsProfile => {
            let name = profile.map_or_else(|| format!("sesame-{}", c.grant_id), str::to_owned);
            format!(
                "# add to ~/.aws/config; grant {} expires at {}\n[profile {name}]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\nendpoint_url = {}\nregion = {}\n",
                c.grant_id,
                time(c.expiration),
                c.access_key_id,
                c.secret_access_key,
                c.session_token,
                endpoint.url,
                endpoint.region
            )
        }
    }
}

/// A table, or a JSON array.
#[must_use]
pub fn grants(grants: &[GrantView], json: bool) -> String {
    if json {
        return format!(
            "{}\n",
            serde_json::to_string_pretty(grants).expect("grants serialise")
        );
    }
    let rows: Vec<[String; 6]> = grants
        .iter()
        .map(|g| {
            [
                g.id.clone(),
                g.principal.clone(),
                g.scope.clone(),
                actions(&g.actions),
                g.state.as_str().to_owned(),
                time(g.expires_at),
            ]
        })
        .collect();
    table(
        &["ID", "PRINCIPAL", "SCOPE", "ACTIONS", "STATE", "EXPIRES"],
        &rows,
    )
}

/// One grant: a table row, or a JSON object.
#[must_use]
pub fn grant(grant: &GrantView, json: bool) -> String {
    if json {
        return format!(
            "{}\n",
            serde_json::to_string_pretty(grant).expect("grants serialise")
        );
    }
    let mut out = grants(std::slice::from_ref(grant), false);
    if let Some(usage) = &grant.usage {
        let limit = |max: Option<u64>, what: &str| {
            max.map_or_else(String::new, |m| format!(" (limit {m} {what})"))
        };
        let _ = writeln!(
            out,
            "\nused: {} requests ({} refused); read {} objects, {} bytes; wrote {} objects, {} bytes{}{}",
            usage.requests,
            usage.denied,
            usage.objects_read,
            usage.bytes_read,
            usage.objects_written,
            usage.bytes_written,
            limit(grant.limits.objects, "objects"),
            limit(grant.limits.bytes, "bytes"),
        );
        let _ = writeln!(
            out,
            "first use: {}, last use: {}",
            usage.first_use.map_or_else(|| "never".to_owned(), time),
            usage.last_use.map_or_else(|| "never".to_owned(), time),
        );
    }
    out
}

/// Share links as a table, or a JSON array.
#[must_use]
pub fn shares(shares: &[ShareView], json: bool) -> String {
    if json {
        return format!(
            "{}\n",
            serde_json::to_string_pretty(shares).expect("shares serialise")
        );
    }
    let rows: Vec<[String; 6]> = shares
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.uri.clone(),
                s.principal.clone(),
                s.state.clone(),
                match s.max_downloads {
                    Some(max) => format!("{}/{max}", s.downloads),
                    None => s.downloads.to_string(),
                },
                time(s.expires_at),
            ]
        })
        .collect();
    table(
        &["ID", "OBJECT", "MADE BY", "STATE", "DOWNLOADS", "EXPIRES"],
        &rows,
    )
}

/// One share link: its URL and what it allows, or a JSON object.
#[must_use]
pub fn share(share: &ShareView, json: bool) -> String {
    if json {
        return format!(
            "{}\n",
            serde_json::to_string_pretty(share).expect("shares serialise")
        );
    }
    let limit = match share.max_downloads {
        Some(max) => format!(", {}/{max} downloads", share.downloads),
        None => String::new(),
    };
    let url = share
        .url
        .as_ref()
        .map(|u| format!("{u}\n"))
        .unwrap_or_default();
    format!(
        "{url}{} for {} ({}{limit}, until {})\n",
        share.id,
        share.uri,
        share.state,
        time(share.expires_at)
    )
}

/// Requests as a table, or JSON (one object when `single`, else an array).
#[must_use]
pub fn requests(requests: &[RequestView], json: bool, single: bool) -> String {
    if json {
        let text = match (single, requests) {
            (true, [one]) => serde_json::to_string_pretty(one),
            _ => serde_json::to_string_pretty(requests),
        };
        return format!("{}\n", text.expect("requests serialise"));
    }
    let rows: Vec<[String; 7]> = requests
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.state.clone(),
                r.requester.clone(),
                r.scope.clone(),
                actions(&r.actions),
                format!("{}/{}", r.approved_by.len(), r.approvals_needed),
                r.grant_id.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATE",
            "REQUESTER",
            "SCOPE",
            "ACTIONS",
            "APPROVALS",
            "GRANT",
        ],
        &rows,
    )
}

pub fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

/// The gateway's policy status.
#[must_use]
pub fn policy_status(status: &serde_json::Value, json: bool) -> String {
    if json {
        return format!("{}\n", serde_json::to_string_pretty(status).expect("json"));
    }
    let mut out = format!(
        "{}: {} rules, {} sensitive labels (load {})\n",
        status["dir"].as_str().unwrap_or("(no policy folder)"),
        status["rules"],
        status["labels"],
        status["generation"]
    );
    if let (Some(by), Some(at)) = (status["loaded_by"].as_str(), status["loaded_at"].as_str()) {
        let _ = writeln!(
            out,
            "in force on every gateway sharing the store since {at}, loaded by {by}"
        );
    }
    if let Some(error) = status["last_error"].as_str() {
        let _ = writeln!(
            out,
            "the newest files are INVALID and not in force:\n{error}"
        );
    }
    out
}
