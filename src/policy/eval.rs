//! Deciding a request against the policy set: which rule allows it and what it then needs.
//! Pure: the same ask and set always give the same answer, explained rule by rule.

use super::{Limits, PolicySet, Rule, ScopePattern};
use crate::model::{Action, KeyScope, Scope};

/// What someone asks for.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub scope: &'a Scope,
    pub duration: time::Duration,
    pub justification: Option<&'a str>,
}

/// What an allowed request needs before it becomes a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements {
    pub rule: String,
    /// Distinct approvals needed; 0 means approved automatically.
    pub approvals: u32,
    pub approver_groups: Vec<String>,
    pub approver_mfa: bool,
    pub requester_mfa: bool,
    pub max_duration: time::Duration,
    /// Sensitive labels the scope reaches.
    pub labels: Vec<String>,
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed(Requirements),
    /// No rule allows it; the message says why for each rule that came close.
    Denied(String),
}

/// The decision and, for every rule, whether it allowed the ask and why not.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub decision: Decision,
    pub rules: Vec<(String, Result<Requirements, String>)>,
}

impl PolicySet {
    #[must_use]
    pub fn decide(&self, ask: &Ask<'_>) -> Decision {
        self.explain(ask).decision
    }

    #[must_use]
    pub fn explain(&self, ask: &Ask<'_>) -> Explanation {
        let rules: Vec<(String, Result<Requirements, String>)> = self
            .rules
            .iter()
            .map(|rule| (rule.name.clone(), self.check_rule(rule, ask)))
            .collect();
        let winner = rules
            .iter()
            .enumerate()
            .filter_map(|(i, (_, r))| r.as_ref().ok().map(|req| (i, req)))
            .min_by_key(|(i, req)| {
                (
                    req.approvals,
                    std::cmp::Reverse(self.rules[*i].narrowest_covering(ask.scope).unwrap_or(0)),
                    *i,
                )
            });
        let decision = match winner {
            Some((_, req)) => Decision::Allowed(req.clone()),
            None => Decision::Denied(denial(ask, &rules)),
        };
        Explanation { decision, rules }
    }

    fn check_rule(&self, rule: &Rule, ask: &Ask<'_>) -> Result<Requirements, String> {
        let member = rule.users.iter().any(|u| u == ask.user)
            || rule.groups.iter().any(|g| ask.groups.contains(g));
        if !member {
            return Err(format!("{} is not among its users or groups", ask.user));
        }
        if rule.narrowest_covering(ask.scope).is_none() {
            let allowed: Vec<String> = rule.scopes.iter().map(ScopePattern::uri).collect();
            return Err(format!(
                "{} lies outside {}",
                ask.scope.uri(),
                allowed.join(", ")
            ));
        }
        if let Some(action) = ask.scope.actions.iter().find(|a| !rule.actions.contains(a)) {
            return Err(format!(
                "{action} is not among its actions ({})",
                list(&rule.actions)
            ));
        }
        check_justification(rule, ask.justification)?;

        let labels: Vec<&super::Label> = self
            .labels
            .iter()
            .filter(|l| reaches(&l.scope, ask.scope))
            .collect();
        let approvals = labels
            .iter()
            .map(|l| l.min_approvals)
            .fold(rule.approvals, u32::max);
        if approvals > 0 && rule.approver_groups.is_empty() {
            return Err(format!(
                "the sensitive scope needs {approvals} approvals but the rule names no approver groups"
            ));
        }
        let (max_duration, limited_by) = labels
            .iter()
            .filter_map(|l| {
                l.max_duration
                    .map(|d| (d, format!("sensitive label {}", l.label)))
            })
            .fold((rule.max_duration, "the rule".to_owned()), |best, next| {
                if next.0 < best.0 { next } else { best }
            });
        if ask.duration > max_duration {
            return Err(format!(
                "{} exceeds the maximum of {} set by {limited_by}",
                crate::duration::human(ask.duration),
                crate::duration::human(max_duration)
            ));
        }
        Ok(Requirements {
            rule: rule.name.clone(),
            approvals,
            approver_groups: rule.approver_groups.clone(),
            approver_mfa: rule.approver_mfa || labels.iter().any(|l| l.approver_mfa),
            requester_mfa: rule.requester_mfa || labels.iter().any(|l| l.requester_mfa),
            max_duration,
            labels: labels.iter().map(|l| l.label.clone()).collect(),
            limits: rule.limits,
        })
    }
}

impl Rule {
    /// Length of the longest rule scope that contains the requested scope, or `None` when no
    /// rule scope does; a longer match is a narrower, more specific rule.
    fn narrowest_covering(&self, scope: &Scope) -> Option<usize> {
        let key = match &scope.keys {
            KeyScope::Prefix(p) | KeyScope::Exact(p) => p.as_str(),
        };
        self.scopes
            .iter()
            .filter(|p| p.contains(&scope.bucket, key))
            .map(|p| p.prefix.len())
            .max()
    }
}

/// Whether a sensitive prefix and a requested scope overlap: either contains the other.
fn reaches(label: &ScopePattern, scope: &Scope) -> bool {
    if label.bucket != scope.bucket {
        return false;
    }
    match &scope.keys {
        KeyScope::Prefix(p) => p.starts_with(&label.prefix) || label.prefix.starts_with(p.as_str()),
        KeyScope::Exact(k) => k.starts_with(&label.prefix),
    }
}

fn check_justification(rule: &Rule, given: Option<&str>) -> Result<(), String> {
    let Some(pattern) = &rule.justification else {
        return Ok(());
    };
    let given = given.map(str::trim).filter(|s| !s.is_empty());
    match (pattern, given) {
        (_, None) => Err("a justification is required (--why)".to_owned()),
        (None, Some(_)) => Ok(()),
        (Some(p), Some(text)) if p.regex.is_match(text) => Ok(()),
        (Some(p), Some(text)) => Err(format!(
            "justification {text:?} does not match {}",
            p.source
        )),
    }
}

fn denial(ask: &Ask<'_>, rules: &[(String, Result<Requirements, String>)]) -> String {
    let reasons: Vec<String> = rules
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|why| format!("rule {name}: {why}")))
        .filter(|line| !line.ends_with("is not among its users or groups"))
        .collect();
    if reasons.is_empty() {
        format!(
            "no policy rule lets {} request {} ({})",
            ask.user,
            ask.scope.uri(),
            ask.scope.actions_label()
        )
    } else {
        format!("no policy rule allows this request: {}", reasons.join("; "))
    }
}

fn list(actions: &[Action]) -> String {
    actions
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::scope::parse_actions;
    use crate::policy::parse_file;

    const POLICY: &str = r#"
[[rule]]
name = "payroll"
groups = ["data-eng"]
scopes = ["s3://hr-data/payroll/"]
actions = ["read", "list"]
max_duration = "2h"
approvals = 2
approver_groups = ["hr-approvers"]
approver_mfa = true
justification = "^INC-[0-9]+"

[[rule]]
name = "analytics"
groups = ["analysts"]
scopes = ["s3://analytics/"]
actions = ["read", "list"]
max_duration = "8h"

[[rule]]
name = "payroll-oncall"
users = ["olivia"]
scopes = ["s3://hr-data/payroll/2026/"]
actions = ["read"]
max_duration = "4h"
approvals = 1
approver_groups = ["hr-approvers"]

[[sensitive]]
scope = "s3://hr-data/payroll/2026/"
label = "pii"
min_approvals = 1
requester_mfa = true
max_duration = "90m"
"#;

    fn decide(
        user: &str,
        groups: &[&str],
        scope: &str,
        actions: &str,
        hours: i64,
        why: Option<&str>,
    ) -> Decision {
        let set = parse_file("p.toml", POLICY).unwrap();
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        let scope = Scope::parse(scope, parse_actions(actions).unwrap()).unwrap();
        set.decide(&Ask {
            user,
            groups: &groups,
            scope: &scope,
            duration: time::Duration::hours(hours),
            justification: why,
        })
    }

    fn denied(d: Decision) -> String {
        match d {
            Decision::Denied(why) => why,
            Decision::Allowed(r) => panic!("allowed by {}", r.rule),
        }
    }

    #[test]
    fn the_payroll_rule_needs_two_approvers_with_mfa_and_an_incident() {
        let Decision::Allowed(req) = decide(
            "alice",
            &["data-eng"],
            "s3://hr-data/payroll/",
            "read,list",
            1,
            Some("INC-4411"),
        ) else {
            panic!("denied")
        };
        assert_eq!(
            (req.rule.as_str(), req.approvals, req.approver_mfa),
            ("payroll", 2, true)
        );
        assert_eq!(req.approver_groups, vec!["hr-approvers".to_owned()]);
        // payroll/ reaches the sensitive payroll/2026/ below it.
        assert_eq!(req.labels, vec!["pii".to_owned()]);
        assert!(req.requester_mfa);
    }

    #[test]
    fn automatic_approval_for_analysts() {
        let Decision::Allowed(req) =
            decide("ann", &["analysts"], "s3://analytics/q3/", "read", 8, None)
        else {
            panic!()
        };
        assert_eq!((req.rule.as_str(), req.approvals), ("analytics", 0));
    }

    #[test]
    fn each_refusal_says_why() {
        // no rule for this person at all
        let why = denied(decide(
            "mallory",
            &["sales"],
            "s3://hr-data/payroll/",
            "read",
            1,
            Some("INC-1"),
        ));
        assert_eq!(
            why,
            "no policy rule lets mallory request s3://hr-data/payroll/ (read)"
        );
        // a justification that does not match
        let why = denied(decide(
            "alice",
            &["data-eng"],
            "s3://hr-data/payroll/",
            "read",
            1,
            Some("because"),
        ));
        assert!(
            why.contains("justification \"because\" does not match ^INC-[0-9]+"),
            "{why}"
        );
        let why = denied(decide(
            "alice",
            &["data-eng"],
            "s3://hr-data/payroll/",
            "read",
            1,
            None,
        ));
        assert!(why.contains("a justification is required"), "{why}");
        // above the maximum duration of the rule
        let why = denied(decide(
            "ann",
            &["analysts"],
            "s3://analytics/",
            "read",
            9,
            None,
        ));
        assert!(
            why.contains("9h exceeds the maximum of 8h set by the rule"),
            "{why}"
        );
        // payroll/ reaches the sensitive payroll/2026/, whose label caps it lower still
        let why = denied(decide(
            "alice",
            &["data-eng"],
            "s3://hr-data/payroll/",
            "read",
            2,
            Some("INC-1"),
        ));
        assert!(
            why.contains("2h exceeds the maximum of 1h30m set by sensitive label pii"),
            "{why}"
        );
        // an action the rule does not name
        let why = denied(decide(
            "alice",
            &["data-eng"],
            "s3://hr-data/payroll/",
            "read,write",
            1,
            Some("INC-1"),
        ));
        assert!(
            why.contains("write is not among its actions (read, list)"),
            "{why}"
        );
        // a scope outside every rule, including a sibling with the same start
        let why = denied(decide(
            "alice",
            &["data-eng"],
            "s3://hr-data/payroll-archive/",
            "read",
            1,
            Some("INC-1"),
        ));
        assert!(why.contains("lies outside s3://hr-data/payroll/"), "{why}");
    }

    #[test]
    fn sensitive_labels_raise_requirements() {
        // olivia's rule allows 4h, but the pii label caps it at 90m and asks for MFA.
        let why = denied(decide(
            "olivia",
            &[],
            "s3://hr-data/payroll/2026/",
            "read",
            2,
            None,
        ));
        assert!(
            why.contains("2h exceeds the maximum of 1h30m set by sensitive label pii"),
            "{why}"
        );
        let Decision::Allowed(req) =
            decide("olivia", &[], "s3://hr-data/payroll/2026/", "read", 1, None)
        else {
            panic!()
        };
        assert_eq!(
            (req.approvals, req.requester_mfa, req.max_duration),
            (1, true, time::Duration::minutes(90))
        );
    }

    #[test]
    fn among_several_rules_the_fewest_approvals_win() {
        // alice is in data-eng and also named by a one-approval rule for 2026.
        let mut set = parse_file("p.toml", POLICY).unwrap();
        set.rules[2].users.push("alice".into());
        let groups = vec!["data-eng".to_owned()];
        let scope = Scope::parse("s3://hr-data/payroll/2026/", vec![Action::Read]).unwrap();
        let ask = Ask {
            user: "alice",
            groups: &groups,
            scope: &scope,
            duration: time::Duration::minutes(30),
            justification: Some("INC-9"),
        };
        let Decision::Allowed(req) = set.decide(&ask) else {
            panic!()
        };
        assert_eq!(req.rule, "payroll-oncall");
        let explanation = set.explain(&ask);
        assert!(
            explanation
                .rules
                .iter()
                .any(|(n, r)| n == "payroll" && r.is_ok())
        );
        assert!(
            explanation
                .rules
                .iter()
                .any(|(n, r)| n == "analytics" && r.is_err())
        );
    }
}
