//! `sesame policy check` and `sesame policy explain`: policies read from a folder, no server.

use std::fmt::Write as _;
use std::path::Path;

use super::client::CliError;
use crate::model::{Action, Scope};
use crate::policy::{Ask, Decision, Requirements, load_dir};

pub fn check(dir: &Path) -> Result<String, CliError> {
    let set = load_dir(dir).map_err(|e| CliError::Invalid(e.to_string()))?;
    Ok(format!(
        "{}: {} rules, {} sensitive labels: valid\n",
        dir.display(),
        set.rules.len(),
        set.labels.len()
    ))
}

pub struct ExplainArgs<'a> {
    pub dir: &'a Path,
    pub user: &'a str,
    pub groups: &'a [String],
    pub scope: &'a str,
    pub actions: Vec<Action>,
    pub duration: &'a str,
    pub why: Option<&'a str>,
}

/// The decision and the verdict of every rule; `Err(Invalid)` when the request would be
/// denied, so scripts can branch on the exit code.
pub fn explain(args: &ExplainArgs<'_>, json: bool) -> Result<String, CliError> {
    let set = load_dir(args.dir).map_err(|e| CliError::Invalid(e.to_string()))?;
    let scope = Scope::parse(args.scope, args.actions.clone()).map_err(|e| CliError::Usage(e.0))?;
    let duration = crate::duration::parse(args.duration).map_err(CliError::Usage)?;
    let ask = Ask {
        user: args.user,
        groups: args.groups,
        scope: &scope,
        duration,
        justification: args.why,
    };
    let explanation = set.explain(&ask);
    let text = if json {
        let rules: Vec<serde_json::Value> = explanation
            .rules
            .iter()
            .map(|(name, r)| match r {
                Ok(_) => serde_json::json!({"rule": name, "allows": true}),
                Err(why) => serde_json::json!({"rule": name, "allows": false, "why": why}),
            })
            .collect();
        let decision = match &explanation.decision {
            Decision::Allowed(req) => {
                serde_json::json!({"allowed": true, "rule": req.rule, "approvals": req.approvals,
                "approver_groups": req.approver_groups, "approver_mfa": req.approver_mfa, "requester_mfa": req.requester_mfa,
                "max_duration": crate::duration::human(req.max_duration), "labels": req.labels})
            }
            Decision::Denied(why) => serde_json::json!({"allowed": false, "why": why}),
        };
        format!(
            "{}\n",
            serde_json::to_string_pretty(
                &serde_json::json!({"decision": decision, "rules": rules})
            )
            .expect("json")
        )
    } else {
        let mut out = match &explanation.decision {
            Decision::Allowed(req) => format!("allowed by rule {}: {}\n", req.rule, needs(req)),
            Decision::Denied(why) => format!("denied: {why}\n"),
        };
        for (name, verdict) in &explanation.rules {
            let _ = match verdict {
                Ok(_) => writeln!(out, "  {name}: allows it"),
                Err(why) => writeln!(out, "  {name}: {why}"),
            };
        }
        out
    };
    match explanation.decision {
        Decision::Allowed(_) => Ok(text),
        Decision::Denied(_) => Err(CliError::Denied(text)),
    }
}

fn needs(req: &Requirements) -> String {
    let mut parts = vec![match req.approvals {
        0 => "approved automatically".to_owned(),
        n => format!("{n} approval(s) from {}", req.approver_groups.join(" or ")),
    }];
    if req.approver_mfa {
        parts.push("approvers use MFA".into());
    }
    if req.requester_mfa {
        parts.push("the requester uses MFA".into());
    }
    if !req.labels.is_empty() {
        parts.push(format!("sensitive: {}", req.labels.join(", ")));
    }
    parts.push(format!(
        "at most {}",
        crate::duration::human(req.max_duration)
    ));
    parts.join("; ")
}
