//! Reading `policies/*.toml`: syntax and types by serde, meaning by hand, and every error
//! pointing at file, line and field.

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{Label, Limits, Origin, Pattern, PolicySet, Rule, ScopePattern};
use crate::model::Action;

/// Longest duration any rule may allow.
pub const MAX_RULE_DURATION: time::Duration = time::Duration::days(7);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct PolicyError(pub Vec<String>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    sensitive: Vec<Spanned<RawLabel>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    scopes: Spanned<Vec<String>>,
    actions: Spanned<Vec<String>>,
    max_duration: Spanned<String>,
    #[serde(default)]
    approvals: u32,
    approver_groups: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    approver_mfa: bool,
    #[serde(default)]
    requester_mfa: bool,
    justification: Option<Spanned<String>>,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    bytes: Option<u64>,
    objects: Option<u64>,
    /// Longest share link under a grant from this rule, e.g. "30m".
    share_ttl: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabel {
    label: String,
    scope: Spanned<String>,
    #[serde(default)]
    min_approvals: u32,
    #[serde(default)]
    approver_mfa: bool,
    #[serde(default)]
    requester_mfa: bool,
    max_duration: Option<Spanned<String>>,
}

/// One policy file as read: its path (as messages show it) and its text. What a reload
/// publishes to the other gateways sharing the store, which parse it themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySource {
    pub file: String,
    pub text: String,
}

/// Loads every `*.toml` below `dir` (sorted by path, subfolders included). All errors of all
/// files are reported together.
pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyError> {
    let mut sources = read_dir(dir)?;
    for source in &mut sources {
        source.file = dir.join(&source.file).display().to_string();
    }
    parse_sources(&sources)
}

/// Reads every `*.toml` below `dir`, sorted by path, subfolders included, each named by its
/// path inside `dir`: the same files in two folders read the same.
pub fn read_dir(dir: &Path) -> Result<Vec<PolicySource>, PolicyError> {
    let mut files = Vec::new();
    collect_toml(dir, &mut files)
        .map_err(|e| PolicyError(vec![format!("{}: {e}", dir.display())]))?;
    files.sort();
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let shown = file
            .strip_prefix(dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        match std::fs::read_to_string(&file) {
            Ok(text) => sources.push(PolicySource { file: shown, text }),
            Err(e) => errors.push(format!("{}: {e}", file.display())),
        }
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(PolicyError(errors))
    }
}

/// Parses policy files into one set. All errors of all files are reported together.
pub fn parse_sources(sources: &[PolicySource]) -> Result<PolicySet, PolicyError> {
    let mut set = PolicySet::default();
    let mut errors = Vec::new();
    for source in sources {
        match parse_file(&source.file, &source.text) {
            Ok(part) => {
                set.rules.extend(part.rules);
                set.labels.extend(part.labels);
            }
            Err(PolicyError(mut e)) => errors.append(&mut e),
        }
    }
    check_unique_names(&set, &mut errors);
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(PolicyError(errors))
    }
}

fn collect_toml(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_toml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    Ok(())
}

fn check_unique_names(set: &PolicySet, errors: &mut Vec<String>) {
    for (i, rule) in set.rules.iter().enumerate() {
        if let Some(first) = set.rules[..i].iter().find(|r| r.name == rule.name) {
            errors.push(format!(
                "{}: rule {:?} is already defined at {}",
                rule.origin, rule.name, first.origin
            ));
        }
    }
}

/// Parses one policy file; `file` names it in messages.
pub fn parse_file(file: &str, text: &str) -> Result<PolicySet, PolicyError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        PolicyError(vec![format!("{file}:{line}: {}", e.message())])
    })?;
    let mut errors = Vec::new();
    let mut set = PolicySet::default();
    for spanned in raw.rule {
        let origin = Origin {
            file: file.to_owned(),
            line: line_of(text, spanned.span().start),
        };
        let at = |span: std::ops::Range<usize>| format!("{file}:{}", line_of(text, span.start));
        match rule(spanned.into_inner(), origin, &at) {
            Ok(rule) => set.rules.push(rule),
            Err(mut e) => errors.append(&mut e),
        }
    }
    for spanned in raw.sensitive {
        let origin = Origin {
            file: file.to_owned(),
            line: line_of(text, spanned.span().start),
        };
        let at = |span: std::ops::Range<usize>| format!("{file}:{}", line_of(text, span.start));
        match label(spanned.into_inner(), origin, &at) {
            Ok(label) => set.labels.push(label),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(PolicyError(errors))
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

fn rule(
    raw: RawRule,
    origin: Origin,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
) -> Result<Rule, Vec<String>> {
    let name = raw.name.clone();
    let mut errors = Vec::new();
    let mut fail = |where_: String, field: &str, msg: String| {
        errors.push(format!("{where_}: rule {name:?}: {field}: {msg}"));
    };

    if raw.users.is_empty() && raw.groups.is_empty() {
        fail(
            origin.to_string(),
            "users/groups",
            "name at least one user or group who may request".into(),
        );
    }
    let scopes = each(
        &raw.scopes,
        scope_pattern,
        "name at least one s3://bucket/prefix/",
    )
    .unwrap_or_else(|e| {
        fail(at(raw.scopes.span()), "scopes", e);
        Vec::new()
    });
    let parse_action = |a: &String| a.parse::<Action>().map_err(|e| e.0);
    let mut actions = each(
        &raw.actions,
        parse_action,
        "name at least one of read, list, write, delete",
    )
    .unwrap_or_else(|e| {
        fail(at(raw.actions.span()), "actions", e);
        Vec::new()
    });
    actions.sort();
    actions.dedup();
    let max_duration = match duration_field(&raw.max_duration) {
        Ok(d) => d,
        Err(e) => {
            fail(at(raw.max_duration.span()), "max_duration", e);
            time::Duration::ZERO
        }
    };
    let (approver_groups, approver_groups_at) = match raw.approver_groups {
        Some(groups) => (groups.get_ref().clone(), at(groups.span())),
        None => (Vec::new(), origin.to_string()),
    };
    if raw.approvals > 0 && approver_groups.is_empty() {
        fail(
            approver_groups_at,
            "approver_groups",
            format!(
                "{} approvals need at least one approver group",
                raw.approvals
            ),
        );
    }
    let justification = match raw.justification {
        None => None,
        Some(s) if s.get_ref().is_empty() => Some(None),
        Some(s) => match regex_lite::Regex::new(s.get_ref()) {
            Ok(regex) => Some(Some(Pattern {
                source: s.get_ref().clone(),
                regex,
            })),
            Err(e) => {
                fail(
                    at(s.span()),
                    "justification",
                    format!(
                        "pattern {:?} is not a valid regular expression: {e}",
                        s.get_ref()
                    ),
                );
                None
            }
        },
    };
    let limits = limits(&raw.limits, at).unwrap_or_else(|(where_, e)| {
        fail(where_, "limits.share_ttl", e);
        Limits::default()
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Rule {
        name: raw.name,
        origin,
        users: raw.users,
        groups: raw.groups,
        scopes,
        actions,
        max_duration,
        approvals: raw.approvals,
        approver_groups,
        approver_mfa: raw.approver_mfa,
        requester_mfa: raw.requester_mfa,
        justification,
        limits,
    })
}

fn label(
    raw: RawLabel,
    origin: Origin,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
) -> Result<Label, String> {
    let scope = scope_pattern(raw.scope.get_ref()).map_err(|e| {
        format!(
            "{}: sensitive {:?}: scope: {e}",
            at(raw.scope.span()),
            raw.label
        )
    })?;
    let max_duration = match &raw.max_duration {
        None => None,
        Some(d) => Some(duration_field(d).map_err(|e| {
            format!(
                "{}: sensitive {:?}: max_duration: {e}",
                at(d.span()),
                raw.label
            )
        })?),
    };
    Ok(Label {
        label: raw.label,
        origin,
        scope,
        min_approvals: raw.min_approvals,
        approver_mfa: raw.approver_mfa,
        requester_mfa: raw.requester_mfa,
        max_duration,
    })
}

/// Every item of a list through `parse`, or the first error; an empty list is an error too.
fn each<T>(
    items: &Spanned<Vec<String>>,
    parse: impl Fn(&String) -> Result<T, String>,
    when_empty: &str,
) -> Result<Vec<T>, String> {
    if items.get_ref().is_empty() {
        return Err(when_empty.to_owned());
    }
    items.get_ref().iter().map(parse).collect()
}

/// `s3://bucket/` or `s3://bucket/prefix/`; a pattern is always a prefix.
fn scope_pattern(s: &String) -> Result<ScopePattern, String> {
    let scope = crate::model::Scope::parse(s, vec![Action::Read]).map_err(|e| e.0)?;
    match scope.keys {
        crate::model::KeyScope::Prefix(prefix) => Ok(ScopePattern {
            bucket: scope.bucket,
            prefix,
        }),
        crate::model::KeyScope::Exact(_) => Err(format!(
            "{s:?} must end with '/': policy scopes are prefixes"
        )),
    }
}

/// A rule's limits; the error says where and what.
fn limits(
    raw: &RawLimits,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
) -> Result<Limits, (String, String)> {
    let share_ttl_seconds = match &raw.share_ttl {
        None => None,
        Some(ttl) => Some(
            duration_field(ttl)
                .map_err(|e| (at(ttl.span()), e))?
                .whole_seconds(),
        ),
    };
    Ok(Limits {
        bytes: raw.bytes,
        objects: raw.objects,
        share_ttl_seconds,
    })
}

fn duration_field(d: &Spanned<String>) -> Result<time::Duration, String> {
    let duration = crate::duration::parse(d.get_ref())?;
    if duration > MAX_RULE_DURATION {
        return Err(format!(
            "{} is longer than the 7 days any grant may last",
            d.get_ref()
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
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

[[sensitive]]
scope = "s3://hr-data/payroll/"
label = "pii"
min_approvals = 2
"#;

    #[test]
    fn a_valid_file_loads_with_origins() {
        let set = parse_file("p.toml", GOOD).unwrap();
        let rule = &set.rules[0];
        assert_eq!(
            rule.origin,
            Origin {
                file: "p.toml".into(),
                line: 2
            }
        );
        assert_eq!(rule.max_duration, time::Duration::hours(2));
        assert_eq!(rule.actions, vec![Action::Read, Action::List]);
        assert_eq!(set.labels[0].label, "pii");
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let bad = GOOD.replace(
            r#"actions = ["read", "list"]"#,
            r#"actions = ["read", "fly"]"#,
        );
        let err = parse_file("p.toml", &bad).unwrap_err();
        assert_eq!(
            err.0,
            vec![
                r#"p.toml:6: rule "payroll": actions: unknown action "fly": expected read, list, write or delete"#
            ]
        );

        let bad = GOOD.replace(
            r#"justification = "^INC-[0-9]+""#,
            r#"justification = "^INC-[0-9+""#,
        );
        let err = parse_file("p.toml", &bad).unwrap_err();
        assert!(
            err.0[0].starts_with(r#"p.toml:11: rule "payroll": justification: pattern"#),
            "{err}"
        );

        let bad = GOOD.replace(r#"max_duration = "2h""#, r#"max_duration = "30d""#);
        assert!(
            parse_file("p.toml", &bad).unwrap_err().0[0]
                .contains("p.toml:7: rule \"payroll\": max_duration: 30d is longer")
        );

        let bad = GOOD.replace("approver_mfa = true", "aprover_mfa = true");
        let err = parse_file("p.toml", &bad).unwrap_err();
        assert!(
            err.0[0].starts_with("p.toml:") && err.0[0].contains("aprover_mfa"),
            "{err}"
        );

        let bad = GOOD.replace(r#"approver_groups = ["hr-approvers"]"#, "");
        assert!(
            parse_file("p.toml", &bad).unwrap_err().0[0]
                .contains("approver_groups: 2 approvals need")
        );

        let bad = GOOD.replace(
            r#"scopes = ["s3://hr-data/payroll/"]"#,
            r#"scopes = ["s3://hr-data/payroll"]"#,
        );
        assert!(parse_file("p.toml", &bad).unwrap_err().0[0].contains("must end with '/'"));
    }

    #[test]
    fn a_folder_loads_in_order_and_rejects_duplicate_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.toml"), GOOD).unwrap();
        std::fs::write(dir.path().join("sub/b.toml"), GOOD).unwrap();
        std::fs::write(dir.path().join("notes.md"), "not a policy").unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(
            err.0[0].contains("rule \"payroll\" is already defined at"),
            "{err}"
        );
        std::fs::write(
            dir.path().join("sub/b.toml"),
            GOOD.replace("\"payroll\"", "\"payroll-2\""),
        )
        .unwrap();
        assert_eq!(load_dir(dir.path()).unwrap().rules.len(), 2);
    }
}
