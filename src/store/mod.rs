//! The only code that touches redb. Values are JSON inside a version envelope so that every
//! stored shape has a way up from the previous one; writes commit durably (fsync) before
//! they return, so an acknowledged grant or revocation survives a crash.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::model::LocalUser;
use crate::model::Share;
use crate::model::request::AccessRequest;
use crate::model::{Credential, Grant};

const GRANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("grants");
const CREDENTIALS: TableDefinition<&str, &[u8]> = TableDefinition::new("credentials");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const REQUESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("requests");
const SHARES: TableDefinition<&str, &[u8]> = TableDefinition::new("shares");
const OWED: TableDefinition<&str, &[u8]> = TableDefinition::new("owed_records");
/// Multipart uploads Sesame started, keyed by `bucket/upload-id` (bucket names have no `/`).
const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");

/// Current encoding version of every stored value.
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store database: {0}")]
    Db(#[from] redb::Error),
    #[error("stored {what} {id:?} cannot be decoded: {reason}")]
    Decode {
        what: &'static str,
        id: String,
        reason: String,
    },
}

macro_rules! db_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
db_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A lifecycle record owed to the audit trail, stored in the same transaction as the change
/// it records, until the trail has it. Revocations use it: they are never held up by a trail
/// that cannot be written, and their record is never lost either.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwedRecord {
    pub id: String,
    pub body: crate::record::Body,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    value: T,
}

/// One database shared by the grant book, the users and the requests.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens (or creates) the database and its tables.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(GRANTS)?;
        txn.open_table(CREDENTIALS)?;
        txn.open_table(USERS)?;
        txn.open_table(REQUESTS)?;
        txn.open_table(SHARES)?;
        txn.open_table(OWED)?;
        txn.open_table(UPLOADS)?;
        txn.commit()?;
        Ok(Store { db: Arc::new(db) })
    }

    pub fn put_grant(&self, grant: &Grant) -> Result<(), StoreError> {
        self.put(GRANTS, &grant.id, grant)
    }

    /// A grant and the request that approved it, in one transaction: after a crash either
    /// both are there or neither is, so no grant exists without its recorded approval.
    pub fn put_grant_and_request(
        &self,
        grant: &Grant,
        request: &AccessRequest,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(GRANTS)?
            .insert(grant.id.as_str(), encode(grant).as_slice())?;
        txn.open_table(REQUESTS)?
            .insert(request.id.as_str(), encode(request).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// A grant and the record owed for its change, in one transaction.
    pub fn put_grant_owing(&self, grant: &Grant, owed: &OwedRecord) -> Result<(), StoreError> {
        self.put_owing(GRANTS, &grant.id, grant, owed)
    }

    /// A share link and the record owed for its change, in one transaction.
    pub fn put_share_owing(&self, share: &Share, owed: &OwedRecord) -> Result<(), StoreError> {
        self.put_owing(SHARES, &share.id, share, owed)
    }

    /// Records not yet in the trail, oldest first.
    pub fn owed_records(&self) -> Result<Vec<OwedRecord>, StoreError> {
        self.load(OWED, "owed record", decode_versioned)
    }

    /// Forgets owed records the trail now holds.
    pub fn settle_owed(&self, ids: &[String]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(OWED)?;
            for id in ids {
                table.remove(id.as_str())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    pub fn load_grants(&self) -> Result<Vec<Grant>, StoreError> {
        self.load(GRANTS, "grant", decode_grant)
    }

    pub fn put_credential(&self, credential: &Credential) -> Result<(), StoreError> {
        self.put(CREDENTIALS, &credential.access_key_id, credential)
    }

    pub fn load_credentials(&self) -> Result<Vec<Credential>, StoreError> {
        self.load(CREDENTIALS, "credential", decode_credential)
    }

    pub fn put_user(&self, user: &LocalUser) -> Result<(), StoreError> {
        self.put(USERS, &user.name, user)
    }

    pub fn load_users(&self) -> Result<Vec<LocalUser>, StoreError> {
        self.load(USERS, "user", decode_versioned)
    }

    pub fn put_request(&self, request: &AccessRequest) -> Result<(), StoreError> {
        self.put(REQUESTS, &request.id, request)
    }

    pub fn load_requests(&self) -> Result<Vec<AccessRequest>, StoreError> {
        self.load(REQUESTS, "request", decode_versioned)
    }

    pub fn put_share(&self, share: &Share) -> Result<(), StoreError> {
        self.put(SHARES, &share.id, share)
    }

    pub fn load_shares(&self) -> Result<Vec<Share>, StoreError> {
        self.load(SHARES, "share link", decode_versioned)
    }

    /// Durable before it returns: the upload id reaches the client only after this.
    pub fn put_upload(&self, upload: &UploadBinding) -> Result<(), StoreError> {
        self.put(
            UPLOADS,
            &upload_row(&upload.bucket, &upload.upload_id),
            upload,
        )
    }

    /// Forgets a finished (completed or aborted) upload; forgetting an unknown one is no error.
    pub fn delete_upload(&self, bucket: &str, upload_id: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(UPLOADS)?
            .remove(upload_row(bucket, upload_id).as_str())?;
        txn.commit()?;
        Ok(())
    }

    pub fn load_uploads(&self) -> Result<Vec<UploadBinding>, StoreError> {
        self.load(UPLOADS, "upload", decode_versioned)
    }

    fn put<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        id: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = encode(value);
        let txn = self.db.begin_write()?;
        txn.open_table(table)?.insert(id, bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn put_owing<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        id: &str,
        value: &T,
        owed: &OwedRecord,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(table)?
            .insert(id, encode(value).as_slice())?;
        txn.open_table(OWED)?
            .insert(owed.id.as_str(), encode(owed).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn load<T>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        what: &'static str,
        decode: fn(&[u8]) -> Result<T, String>,
    ) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(table)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (id, bytes) = row?;
            let value = decode(bytes.value()).map_err(|reason| StoreError::Decode {
                what,
                id: id.value().to_owned(),
                reason,
            })?;
            out.push(value);
        }
        Ok(out)
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

fn upload_row(bucket: &str, upload_id: &str) -> String {
    format!("{bucket}/{upload_id}")
}

/// A value in the current version's envelope.
fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(&Envelope { v: VERSION, value }).expect("stored values always serialise")
}

/// Reads the envelope's version first, then the value in that version's shape.
fn decode_versioned<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let envelope: Envelope<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    match envelope.v {
        1 => serde_json::from_value(envelope.value).map_err(|e| e.to_string()),
        other => Err(format!(
            "unknown version {other}; this build reads version {VERSION}"
        )),
    }
}

fn decode_grant(bytes: &[u8]) -> Result<Grant, String> {
    decode_versioned(bytes)
}

fn decode_credential(bytes: &[u8]) -> Result<Credential, String> {
    decode_versioned(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Version 1 as it is written on disk; kept so a later version proves it still reads it.
    const GRANT_V1: &str = r#"{"v":1,"value":{"id":"g-0123456789abcdef","principal":"alice","scope":{"bucket":"hr-data","keys":{"kind":"prefix","value":"payroll/"},"actions":["read","list"]},"created_at":"2026-11-29T10:00:00Z","starts_at":"2026-11-29T10:00:00Z","expires_at":"2026-11-29T10:30:00Z","revoked_at":null,"revoked_by":null}}"#;
    const CREDENTIAL_V1: &str = r#"{"v":1,"value":{"access_key_id":"SESAABCDEFGHIJKLMNOP","grant_id":"g-0123456789abcdef","principal":"alice","created_at":"2026-11-29T10:00:00Z"}}"#;

    const UPLOAD_V1: &str = r#"{"v":1,"value":{"bucket":"hr-data","key":"payroll/big.csv","upload_id":"u-1","principal":"alice","grant_id":"g-0123456789abcdef","created_at":"2026-11-29T10:00:00Z"}}"#;

    /// A revocation's record owed to the trail, as the store kept it before records were
    /// typed (the body as the trail stores it, keys sorted).
    const OWED_V1: &str = r#"{"v":1,"value":{"id":"000001796024115000000000-g-3094369974203124","body":{"at":"2026-12-01T14:15:15Z","event":"grant.revoked","grant_id":"g-3094369974203124","kind":"lifecycle","principal":"alice","request_id":null,"scope":"s3://fixtures/data/","summary":"alice revoked grant g-3094369974203124 of alice on s3://fixtures/data/"}}}"#;

    #[test]
    fn an_owed_record_of_version_1_decodes_into_its_typed_body() {
        let owed: OwedRecord = decode_versioned(OWED_V1.as_bytes()).unwrap();
        let crate::record::Kind::Lifecycle(crate::record::Lifecycle::GrantRevoked(notice)) =
            &owed.body.kind
        else {
            panic!("{owed:?}")
        };
        assert_eq!(notice.grant_id.as_deref(), Some("g-3094369974203124"));
        // Moved into the trail, it is the record the trail would have got before.
        let stored: serde_json::Value = serde_json::from_str(OWED_V1).unwrap();
        assert_eq!(
            owed.body.canonical(),
            crate::record::canonical(&stored["value"]["body"])
        );
    }

    #[test]
    fn version_1_fixtures_decode() {
        let grant = decode_grant(GRANT_V1.as_bytes()).unwrap();
        assert_eq!(grant.id, "g-0123456789abcdef");
        assert_eq!(grant.scope.uri(), "s3://hr-data/payroll/");
        let credential = decode_credential(CREDENTIAL_V1.as_bytes()).unwrap();
        assert_eq!(credential.grant_id, "g-0123456789abcdef");
        let upload: UploadBinding = decode_versioned(UPLOAD_V1.as_bytes()).unwrap();
        assert_eq!(
            (upload.key.as_str(), upload.principal.as_str()),
            ("payroll/big.csv", "alice")
        );
    }

    #[test]
    fn uploads_survive_reopening_until_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let upload: UploadBinding = decode_versioned(UPLOAD_V1.as_bytes()).unwrap();
        Store::open(&path).unwrap().put_upload(&upload).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.load_uploads().unwrap(), vec![upload]);
        store.delete_upload("hr-data", "u-1").unwrap();
        store.delete_upload("hr-data", "u-1").unwrap();
        drop(store);
        assert_eq!(Store::open(&path).unwrap().load_uploads().unwrap(), vec![]);
    }

    #[test]
    fn unknown_versions_are_refused_not_guessed() {
        let err = decode_grant(br#"{"v":99,"value":{}}"#).unwrap_err();
        assert!(err.contains("unknown version 99"), "{err}");
    }

    #[test]
    fn values_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let grant = decode_grant(GRANT_V1.as_bytes()).unwrap();
        Store::open(&path).unwrap().put_grant(&grant).unwrap();
        let loaded = Store::open(&path).unwrap().load_grants().unwrap();
        assert_eq!(loaded, vec![grant]);
    }
}
