//! Values the store keeps for Sesame's own bookkeeping, beside the model's: records owed to
//! the trail and the multipart uploads Sesame started.

use serde::{Deserialize, Serialize};

use super::{Stored, Table};

/// A lifecycle record owed to the audit trail, stored in the same transaction as the change
/// it records, until the trail has it. Revocations use it: they are never held up by a trail
/// that cannot be written, and their record is never lost either.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwedRecord {
    pub id: String,
    pub body: crate::record::Body,
}

impl Stored for OwedRecord {
    const TABLE: Table = Table::Owed;
    const WHAT: &'static str = "owed record";
    fn row_id(&self) -> String {
        self.id.clone()
    }
}

/// A multipart upload id as Sesame handed it out: the bucket and key it was created for, and
/// who started it under which grant. The plain stored shape; the rule that reads it is in
/// `s3::uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadBinding {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub principal: String,
    pub grant_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

impl UploadBinding {
    /// The row of an upload: bucket names have no `/`, so this is unambiguous.
    #[must_use]
    pub fn row_for(bucket: &str, upload_id: &str) -> String {
        format!("{bucket}/{upload_id}")
    }
}

impl Stored for UploadBinding {
    const TABLE: Table = Table::Uploads;
    const WHAT: &'static str = "upload";
    fn row_id(&self) -> String {
        UploadBinding::row_for(&self.bucket, &self.upload_id)
    }
}

/// A key every gateway sharing the store must hold the same copy of (credential secrets and
/// link signatures are derived from it), made once by the first gateway that needs it.
#[derive(Clone, Serialize, Deserialize)]
pub struct SharedKey {
    pub name: String,
    /// The key's 32 bytes in hex.
    pub hex: String,
}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedKey({}, ***)", self.name)
    }
}

impl Stored for SharedKey {
    const TABLE: Table = Table::Keys;
    const WHAT: &'static str = "key";
    fn row_id(&self) -> String {
        self.name.clone()
    }
}

/// Who is doing a piece of work that must be done once among the gateways sharing the
/// store (timing out a request, moving an owed record into a trail), and until when: a
/// holder that dies leaves a lease that runs out, and another takes the work over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub work: String,
    pub holder: String,
    #[serde(with = "time::serde::rfc3339")]
    pub until: time::OffsetDateTime,
}

impl Stored for Lease {
    const TABLE: Table = Table::Claims;
    const WHAT: &'static str = "lease";
    fn row_id(&self) -> String {
        self.work.clone()
    }
}
