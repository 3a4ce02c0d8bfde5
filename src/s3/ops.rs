//! The one table that says what every S3 operation needs. An operation missing from it is
//! denied before anything else happens (deny by default); rows marked with an extra check have
//! a second step in `access.rs` that sees the parsed input (copy source, each deleted key,
//! list prefix).

use crate::grant::Action;

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
    None,
    /// The listing prefix must lie inside the grant.
    ListPrefix,
    /// The copy source needs `read` (besides `write` on the destination).
    CopySource,
    /// Every key in the batch needs `delete`.
    EachDeletedKey,
    /// The answer is narrowed to the caller's bucket.
    FilterBuckets,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub op: &'static str,
    pub action: Action,
    pub target: Target,
    pub extra: Extra,
}

const fn rule(op: &'static str, action: Action, target: Target, extra: Extra) -> Rule {
    Rule {
        op,
        action,
        target,
        extra,
    }
}

use Action::{Delete, List, Read, Write};
use Target::{Bucket, Object, Root};

/// Every operation Sesame lets through. Bucket configuration (policies, ACLs, lifecycle, CORS,
/// versioning, create/delete) is absent on purpose: it belongs to the backend's operator.
pub const TABLE: &[Rule] = &[
    rule("ListBuckets", List, Root, Extra::FilterBuckets),
    rule("ListObjects", List, Bucket, Extra::ListPrefix),
    rule("ListObjectsV2", List, Bucket, Extra::ListPrefix),
    rule("ListObjectVersions", List, Bucket, Extra::ListPrefix),
    rule("ListMultipartUploads", List, Bucket, Extra::ListPrefix),
    rule("ListParts", List, Object, Extra::None),
    rule("HeadBucket", List, Bucket, Extra::None),
    rule("GetBucketLocation", List, Bucket, Extra::None),
    rule("GetObject", Read, Object, Extra::None),
    rule("HeadObject", Read, Object, Extra::None),
    rule("GetObjectAttributes", Read, Object, Extra::None),
    rule("GetObjectTagging", Read, Object, Extra::None),
    rule("PutObject", Write, Object, Extra::None),
    rule("CreateMultipartUpload", Write, Object, Extra::None),
    rule("UploadPart", Write, Object, Extra::None),
    rule("UploadPartCopy", Write, Object, Extra::CopySource),
    rule("CompleteMultipartUpload", Write, Object, Extra::None),
    rule("AbortMultipartUpload", Write, Object, Extra::None),
    rule("CopyObject", Write, Object, Extra::CopySource),
    rule("PutObjectTagging", Write, Object, Extra::None),
    rule("DeleteObject", Delete, Object, Extra::None),
    rule("DeleteObjectTagging", Delete, Object, Extra::None),
    rule("DeleteObjects", Delete, Bucket, Extra::EachDeletedKey),
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
        let expected: &[(&str, Action, Target, Extra)] = &[
            ("ListBuckets", List, Root, Extra::FilterBuckets),
            ("ListObjects", List, Bucket, Extra::ListPrefix),
            ("ListObjectsV2", List, Bucket, Extra::ListPrefix),
            ("ListObjectVersions", List, Bucket, Extra::ListPrefix),
            ("ListMultipartUploads", List, Bucket, Extra::ListPrefix),
            ("ListParts", List, Object, Extra::None),
            ("HeadBucket", List, Bucket, Extra::None),
            ("GetBucketLocation", List, Bucket, Extra::None),
            ("GetObject", Read, Object, Extra::None),
            ("HeadObject", Read, Object, Extra::None),
            ("GetObjectAttributes", Read, Object, Extra::None),
            ("GetObjectTagging", Read, Object, Extra::None),
            ("PutObject", Write, Object, Extra::None),
            ("CreateMultipartUpload", Write, Object, Extra::None),
            ("UploadPart", Write, Object, Extra::None),
            ("UploadPartCopy", Write, Object, Extra::CopySource),
            ("CompleteMultipartUpload", Write, Object, Extra::None),
            ("AbortMultipartUpload", Write, Object, Extra::None),
            ("CopyObject", Write, Object, Extra::CopySource),
            ("PutObjectTagging", Write, Object, Extra::None),
            ("DeleteObject", Delete, Object, Extra::None),
            ("DeleteObjectTagging", Delete, Object, Extra::None),
            ("DeleteObjects", Delete, Bucket, Extra::EachDeletedKey),
        ];
        assert_eq!(TABLE.len(), expected.len());
        for &(op, action, target, extra) in expected {
            assert_eq!(rule_for(op), Some(&rule(op, action, target, extra)), "{op}");
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
