//! The grant decision, pure: from the grant a credential is bound to, the operation, the
//! resources it names and the time, either the operation's rule or the [`Denial`] saying
//! why not. No clock, store or meter here: `access.rs` feeds these functions, counts the
//! request against the grant's limits and records the outcome; `link.rs` decides a
//! link's use with [`decide_link`].

use s3s::dto::CopySource;
use s3s::path::S3Path;
use time::OffsetDateTime;

use super::denial::Denial;
use super::ops::{Rule, Target, rule_for};
use crate::model::{Action, Grant, GrantState};

/// Whether `grant` lets operation `op` act on `path` at `now`: its window, the operation
/// table, the action the row needs, and the bucket or key the path names.
pub fn decide(
    grant: &Grant,
    op: &str,
    path: &S3Path,
    now: OffsetDateTime,
) -> Result<&'static Rule, Denial> {
    check_window(grant, now)?;
    let rule = rule_for(op).ok_or_else(|| Denial::OperationNotAllowed { op: op.into() })?;
    require_action(grant, rule.action)?;
    match (rule.target, path) {
        (Target::Root, S3Path::Root) => {}
        (Target::Bucket, S3Path::Bucket { bucket }) => require_bucket(grant, bucket)?,
        (Target::Object, S3Path::Object { bucket, key }) => {
            require_key(grant, bucket, key, rule.action)?;
        }
        (_, path) => {
            return Err(Denial::WrongTarget {
                op: op.into(),
                target: describe(path),
            });
        }
    }
    Ok(rule)
}

/// Time is checked on every request, whatever a background task may or may not have done.
pub fn check_window(grant: &Grant, now: OffsetDateTime) -> Result<(), Denial> {
    let id = || grant.id.clone();
    match grant.state(now) {
        GrantState::Active => Ok(()),
        GrantState::Scheduled => Err(Denial::NotYetActive {
            grant: id(),
            starts_at: grant.starts_at,
        }),
        GrantState::Expired => Err(Denial::Expired {
            grant: id(),
            expires_at: grant.expires_at,
        }),
        GrantState::Revoked => Err(Denial::Revoked {
            grant: id(),
            at: grant.revoked_at.unwrap_or(grant.expires_at),
            by: grant.revoked_by.clone(),
        }),
    }
}

fn require_action(grant: &Grant, action: Action) -> Result<(), Denial> {
    if grant.scope.allows(action) {
        return Ok(());
    }
    Err(Denial::ActionNotAllowed {
        grant: grant.into(),
        action,
    })
}

fn require_bucket(grant: &Grant, bucket: &str) -> Result<(), Denial> {
    if grant.scope.bucket == bucket {
        return Ok(());
    }
    Err(Denial::OutsideBucket {
        grant: grant.into(),
        bucket: bucket.into(),
    })
}

/// One key the request touches (its path, a copy source, each deleted key) needs `action`.
pub fn require_key(grant: &Grant, bucket: &str, key: &str, action: Action) -> Result<(), Denial> {
    require_action(grant, action)?;
    if crate::model::scope::check_key_segments(key).is_err() {
        return Err(Denial::DotSegment { key: key.into() });
    }
    if key.trim().is_empty() {
        // The backend client cannot send such a key; say so instead of failing inside it.
        return Err(Denial::BlankKey);
    }
    if grant.scope.covers_key(bucket, key) {
        return Ok(());
    }
    Err(Denial::OutsideScope {
        grant: grant.into(),
        bucket: bucket.into(),
        key: key.into(),
        action,
    })
}

/// A listing's prefix (none is the whole bucket) must lie inside the grant.
pub fn require_list_prefix(
    grant: &Grant,
    bucket: &str,
    prefix: Option<&str>,
) -> Result<(), Denial> {
    let prefix = prefix.unwrap_or("");
    if grant.scope.covers_list_prefix(bucket, prefix) {
        return Ok(());
    }
    Err(Denial::ListOutsideScope {
        grant: grant.into(),
        bucket: bucket.into(),
        prefix: prefix.into(),
    })
}

/// The source of `CopyObject` and `UploadPartCopy` is read: it needs `read` on its key.
pub fn require_copy_source(grant: &Grant, source: &CopySource) -> Result<(), Denial> {
    match source {
        CopySource::Bucket { bucket, key, .. } => require_key(grant, bucket, key, Action::Read),
        CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => {
            Err(Denial::CopySourceNotObject)
        }
    }
}

/// Whether the grant behind link `share` still lets it read `s3://bucket/key` at `now`
/// (the link's own state is the link book's to check).
pub fn decide_link(
    grant: &Grant,
    share: &str,
    bucket: &str,
    key: &str,
    now: OffsetDateTime,
) -> Result<(), Denial> {
    check_window(grant, now).map_err(|why| Denial::LinkGrantEnded {
        share: share.into(),
        why: Box::new(why),
    })?;
    if grant.scope.allows(Action::Read) && grant.scope.covers_key(bucket, key) {
        return Ok(());
    }
    Err(Denial::LinkOutsideGrant {
        grant: grant.id.clone(),
        uri: format!("s3://{bucket}/{key}"),
    })
}

fn describe(path: &S3Path) -> String {
    match path {
        S3Path::Root => "the service root".into(),
        S3Path::Bucket { bucket } => format!("bucket {bucket}"),
        S3Path::Object { bucket, key } => format!("s3://{bucket}/{key}"),
    }
}

#[cfg(test)]
mod tests;
