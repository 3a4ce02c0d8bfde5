//! The redb store: the conformance suite, the move from schema 1, and the stored encodings
//! of version 1 kept as fixtures.

use super::*;
use crate::model::{Credential, Grant};

/// Version 1 as it is written on disk; kept so a later version proves it still reads it.
const GRANT_V1: &str = r#"{"v":1,"value":{"id":"g-0123456789abcdef","principal":"alice","scope":{"bucket":"hr-data","keys":{"kind":"prefix","value":"payroll/"},"actions":["read","list"]},"created_at":"2026-11-29T10:00:00Z","starts_at":"2026-11-29T10:00:00Z","expires_at":"2026-11-29T10:30:00Z","revoked_at":null,"revoked_by":null}}"#;
const CREDENTIAL_V1: &str = r#"{"v":1,"value":{"access_key_id":"SESAABCDEFGHIJKLMNOP","grant_id":"g-0123456789abcdef","principal":"alice","created_at":"2026-11-29T10:00:00Z"}}"#;

const UPLOAD_V1: &str = r#"{"v":1,"value":{"bucket":"hr-data","key":"payroll/big.csv","upload_id":"u-1","principal":"alice","grant_id":"g-0123456789abcdef","created_at":"2026-11-29T10:00:00Z"}}"#;

/// A revocation's record owed to the trail, as the store kept it before records were
/// typed (the body as the trail stores it, keys sorted).
const OWED_V1: &str = r#"{"v":1,"value":{"id":"000001796024115000000000-g-3094369974203124","body":{"at":"2026-12-01T14:15:15Z","event":"grant.revoked","grant_id":"g-3094369974203124","kind":"lifecycle","principal":"alice","request_id":null,"scope":"s3://fixtures/data/","summary":"alice revoked grant g-3094369974203124 of alice on s3://fixtures/data/"}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = open_file(&path).await.unwrap();
    conformance::suite(store, || async { open_file(&path).await.unwrap() }).await;
}

#[test]
fn an_owed_record_of_version_1_decodes_into_its_typed_body() {
    let owed: OwedRecord = decode("owed", OWED_V1.as_bytes()).unwrap();
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
    let grant: Grant = decode("g", GRANT_V1.as_bytes()).unwrap();
    assert_eq!(grant.id, "g-0123456789abcdef");
    assert_eq!(grant.scope.uri(), "s3://hr-data/payroll/");
    let credential: Credential = decode("c", CREDENTIAL_V1.as_bytes()).unwrap();
    assert_eq!(credential.grant_id, "g-0123456789abcdef");
    let upload: UploadBinding = decode("u", UPLOAD_V1.as_bytes()).unwrap();
    assert_eq!(
        (upload.key.as_str(), upload.principal.as_str()),
        ("payroll/big.csv", "alice")
    );
}

#[test]
fn unknown_versions_are_refused_not_guessed() {
    let err = decode::<Grant>("g-1", br#"{"v":99,"value":{}}"#).unwrap_err();
    assert!(err.to_string().contains("unknown version 99"), "{err}");
}

/// A data directory written before the store had revisions (one redb table per kind) opens
/// with every value in place, at revision 1, and the old tables gone.
#[tokio::test]
async fn a_schema_1_file_is_moved_into_rows_with_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    {
        let db = ::redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        for (table, id, value) in [
            ("grants", "g-0123456789abcdef", GRANT_V1),
            ("credentials", "SESAABCDEFGHIJKLMNOP", CREDENTIAL_V1),
            ("uploads", "hr-data/u-1", UPLOAD_V1),
            (
                "owed_records",
                "000001796024115000000000-g-3094369974203124",
                OWED_V1,
            ),
        ] {
            let def: ::redb::TableDefinition<&str, &[u8]> = ::redb::TableDefinition::new(table);
            txn.open_table(def)
                .unwrap()
                .insert(id, value.as_bytes())
                .unwrap();
        }
        let empty: ::redb::TableDefinition<&str, &[u8]> = ::redb::TableDefinition::new("users");
        txn.open_table(empty).unwrap();
        txn.commit().unwrap();
    }
    let store = open_file(&path).await.unwrap();
    let grants = load::<Grant>(&*store).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        (grants[0].0, grants[0].1.id.as_str()),
        (1, "g-0123456789abcdef")
    );
    assert_eq!(load::<Credential>(&*store).await.unwrap().len(), 1);
    assert_eq!(load::<UploadBinding>(&*store).await.unwrap().len(), 1);
    assert_eq!(load::<OwedRecord>(&*store).await.unwrap().len(), 1);
    assert_eq!(store.changes_since(0, 100).await.unwrap().len(), 4);
    // The next commit moves on from there, and reopening moves nothing twice.
    let next = store
        .commit(vec![Write::delete::<UploadBinding>(
            "hr-data/u-1",
            Expect::At(1),
        )])
        .await
        .unwrap();
    assert_eq!(next, 2);
    drop(store);
    let store = open_file(&path).await.unwrap();
    assert_eq!(load::<Grant>(&*store).await.unwrap().len(), 1);
    assert!(load::<UploadBinding>(&*store).await.unwrap().is_empty());
}

/// Of two holders claiming the same work at once, one gets it; the other gets it only once
/// the lease has run out; a holder renews its own lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_goes_to_one_holder_until_it_runs_out() {
    use time::macros::datetime;
    let dir = tempfile::tempdir().unwrap();
    let store = open_file(&dir.path().join("s.redb")).await.unwrap();
    let now = datetime!(2026-11-29 10:00 UTC);
    let until = now + time::Duration::minutes(1);
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let racers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|holder| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                claim(&*store, "timeout/r-1", holder, now, until)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = Vec::new();
    for (holder, racer) in ["a", "b"].into_iter().zip(racers) {
        if racer.await.unwrap() {
            won.push(holder);
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let (winner, loser) = if won[0] == "a" {
        ("a", "b")
    } else {
        ("b", "a")
    };
    assert!(
        claim(&*store, "timeout/r-1", winner, now, until)
            .await
            .unwrap()
    );
    let meanwhile = now + time::Duration::seconds(30);
    assert!(
        !claim(&*store, "timeout/r-1", loser, meanwhile, until)
            .await
            .unwrap()
    );
    let later = until + time::Duration::seconds(1);
    assert!(
        claim(&*store, "timeout/r-1", loser, later, later)
            .await
            .unwrap()
    );
}
