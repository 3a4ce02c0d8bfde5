//! Multipart upload ids bound to the bucket and key they were created for and to who started
//! them: the rule every operation naming an upload id must pass, the book of bindings (in
//! memory, written through to the store), and upload listings narrowed to the caller's scope.
//!
//! The backend cannot be trusted with this: s3s-fs keys uploads by id alone, and every user
//! reaches it with the gateway's one key, so to the backend all uploads belong to one user.

use s3s::dto::ListMultipartUploadsOutput;

use super::denial::Denial;
use crate::model::{Grant, Scope};
use crate::store::{Change, Expect, Published, SharedStore, StoreError, UploadBinding, Write};

/// The upload a request names: its path and its `uploadId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub upload_id: &'a str,
}

/// Why an upload id does not admit a request. The client is told the same thing in every
/// case, so nobody learns whether someone else's upload exists or which key it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Sesame did not hand this id out in this bucket: made up, already finished, or
    /// started on the backend around Sesame.
    Unknown,
    /// The id was handed out for another key.
    OtherKey,
    /// The id was handed out to another principal.
    OtherPrincipal,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown upload id",
            Refusal::OtherKey => "upload id of another key",
            Refusal::OtherPrincipal => "upload id of another principal",
        }
    }
}

/// Whether `binding` (the one Sesame made for this bucket and id, if any) lets `principal`
/// continue the upload `named`. The key must be the one the upload was created for; the
/// principal must be the one who started it, under this grant or another of theirs (an
/// extended or renewed grant may finish what an earlier one started): the operation table
/// has already checked that the current grant covers the key.
pub fn admits(
    binding: Option<&UploadBinding>,
    named: Named<'_>,
    principal: &str,
) -> Result<(), Refusal> {
    let Some(binding) = binding else {
        return Err(Refusal::Unknown);
    };
    if binding.bucket != named.bucket || binding.upload_id != named.upload_id {
        return Err(Refusal::Unknown);
    }
    if binding.key != named.key {
        return Err(Refusal::OtherKey);
    }
    if binding.principal != principal {
        return Err(Refusal::OtherPrincipal);
    }
    Ok(())
}

/// What the client sees for every refusal: names only what it sent and its own grant.
#[must_use]
pub fn refusal_error(named: Named<'_>, grant: &Grant) -> Denial {
    Denial::UploadNotYours {
        upload_id: named.upload_id.into(),
        bucket: named.bucket.into(),
        key: named.key.into(),
        grant: grant.id.clone(),
        principal: grant.principal.clone(),
    }
}

/// Every upload id Sesame handed out and has not seen finish.
pub struct Uploads {
    store: SharedStore,
    bound: Published<UploadBinding>,
}

impl Uploads {
    /// Loads the bindings of every upload started before a restart.
    pub async fn open(store: SharedStore) -> Result<Uploads, StoreError> {
        let bound = Published::default();
        for (revision, binding) in crate::store::load::<UploadBinding>(&*store).await? {
            bound.publish(revision, binding);
        }
        Ok(Uploads { store, bound })
    }

    /// Takes in a committed change of an upload, from this process or another gateway.
    pub fn apply(&self, change: &Change) -> Result<(), StoreError> {
        self.bound.apply(change).map(|_| ())
    }

    /// Durable before it returns, so an upload id never reaches a client unbound.
    pub async fn bind(&self, binding: UploadBinding) -> Result<(), StoreError> {
        let revision = self
            .store
            .commit(vec![Write::put(&binding, Expect::Absent)])
            .await?;
        self.bound.publish(revision, binding);
        Ok(())
    }

    /// Refuses, with the client's error, a request naming an upload not bound to its key and
    /// principal. The real reason goes to the log only. An upload started through another
    /// gateway a moment ago may not have reached this one's copy yet: a miss asks the store.
    pub async fn require(&self, named: Named<'_>, grant: &Grant) -> Result<(), Denial> {
        let row = UploadBinding::row_for(named.bucket, named.upload_id);
        let binding = match self.bound.get(&row) {
            Some(binding) => Some(binding),
            None => match crate::store::get::<UploadBinding>(&*self.store, &row).await {
                Ok(found) => found.map(|(revision, binding)| {
                    self.bound.publish(revision, binding.clone());
                    binding
                }),
                Err(e) => {
                    tracing::warn!(error = %e, upload_id = named.upload_id, "the store could not be asked for an upload");
                    None
                }
            },
        };
        let verdict = admits(binding.as_ref(), named, &grant.principal);
        verdict.map_err(|refusal| {
            tracing::info!(
                grant = %grant.id,
                bucket = named.bucket,
                key = named.key,
                upload_id = named.upload_id,
                reason = refusal.as_str(),
                "upload refused"
            );
            refusal_error(named, grant)
        })
    }

    /// Forgets an upload the backend completed or aborted. The store goes first: if it
    /// fails, the binding stays, which only keeps a finished id refused by the backend.
    pub async fn release(&self, bucket: &str, upload_id: &str) -> Result<(), StoreError> {
        let row = UploadBinding::row_for(bucket, upload_id);
        let revision = self
            .store
            .commit(vec![Write::delete::<UploadBinding>(&row, Expect::Anything)])
            .await?;
        self.bound.forget(&row, revision);
        Ok(())
    }
}

/// Keeps only the uploads (and common prefixes) of a listing that lie inside `scope`: the
/// listing's prefix was already checked, but a backend may ignore it, and keys with `.` or
/// `..` segments start with the prefix without being inside it.
pub fn keep_in_scope(output: &mut ListMultipartUploadsOutput, bucket: &str, scope: &Scope) {
    let url_encoded = output
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str() == s3s::dto::EncodingType::URL);
    let decoded = |s: &str| {
        if url_encoded {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        } else {
            s.to_owned()
        }
    };
    if let Some(uploads) = output.uploads.as_mut() {
        uploads.retain(|u| {
            u.key
                .as_deref()
                .is_some_and(|k| scope.covers_key(bucket, &decoded(k)))
        });
    }
    if let Some(prefixes) = output.common_prefixes.as_mut() {
        prefixes.retain(|p| {
            p.prefix.as_deref().is_some_and(|p| {
                let p = decoded(p);
                scope.covers_list_prefix(bucket, &p)
                    && crate::model::scope::check_key_segments(&p).is_ok()
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Action;
    use time::macros::datetime;

    fn binding(key: &str, principal: &str) -> UploadBinding {
        UploadBinding {
            bucket: "bkt".into(),
            key: key.into(),
            upload_id: "u-1".into(),
            principal: principal.into(),
            grant_id: "g-a".into(),
            created_at: datetime!(2026-01-01 10:00 UTC),
        }
    }

    fn named<'a>(key: &'a str, upload_id: &'a str) -> Named<'a> {
        Named {
            bucket: "bkt",
            key,
            upload_id,
        }
    }

    /// The binding Sesame made, what the request names, who sends it, the verdict.
    type Row<'a> = (
        Option<&'a UploadBinding>,
        Named<'a>,
        &'a str,
        Result<(), Refusal>,
    );

    /// The attack of issue 8 and its neighbours, one row each.
    #[tokio::test]
    async fn only_the_starter_continues_and_only_on_its_key() {
        let a = binding("team-a-secrets/v.bin", "alice");
        let rows: &[Row<'_>] = &[
            // alice continues her own upload on its key: admitted
            (
                Some(&a),
                named("team-a-secrets/v.bin", "u-1"),
                "alice",
                Ok(()),
            ),
            // bob names alice's id on a key of his own scope: the key is what is bound
            (
                Some(&a),
                named("team-a/stolen.bin", "u-1"),
                "bob",
                Err(Refusal::OtherKey),
            ),
            // alice herself cannot move her upload to another key either
            (
                Some(&a),
                named("team-a-secrets/w.bin", "u-1"),
                "alice",
                Err(Refusal::OtherKey),
            ),
            // bob on alice's very key (say he also had a grant there): not his upload
            (
                Some(&a),
                named("team-a-secrets/v.bin", "u-1"),
                "bob",
                Err(Refusal::OtherPrincipal),
            ),
            // an id Sesame never handed out
            (
                None,
                named("team-a/x.bin", "made-up"),
                "bob",
                Err(Refusal::Unknown),
            ),
            // a binding looked up under another id or bucket is no binding at all
            (
                Some(&a),
                named("team-a-secrets/v.bin", "u-2"),
                "alice",
                Err(Refusal::Unknown),
            ),
        ];
        for (binding, named, principal, expected) in rows {
            assert_eq!(
                admits(*binding, *named, principal),
                *expected,
                "{named:?} by {principal}"
            );
        }
    }

    #[tokio::test]
    async fn the_refusal_names_only_what_the_caller_sent() {
        let grant = crate::model::example_grant(
            "g-b",
            datetime!(2026-01-01 10:00 UTC),
            datetime!(2026-01-01 11:00 UTC),
        );
        let err = refusal_error(named("team-a/stolen.bin", "u-1"), &grant);
        assert_eq!(err.code(), s3s::S3ErrorCode::NoSuchUpload);
        let message = err.message();
        assert!(
            message.contains(
                "\"u-1\" is not one started for s3://bkt/team-a/stolen.bin under grant g-b"
            ),
            "{message}"
        );
        assert!(!message.contains("secrets"), "{message}");
    }

    #[tokio::test]
    async fn bindings_survive_a_restart_and_go_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let grant = crate::model::example_grant(
            "g-a",
            datetime!(2026-01-01 10:00 UTC),
            datetime!(2026-01-01 11:00 UTC),
        );
        let uploads = Uploads::open(crate::store::open_file(&path).await.unwrap())
            .await
            .unwrap();
        uploads.bind(binding("a/v.bin", "alice")).await.unwrap();
        drop(uploads);
        let uploads = Uploads::open(crate::store::open_file(&path).await.unwrap())
            .await
            .unwrap();
        uploads
            .require(named("a/v.bin", "u-1"), &grant)
            .await
            .unwrap();
        uploads
            .require(named("a/w.bin", "u-1"), &grant)
            .await
            .unwrap_err();
        uploads.release("bkt", "u-1").await.unwrap();
        uploads
            .require(named("a/v.bin", "u-1"), &grant)
            .await
            .unwrap_err();
        drop(uploads);
        let uploads = Uploads::open(crate::store::open_file(&path).await.unwrap())
            .await
            .unwrap();
        uploads
            .require(named("a/v.bin", "u-1"), &grant)
            .await
            .unwrap_err();
    }

    #[tokio::test]
    async fn listings_keep_only_uploads_inside_the_scope() {
        use s3s::dto::{CommonPrefix, MultipartUpload};
        let scope = Scope::parse("s3://bkt/team-a/", vec![Action::List]).unwrap();
        let upload = |key: &str| MultipartUpload {
            key: Some(key.into()),
            upload_id: Some(format!("id-{key}")),
            ..MultipartUpload::default()
        };
        let prefix = |p: &str| CommonPrefix {
            prefix: Some(p.into()),
        };
        let mut out = ListMultipartUploadsOutput {
            uploads: Some(vec![
                upload("team-a/in.bin"),
                upload("team-a-secrets/v.bin"),
                upload("team-a/../team-a-secrets/v.bin"),
            ]),
            common_prefixes: Some(vec![prefix("team-a/sub/"), prefix("team-a/../")]),
            ..ListMultipartUploadsOutput::default()
        };
        keep_in_scope(&mut out, "bkt", &scope);
        let keys: Vec<_> = out
            .uploads
            .unwrap()
            .into_iter()
            .map(|u| u.key.unwrap())
            .collect();
        assert_eq!(keys, ["team-a/in.bin"]);
        let prefixes: Vec<_> = out
            .common_prefixes
            .unwrap()
            .into_iter()
            .map(|p| p.prefix.unwrap())
            .collect();
        assert_eq!(prefixes, ["team-a/sub/"]);
    }

    #[tokio::test]
    async fn url_encoded_listings_are_judged_by_the_decoded_key() {
        use s3s::dto::{EncodingType, MultipartUpload};
        let scope = Scope::parse("s3://bkt/team a/", vec![Action::List]).unwrap();
        let mut out = ListMultipartUploadsOutput {
            encoding_type: Some(EncodingType::from_static(EncodingType::URL)),
            uploads: Some(vec![
                MultipartUpload {
                    key: Some("team%20a/x".into()),
                    ..MultipartUpload::default()
                },
                MultipartUpload {
                    key: Some("team%20a%2F..%2Fb/x".into()),
                    ..MultipartUpload::default()
                },
            ]),
            ..ListMultipartUploadsOutput::default()
        };
        keep_in_scope(&mut out, "bkt", &scope);
        assert_eq!(out.uploads.unwrap().len(), 1);
    }
}
