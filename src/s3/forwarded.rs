//! Which `x-amz-*` request headers may reach the backend: an allow-list, so that a header
//! acting outside Sesame's model (ACLs, object lock, website redirects, the operator's KMS
//! keys, anything new) is refused by name at the front door, before anything is forwarded.
//!
//! The backend client (`s3s_aws::Proxy`) sends only the typed input of the operation s3s
//! routed the request to, so a header no operation in the table reads never reaches the
//! backend anyway; one list for every operation is therefore enough, and it names what the
//! operations in `ops::TABLE` read. Other headers (`Content-Type`, `Cache-Control`, `If-*`,
//! `Range`, ...) describe the object or the transfer and pass as they are.

use hyper::HeaderMap;

use super::denial::Denial;

/// Headers forwarded as sent, besides user metadata (`x-amz-meta-*`).
///
/// SSE-C (`x-amz-server-side-encryption-customer-*`, and its `copy-source` form) is a
/// judgement call, allowed: the key is the client's, it only encrypts an object the grant
/// already lets it write, and reading the object back needs that key too, so it widens
/// nothing; the backend refuses it over plain HTTP as S3 does. SSE-KMS with a chosen key is
/// refused (see [`refusal_reason`]). `x-amz-storage-class` is allowed: it is a plain aws-cli
/// option and changes cost, not who can reach the object.
const FORWARDED: &[&str] = &[
    // Signing and body framing: read by s3s itself.
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
    "x-amz-decoded-content-length",
    "x-amz-trailer",
    "x-amz-user-agent",
    // Checksums, checked by Sesame as the bytes pass.
    "x-amz-sdk-checksum-algorithm",
    "x-amz-checksum-algorithm",
    "x-amz-checksum-type",
    "x-amz-checksum-mode",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
    "x-amz-mp-object-size",
    // Copies: the source is checked against the grant.
    "x-amz-copy-source",
    "x-amz-copy-source-range",
    "x-amz-copy-source-if-match",
    "x-amz-copy-source-if-none-match",
    "x-amz-copy-source-if-modified-since",
    "x-amz-copy-source-if-unmodified-since",
    "x-amz-metadata-directive",
    "x-amz-tagging-directive",
    // What the object carries.
    "x-amz-tagging",
    "x-amz-storage-class",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-bucket-key-enabled",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
    "x-amz-copy-source-server-side-encryption-customer-algorithm",
    "x-amz-copy-source-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key-md5",
    // Listings and attributes.
    "x-amz-object-attributes",
    "x-amz-optional-object-attributes",
    "x-amz-max-parts",
    "x-amz-part-number-marker",
    // Harmless: they only narrow what the backend accepts, or who pays.
    "x-amz-expected-bucket-owner",
    "x-amz-source-expected-bucket-owner",
    "x-amz-request-payer",
];

/// User metadata, stored with the object and read back with it.
const METADATA_PREFIX: &str = "x-amz-meta-";

/// Refuses the first `x-amz-*` header that is not on the allow-list, naming it.
pub fn check(headers: &HeaderMap) -> Result<(), Denial> {
    for (name, value) in headers {
        let name = name.as_str();
        if !name.starts_with("x-amz-")
            || name.starts_with(METADATA_PREFIX)
            || FORWARDED.contains(&name)
            || (name == "x-amz-acl" && harmless_acl(value.as_bytes()))
        {
            continue;
        }
        return Err(Denial::HeaderNotAllowed { name: name.into() });
    }
    Ok(())
}

/// The canned ACLs that give no one but the owner anything: what rclone and other clients
/// send on every upload by default. Accepted, and dropped before the upload is forwarded
/// (`gateway.rs`), so no ACL ever reaches the backend.
fn harmless_acl(value: &[u8]) -> bool {
    [&b"private"[..], b"bucket-owner-full-control"]
        .iter()
        .any(|acl| value.eq_ignore_ascii_case(acl))
}

/// Why a header is refused, for the ones whose effect reaches past the grant.
pub(super) fn refusal_reason(name: &str) -> &'static str {
    if name == "x-amz-acl" || name.starts_with("x-amz-grant-") {
        // On a backend that honours ACLs, a write grant could make objects public for good.
        "access is given by Sesame grants, never by ACLs"
    } else if name.starts_with("x-amz-object-lock-") || name == "x-amz-bypass-governance-retention"
    {
        // Retention outlives the grant, and bypassing it would undo the operator's.
        "object lock and retention belong to the backend's operator"
    } else if name == "x-amz-website-redirect-location" {
        "website redirects belong to the backend's operator"
    } else if name.starts_with("x-amz-server-side-encryption-aws-kms-")
        || name == "x-amz-server-side-encryption-context"
    {
        // The key would be used with the gateway's own backend credentials.
        "KMS keys are the backend operator's; objects get the bucket's default encryption"
    } else {
        "it is not one of the headers Sesame forwards to the backend"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            "x".parse().unwrap(),
        );
        h
    }

    #[test]
    fn headers_outside_the_model_are_refused_by_name() {
        for (name, reason) in [
            ("x-amz-acl", "never by ACLs"),
            ("x-amz-grant-read", "never by ACLs"),
            ("x-amz-grant-full-control", "never by ACLs"),
            ("x-amz-object-lock-mode", "retention"),
            ("x-amz-object-lock-retain-until-date", "retention"),
            ("x-amz-object-lock-legal-hold", "retention"),
            ("x-amz-bypass-governance-retention", "retention"),
            ("x-amz-website-redirect-location", "website redirects"),
            ("x-amz-server-side-encryption-aws-kms-key-id", "KMS keys"),
            ("x-amz-server-side-encryption-context", "KMS keys"),
            ("x-amz-write-offset-bytes", "not one of the headers"),
        ] {
            let err = check(&with(name)).unwrap_err();
            assert_eq!(err.code(), s3s::S3ErrorCode::AccessDenied);
            let message = err.message();
            assert!(
                message.starts_with(&format!("header {name} is not accepted by this gateway: "))
                    && message.contains(reason),
                "{message}"
            );
        }
    }

    #[test]
    fn only_canned_acls_that_give_nothing_away_pass() {
        let acl = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-amz-acl", value.parse().unwrap());
            check(&headers)
        };
        for value in ["private", "PRIVATE", "bucket-owner-full-control"] {
            assert!(acl(value).is_ok(), "{value}");
        }
        for value in [
            "public-read",
            "public-read-write",
            "authenticated-read",
            "private ",
        ] {
            assert!(acl(value).is_err(), "{value}");
        }
    }

    #[test]
    fn what_clients_send_by_default_passes() {
        for name in [
            "x-amz-date",
            "x-amz-content-sha256",
            "x-amz-checksum-crc32",
            "x-amz-meta-owner",
            "x-amz-copy-source",
            "x-amz-server-side-encryption-customer-key",
            "x-amz-expected-bucket-owner",
            "content-type",
            "authorization",
        ] {
            assert!(check(&with(name)).is_ok(), "{name}");
        }
    }
}
