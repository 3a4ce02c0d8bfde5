//! The one table that says what every S3 operation needs and what it does to data. An
//! operation missing from it is denied before anything else happens (deny by default); rows
//! marked with an extra check have a second step in `access.rs` that sees the parsed input
//! (copy source, each deleted key, list prefix, upload id) or in `gateway.rs` that narrows or
//! records the answer (a test in `access/tests.rs` fails when a row's check on the input has
//! no hook refusing outside the grant). The data-effect column is what the meter counts against a grant's
//! limits and what the report says was read and written (see [`Effect`] for when).

pub use crate::grant::usage::Effect;
use crate::model::Action;

/// What part of the request path the action applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The service root (`GET /`).
    Root,
    /// A bucket, with no key.
    Bucket,
    /// One object key in a bucket.
    Object,
}

/// Resources an operation touches beyond its path, checked once the input is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// The listing prefix must lie inside the grant.
    ListPrefix,
    /// The copy source needs `read` (besides `write` on the destination).
    CopySource,
    /// Every key in the batch needs `delete`.
    EachDeletedKey,
    /// The answer is narrowed to the caller's bucket.
    FilterBuckets,
    /// The answer is narrowed to uploads whose keys lie inside the grant.
    FilterUploads,
    /// The upload id returned is bound to its bucket, key and principal (`uploads.rs`).
    BindsUpload,
    /// The upload id must be one bound to this bucket, key and principal (`uploads.rs`).
    BoundUpload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub op: &'static str,
    pub action: Action,
    pub target: Target,
    pub extra: &'static [Extra],
    /// What it does to object data, when allowed.
    pub effect: Effect,
}

const fn rule(
    op: &'static str,
    action: Action,
    target: Target,
    extra: &'static [Extra],
    effect: Effect,
) -> Rule {
    Rule {
        op,
        action,
        target,
        extra,
        effect,
    }
}

use Action::{Delete, List, Read, Write};
use Extra::{
    BindsUpload, BoundUpload, CopySource, EachDeletedKey, FilterBuckets, FilterUploads, ListPrefix,
};
use Target::{Bucket, Object, Root};

/// Every operation Sesame lets through. Bucket configuration (policies, ACL writes, lifecycle,
/// CORS, versioning, delete) is absent on purpose: it belongs to the backend's operator. Three
/// rows are answered by Sesame itself and never reach the backend: an object's ACL (fixed,
/// owner full control), an ACL write (501, as stores without ACLs answer) and `CreateBucket`
/// of a bucket the grant is in (it exists).
pub const TABLE: &[Rule] = &[
    rule("ListBuckets", List, Root, &[FilterBuckets], Effect::None),
    rule("ListObjects", List, Bucket, &[ListPrefix], Effect::None),
    rule("ListObjectsV2", List, Bucket, &[ListPrefix], Effect::None),
    rule(
        "ListObjectVersions",
        List,
        Bucket,
        &[ListPrefix],
        Effect::None,
    ),
    rule(
        "ListMultipartUploads",
        List,
        Bucket,
        &[ListPrefix, FilterUploads],
        Effect::None,
    ),
    rule("ListParts", List, Object, &[BoundUpload], Effect::None),
    rule("HeadBucket", List, Bucket, &[], Effect::None),
    rule("GetBucketLocation", List, Bucket, &[], Effect::None),
    rule("GetObject", Read, Object, &[], Effect::Download),
    rule("HeadObject", Read, Object, &[], Effect::Inspect),
    rule("GetObjectAttributes", Read, Object, &[], Effect::Inspect),
    rule("GetObjectTagging", Read, Object, &[], Effect::Inspect),
    // Answered by Sesame with a fixed owner-full-control ACL (`gateway.rs`).
    rule("GetObjectAcl", Read, Object, &[], Effect::Inspect),
    rule("PutObject", Write, Object, &[], Effect::Store),
    rule(
        "CreateMultipartUpload",
        Write,
        Object,
        &[BindsUpload],
        Effect::None,
    ),
    rule("UploadPart", Write, Object, &[BoundUpload], Effect::Part),
    rule(
        "UploadPartCopy",
        Write,
        Object,
        &[CopySource, BoundUpload],
        Effect::Part,
    ),
    rule(
        "CompleteMultipartUpload",
        Write,
        Object,
        &[BoundUpload],
        Effect::Store,
    ),
    rule(
        "AbortMultipartUpload",
        Write,
        Object,
        &[BoundUpload],
        Effect::None,
    ),
    rule("CopyObject", Write, Object, &[CopySource], Effect::Store),
    rule("PutObjectTagging", Write, Object, &[], Effect::None),
    // Refused by Sesame with 501 NotImplemented, never forwarded (`gateway.rs`).
    rule("PutObjectAcl", Write, Object, &[], Effect::None),
    // Answered by Sesame with BucketAlreadyOwnedByYou, never forwarded (`gateway.rs`).
    rule("CreateBucket", Write, Bucket, &[], Effect::None),
    rule("DeleteObject", Delete, Object, &[], Effect::Delete),
    rule("DeleteObjectTagging", Delete, Object, &[], Effect::None),
    rule(
        "DeleteObjects",
        Delete,
        Bucket,
        &[EachDeletedKey],
        Effect::None,
    ),
];

/// The rule for an s3s operation name, or `None` when Sesame does not let it through.
#[must_use]
pub fn rule_for(op: &str) -> Option<&'static Rule> {
    TABLE.iter().find(|r| r.op == op)
}

/// What an operation does to object data; nothing for one outside the table (it is never
/// allowed).
#[must_use]
pub fn effect_of(op: &str) -> Effect {
    rule_for(op).map_or(Effect::None, |r| r.effect)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per row of DESIGN.md's table: a changed row fails here first.
    #[test]
    fn every_row_needs_what_the_design_says() {
        let expected: &[(&str, Action, Target, &[Extra], Effect)] = &[
            ("ListBuckets", List, Root, &[FilterBuckets], Effect::None),
            ("ListObjects", List, Bucket, &[ListPrefix], Effect::None),
            ("ListObjectsV2", List, Bucket, &[ListPrefix], Effect::None),
            (
                "ListObjectVersions",
                List,
                Bucket,
                &[ListPrefix],
                Effect::None,
            ),
            (
                "ListMultipartUploads",
                List,
                Bucket,
                &[ListPrefix, FilterUploads],
                Effect::None,
            ),
            ("ListParts", List, Object, &[BoundUpload], Effect::None),
            ("HeadBucket", List, Bucket, &[], Effect::None),
            ("GetBucketLocation", List, Bucket, &[], Effect::None),
            ("GetObject", Read, Object, &[], Effect::Download),
            ("HeadObject", Read, Object, &[], Effect::Inspect),
            ("GetObjectAttributes", Read, Object, &[], Effect::Inspect),
            ("GetObjectTagging", Read, Object, &[], Effect::Inspect),
            ("GetObjectAcl", Read, Object, &[], Effect::Inspect),
            ("PutObject", Write, Object, &[], Effect::Store),
            (
                "CreateMultipartUpload",
                Write,
                Object,
                &[BindsUpload],
                Effect::None,
            ),
            ("UploadPart", Write, Object, &[BoundUpload], Effect::Part),
            (
                "UploadPartCopy",
                Write,
                Object,
                &[CopySource, BoundUpload],
                Effect::Part,
            ),
            (
                "CompleteMultipartUpload",
                Write,
                Object,
                &[BoundUpload],
                Effect::Store,
            ),
            (
                "AbortMultipartUpload",
                Write,
                Object,
                &[BoundUpload],
                Effect::None,
            ),
            ("CopyObject", Write, Object, &[CopySource], Effect::Store),
            ("PutObjectTagging", Write, Object, &[], Effect::None),
            ("PutObjectAcl", Write, Object, &[], Effect::None),
            ("CreateBucket", Write, Bucket, &[], Effect::None),
            ("DeleteObject", Delete, Object, &[], Effect::Delete),
            ("DeleteObjectTagging", Delete, Object, &[], Effect::None),
            (
                "DeleteObjects",
                Delete,
                Bucket,
                &[EachDeletedKey],
                Effect::None,
            ),
        ];
        assert_eq!(TABLE.len(), expected.len());
        for &(op, action, target, extra, effect) in expected {
            let found = rule_for(op).map(|r| (r.action, r.target, r.extra, r.effect));
            assert_eq!(found, Some((action, target, extra, effect)), "{op}");
        }
    }

    #[test]
    fn operations_outside_the_table_are_denied() {
        for op in [
            "PutBucketPolicy",
            "DeleteBucket",
            "GetBucketPolicy",
            "PutBucketAcl",
            "PostObject",
            "SelectObjectContent",
            "",
        ] {
            assert_eq!(rule_for(op), None, "{op}");
        }
    }
}
