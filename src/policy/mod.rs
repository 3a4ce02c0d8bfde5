//! Policies as code: `policies/*.toml` say who may request which scopes and actions, for how
//! long, with how many approvals from whom, whether MFA and a justification are needed, and
//! which prefixes are sensitive. What no rule allows cannot be requested (deny by default).
//!
//! ```toml
//! [[rule]]
//! name = "payroll-incidents"
//! groups = ["data-eng"]               # and/or users = ["alice"]
//! scopes = ["s3://hr-data/payroll/"]  # requests must lie inside one of these
//! actions = ["read", "list"]
//! max_duration = "2h"
//! approvals = 2                       # 0: approved automatically
//! approver_groups = ["hr-approvers"]
//! approver_mfa = true
//! justification = "^INC-[0-9]+"       # required and must match; "" = required, any text
//! limits = { bytes = 1073741824, objects = 500, share_ttl = "15m" }
//!                                     # per grant: bytes and objects read + written (a
//!                                     # transfer crossing them is cut, later requests
//!                                     # refused); longest share link (default 1h)
//!
//! [[sensitive]]
//! scope = "s3://hr-data/payroll/"
//! label = "pii"
//! min_approvals = 2
//! approver_mfa = true
//! max_duration = "1h"
//! ```
//!
//! When several rules allow a request, the one needing the fewest approvals wins, then the
//! narrowest scope, then the first in file order; sensitive labels then raise what it asks.

mod eval;
mod load;

pub use self::eval::{Ask, Decision, Explanation, Requirements};
pub use self::load::{PolicyError, PolicySource, load_dir, parse_file, parse_sources, read_dir};

use crate::model::Action;

/// Every rule and label from a policy folder, validated.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub rules: Vec<Rule>,
    pub labels: Vec<Label>,
}

/// Where a rule or label was written, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A bucket and a key prefix (empty = whole bucket) that scopes must lie inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePattern {
    pub bucket: String,
    pub prefix: String,
}

impl ScopePattern {
    /// Whether `key` (a prefix ending in `/`, or one object) in `bucket` lies inside.
    #[must_use]
    pub fn contains(&self, bucket: &str, key: &str) -> bool {
        bucket == self.bucket && key.starts_with(&self.prefix)
    }

    #[must_use]
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub origin: Origin,
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub scopes: Vec<ScopePattern>,
    pub actions: Vec<Action>,
    pub max_duration: time::Duration,
    pub approvals: u32,
    pub approver_groups: Vec<String>,
    pub approver_mfa: bool,
    pub requester_mfa: bool,
    /// `None`: no justification needed; `Some(None)`: any non-empty text; `Some(Some(re))`:
    /// text matching `re`.
    pub justification: Option<Option<Pattern>>,
    pub limits: Limits,
}

/// A compiled justification pattern with its source, for messages.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    pub regex: regex_lite::Regex,
}

pub use crate::model::Limits;

/// A sensitive prefix: every rule that reaches it asks at least this much.
#[derive(Debug, Clone)]
pub struct Label {
    pub label: String,
    pub origin: Origin,
    pub scope: ScopePattern,
    pub min_approvals: u32,
    pub approver_mfa: bool,
    pub requester_mfa: bool,
    pub max_duration: Option<time::Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Scope;

    /// The shipped examples load and say what `policies/README.md` promises.
    #[test]
    fn the_example_policies_decide_as_documented() {
        let set =
            load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples"))
                .unwrap();
        let ask = |user: &str, group: &str, scope: &str, hours: i64, why: Option<&str>| {
            let groups = vec![group.to_owned()];
            let scope = Scope::parse(scope, vec![Action::Read, Action::List]).unwrap();
            set.decide(&Ask {
                user,
                groups: &groups,
                scope: &scope,
                duration: time::Duration::hours(hours),
                justification: why,
            })
        };
        let Decision::Allowed(payroll) = ask(
            "alice",
            "data-eng",
            "s3://hr-data/payroll/",
            2,
            Some("INC-4411"),
        ) else {
            panic!("payroll denied")
        };
        assert_eq!((payroll.approvals, payroll.approver_mfa), (2, true));
        assert_eq!(payroll.labels, vec!["pii".to_owned()]);
        assert!(matches!(
            ask(
                "alice",
                "data-eng",
                "s3://hr-data/payroll/",
                3,
                Some("INC-1")
            ),
            Decision::Denied(_)
        ));
        let Decision::Allowed(analytics) = ask("ann", "analysts", "s3://analytics/", 8, None)
        else {
            panic!()
        };
        assert_eq!(analytics.approvals, 0);
        assert!(matches!(
            ask("ann", "analysts", "s3://hr-data/payroll/", 1, None),
            Decision::Denied(_)
        ));
    }
}
