//! What a grant reaches: a bucket, a key prefix or one exact key, and a set of actions.
//! Pure logic with no I/O, so every boundary rule is tested here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The four things a grant can allow. Every S3 operation needs exactly one of them per
/// resource it touches (see `s3::ops`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Read,
    List,
    Write,
    Delete,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Read, Action::List, Action::Write, Action::Delete];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::List => "list",
            Action::Write => "write",
            Action::Delete => "delete",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" => Ok(Action::Read),
            "list" => Ok(Action::List),
            "write" => Ok(Action::Write),
            "delete" => Ok(Action::Delete),
            other => Err(ScopeError(format!(
                "unknown action {other:?}: expected read, list, write or delete"
            ))),
        }
    }
}

/// Parses `read,list` into a sorted, de-duplicated, non-empty list.
pub fn parse_actions(s: &str) -> Result<Vec<Action>, ScopeError> {
    let mut actions = s
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(Action::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    actions.sort();
    actions.dedup();
    if actions.is_empty() {
        return Err(ScopeError(
            "no actions given: name at least one of read, list, write, delete".into(),
        ));
    }
    Ok(actions)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScopeError(pub String);

/// Where in a bucket a grant reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum KeyScope {
    /// Every key that starts with this prefix. Empty means the whole bucket; otherwise it ends
    /// with `/`, so `team-a/` can never reach `team-a-secrets/`.
    Prefix(String),
    /// Exactly one object.
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub bucket: String,
    pub keys: KeyScope,
    pub actions: Vec<Action>,
}

impl Scope {
    /// Builds a scope from `s3://bucket/prefix/` (a prefix) or `s3://bucket/key` (one object).
    pub fn parse(uri: &str, actions: Vec<Action>) -> Result<Scope, ScopeError> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| ScopeError(format!("scope {uri:?} must start with s3://")))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        validate_bucket(bucket)?;
        if !key.is_empty() {
            check_key_segments(key).map_err(ScopeError)?;
        }
        let keys = if key.is_empty() || key.ends_with('/') {
            KeyScope::Prefix(key.to_owned())
        } else {
            KeyScope::Exact(key.to_owned())
        };
        if actions.is_empty() {
            return Err(ScopeError("a scope needs at least one action".into()));
        }
        if matches!(keys, KeyScope::Exact(_)) && actions.contains(&Action::List) {
            return Err(ScopeError(format!(
                "scope {uri:?} names one object, which cannot be listed: end it with '/' for a prefix, or drop list"
            )));
        }
        Ok(Scope {
            bucket: bucket.to_owned(),
            keys,
            actions,
        })
    }

    #[must_use]
    pub fn allows(&self, action: Action) -> bool {
        self.actions.contains(&action)
    }

    /// Whether `key` in `bucket` lies inside this scope. Keys with `.` or `..` segments are
    /// never inside: some backends resolve them as paths.
    #[must_use]
    pub fn covers_key(&self, bucket: &str, key: &str) -> bool {
        if bucket != self.bucket || check_key_segments(key).is_err() {
            return false;
        }
        match &self.keys {
            KeyScope::Prefix(prefix) => key.starts_with(prefix.as_str()),
            KeyScope::Exact(exact) => key == exact,
        }
    }

    /// Whether a listing with this prefix can only return keys inside the scope.
    #[must_use]
    pub fn covers_list_prefix(&self, bucket: &str, list_prefix: &str) -> bool {
        if bucket != self.bucket {
            return false;
        }
        match &self.keys {
            KeyScope::Prefix(prefix) => list_prefix.starts_with(prefix.as_str()),
            KeyScope::Exact(_) => false,
        }
    }

    /// `s3://bucket/prefix/` as the user wrote it.
    #[must_use]
    pub fn uri(&self) -> String {
        let key = match &self.keys {
            KeyScope::Prefix(p) | KeyScope::Exact(p) => p,
        };
        format!("s3://{}/{}", self.bucket, key)
    }

    #[must_use]
    pub fn actions_label(&self) -> String {
        self.actions
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Refuses keys that a path-mapping backend could resolve outside their literal prefix.
pub fn check_key_segments(key: &str) -> Result<(), String> {
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(format!(
            "key {key:?} has a '.' or '..' segment, which Sesame refuses"
        ));
    }
    Ok(())
}

fn validate_bucket(bucket: &str) -> Result<(), ScopeError> {
    let valid_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !(3..=63).contains(&bucket.len()) || !valid_chars {
        return Err(ScopeError(format!(
            "bucket name {bucket:?} is not valid: 3 to 63 lowercase letters, digits, '-' or '.'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(uri: &str, actions: &str) -> Scope {
        Scope::parse(uri, parse_actions(actions).unwrap()).unwrap()
    }

    #[test]
    fn prefix_never_reaches_a_sibling_with_the_same_start() {
        let s = scope("s3://data/team-a/", "read");
        assert!(s.covers_key("data", "team-a/report.csv"));
        assert!(s.covers_key("data", "team-a/deep/x"));
        assert!(!s.covers_key("data", "team-a-secrets/x"));
        assert!(!s.covers_key("data", "team-a"));
        assert!(!s.covers_key("other", "team-a/report.csv"));
    }

    #[test]
    fn a_path_without_trailing_slash_is_one_object() {
        let s = scope("s3://data/team-a/report.csv", "read");
        assert_eq!(s.keys, KeyScope::Exact("team-a/report.csv".into()));
        assert!(s.covers_key("data", "team-a/report.csv"));
        assert!(!s.covers_key("data", "team-a/report.csv.bak"));
    }

    #[test]
    fn dot_segments_are_never_covered() {
        let s = scope("s3://data/team-a/", "read");
        assert!(!s.covers_key("data", "team-a/../team-b/x"));
        assert!(!s.covers_key("data", "team-a/./x"));
        assert!(s.covers_key("data", "team-a/..x"));
    }

    #[test]
    fn list_prefix_must_lie_inside() {
        let s = scope("s3://data/team-a/", "list");
        assert!(s.covers_list_prefix("data", "team-a/"));
        assert!(s.covers_list_prefix("data", "team-a/2026/"));
        assert!(!s.covers_list_prefix("data", "team-a"));
        assert!(!s.covers_list_prefix("data", ""));
        let whole = scope("s3://data/", "list");
        assert!(whole.covers_list_prefix("data", ""));
    }

    #[test]
    fn bad_scopes_are_refused_with_a_reason() {
        let read = vec![Action::Read];
        assert!(
            Scope::parse("data/x", read.clone())
                .unwrap_err()
                .0
                .contains("s3://")
        );
        assert!(
            Scope::parse("s3://Bad_Bucket/", read.clone())
                .unwrap_err()
                .0
                .contains("bucket name")
        );
        assert!(
            Scope::parse("s3://data/a/../b/", read)
                .unwrap_err()
                .0
                .contains("..")
        );
        assert!(
            Scope::parse("s3://data/one.csv", vec![Action::List])
                .unwrap_err()
                .0
                .contains("cannot be listed")
        );
        assert!(parse_actions("read,fly").unwrap_err().0.contains("fly"));
        assert!(parse_actions("").is_err());
    }

    #[test]
    fn actions_are_sorted_and_unique() {
        assert_eq!(
            parse_actions("list, read,list").unwrap(),
            vec![Action::Read, Action::List]
        );
    }
}
