//! The one table that says what every S3 operation needs. An operation missing from it is
//! denied before anything else happens (deny by default); rows marked with an extra check have
//! a second step in `access.rs` that sees the parsed input (copy source, each deleted key,
//! list prefix, upload id) or in `gateway.rs` that narrows or records the answer. A test in
//! `access/tests.rs` fails when a row's check on the input has no hook refusing outside the grant.

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
}

const fn rule(op: &'static str, action: Action, target: Target, extra: &'static [Extra]) -> Rule {
    Rule {
        op,
        action,
        target,
        extra,
    }
}

use Action::{Delete, List, Read, Write};
use Extra::{
    BindsUpload, BoundUpload, CopySource, EachDeletedKey, FilterBuckets, FilterUploads, ListPrefix,
};
use Target::{Bucket, Object, Root};

/// Every operation Sesame lets through. Bucket configuration (policies, ACLs, lifecycle, CORS,
/// versioning, create/delete) is absent on purpose: it belongs to the backend's operator.
pub const TABLE: &[Rule] = &[
    rule("ListBuckets", List, Root, &[FilterBuckets]),
    rule("ListObjects", List, Bucket, &[ListPrefix]),
    rule("ListObjectsV2", List, Bucket, &[ListPrefix]),
    rule("ListObjectVersions", List, Bucket, &[ListPrefix]),
    rule(
        "ListMultipartUploads",
        List,
        Bucket,
        &[ListPrefix, FilterUploads],
    ),
    rule("ListParts", List, Object, &[BoundUpload]),
    rule("HeadBucket", List, Bucket, &[]),
    rule("GetBucketLocation", List, Bucket, &[]),
    rule("GetObject", Read, Object, &[]),
    rule("HeadObject", Read, Object, &[]),
    rule("GetObjectAttributes", Read, Object, &[]),
    rule("GetObjectTagging", Read, Object, &[]),
    rule("PutObject", Write, Object, &[]),
    rule("CreateMultipartUpload", Write, Object, &[BindsUpload]),
    rule("UploadPart", Write, Object, &[BoundUpload]),
    rule("UploadPartCopy", Write, Object, &[CopySource, BoundUpload]),
    rule("CompleteMultipartUpload", Write, Object, &[BoundUpload]),
    rule("AbortMultipartUpload", Write, Object, &[BoundUpload]),
    rule("CopyObject", Write, Object, &[CopySource]),
    rule("PutObjectTagging", Write, Object, &[]),
    rule("DeleteObject", Delete, Object, &[]),
    rule("DeleteObjectTagging", Delete, Object, &[]),
    rule("DeleteObjects", Delete, Bucket, &[EachDeletedKey]),
];

/// The rule for an s3s operation name, or `None` when Sesame does not let it through.
#[must_use]
pub fn rule_for(op: &str) -> Option<&'static Rule> {
    TABLE.iter().find(|r| r.op == op)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per row of DESIGN.md's table: a changed row fails here first.
    #[test]
    fn every_row_needs_what_the_design_says() {
        let expected: &[(&str, Action, Target, &[Extra])] = &[
            ("ListBuckets", List, Root, &[FilterBuckets]),
            ("ListObjects", List, Bucket, &[ListPrefix]),
            ("ListObjectsV2", List, Bucket, &[ListPrefix]),
            ("ListObjectVersions", List, Bucket, &[ListPrefix]),
            (
                "ListMultipartUploads",
                List,
                Bucket,
                &[ListPrefix, FilterUploads],
            ),
            ("ListParts", List, Object, &[BoundUpload]),
            ("HeadBucket", List, Bucket, &[]),
            ("GetBucketLocation", List, Bucket, &[]),
            ("GetObject", Read, Object, &[]),
            ("HeadObject", Read, Object, &[]),
            ("GetObjectAttributes", Read, Object, &[]),
            ("GetObjectTagging", Read, Object, &[]),
            ("PutObject", Write, Object, &[]),
            ("CreateMultipartUpload", Write, Object, &[BindsUpload]),
            ("UploadPart", Write, Object, &[BoundUpload]),
            ("UploadPartCopy", Write, Object, &[CopySource, BoundUpload]),
            ("CompleteMultipartUpload", Write, Object, &[BoundUpload]),
            ("AbortMultipartUpload", Write, Object, &[BoundUpload]),
            ("CopyObject", Write, Object, &[CopySource]),
            ("PutObjectTagging", Write, Object, &[]),
            ("DeleteObject", Delete, Object, &[]),
            ("DeleteObjectTagging", Delete, Object, &[]),
            ("DeleteObjects", Delete, Bucket, &[EachDeletedKey]),
        ];
        assert_eq!(TABLE.len(), expected.len());
        for &(op, action, target, extra) in expected {
            let found = rule_for(op).map(|r| (r.action, r.target, r.extra));
            assert_eq!(found, Some((action, target, extra)), "{op}");
        }
    }

    #[test]
    fn operations_outside_the_table_are_denied() {
        for op in [
            "PutBucketPolicy",
            "DeleteBucket",
            "CreateBucket",
            "PutBucketAcl",
            "PostObject",
            "SelectObjectContent",
            "",
        ] {
            assert_eq!(rule_for(op), None, "{op}");
        }
    }
}
