//! `ListMultipartUploads`, which s3s-fs does not implement: its uploads in progress are read
//! back from the files it keeps for them under the root (see `layout`), then grouped by a
//! delimiter and paged by key and upload-id markers as S3 pages them.

use std::path::Path;

use s3s::dto::{
    CommonPrefix, ListMultipartUploadsInput, ListMultipartUploadsOutput, MultipartUpload, Timestamp,
};
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::layout;
use super::listing::{url_encode, url_encoded};

/// One upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Upload {
    pub key: String,
    pub id: String,
    pub initiated: Timestamp,
}

/// Every upload in progress in `bucket`: an upload s3s-fs started (its metadata file names
/// bucket, key and id) that it has neither completed nor aborted (its marker file is there).
async fn in_progress(root: &Path, bucket: &str) -> std::io::Result<Vec<Upload>> {
    let mut uploads = Vec::new();
    let mut entries = tokio::fs::read_dir(root).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name();
        let Some((of, key, upload_id)) = name.to_str().and_then(layout::upload_metadata) else {
            continue;
        };
        if of != bucket {
            continue;
        }
        // Completed or aborted since the metadata was written: no longer in progress.
        let Ok(marker) = tokio::fs::metadata(layout::upload_marker(root, &upload_id)).await else {
            continue;
        };
        let initiated = Timestamp::from(marker.modified()?);
        uploads.push(Upload {
            key,
            id: upload_id,
            initiated,
        });
    }
    Ok(uploads)
}

/// Where the previous page ended.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Markers<'a> {
    pub key: Option<&'a str>,
    pub upload_id: Option<&'a str>,
}

/// One page of uploads.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Page {
    pub uploads: Vec<Upload>,
    pub prefixes: Vec<String>,
    /// The key marker and upload-id marker the next page resumes after, when truncated.
    pub next: Option<(String, Option<String>)>,
}

/// One entry of a page: an upload, or a common prefix standing for all those under it.
enum Entry {
    Upload(Upload),
    Prefix(String),
}

impl Entry {
    fn key(&self) -> &str {
        match self {
            Entry::Upload(upload) => &upload.key,
            Entry::Prefix(prefix) => prefix,
        }
    }
}

/// S3's order and paging: by key, the uploads of one key by the time they started; after a
/// key marker alone, the keys past it; with an upload-id marker, also the uploads of that key
/// that come after the one named. A common prefix counts as one entry.
pub(super) fn page(
    mut uploads: Vec<Upload>,
    prefix: &str,
    delimiter: Option<&str>,
    after: Markers<'_>,
    max_uploads: usize,
) -> Page {
    uploads.retain(|u| u.key.starts_with(prefix));
    uploads.sort_by(|a, b| (&a.key, &a.initiated, &a.id).cmp(&(&b.key, &b.initiated, &b.id)));
    let resume = after.key.and_then(|key| {
        let id = after.upload_id?;
        let position = uploads.iter().position(|u| u.key == key && u.id == id);
        Some(position.map_or(uploads.len(), |p| p + 1))
    });
    let mut entries: Vec<Entry> = Vec::new();
    for (i, upload) in uploads.into_iter().enumerate() {
        let past = match (after.key, resume) {
            (Some(key), Some(resume)) => {
                upload.key.as_str() > key || (upload.key == key && i >= resume)
            }
            (Some(key), None) => upload.key.as_str() > key,
            (None, _) => true,
        };
        if !past {
            continue;
        }
        let rest = &upload.key[prefix.len()..];
        match delimiter.and_then(|d| rest.find(d).map(|at| at + d.len())) {
            Some(end) => {
                let common = format!("{prefix}{}", &rest[..end]);
                let seen = entries.last().is_some_and(|e| e.key() == common);
                if !seen && after.key.is_none_or(|key| common.as_str() > key) {
                    entries.push(Entry::Prefix(common));
                }
            }
            None => entries.push(Entry::Upload(upload)),
        }
    }
    let truncated = max_uploads > 0 && entries.len() > max_uploads;
    let mut page = Page::default();
    for entry in entries.into_iter().take(max_uploads) {
        page.next = Some(match &entry {
            Entry::Upload(u) => (u.key.clone(), Some(u.id.clone())),
            Entry::Prefix(p) => (p.clone(), None),
        });
        match entry {
            Entry::Upload(upload) => page.uploads.push(upload),
            Entry::Prefix(prefix) => page.prefixes.push(prefix),
        }
    }
    if !truncated {
        page.next = None;
    }
    page
}

/// The answer to `ListMultipartUploads` on `bucket`, which must exist.
pub(super) async fn list(
    root: &Path,
    input: ListMultipartUploadsInput,
) -> S3Result<ListMultipartUploadsOutput> {
    let bucket = input.bucket;
    let exists = layout::plain_path(root, &bucket, "");
    let exists = match exists {
        Some(path) => tokio::fs::metadata(path).await.is_ok_and(|m| m.is_dir()),
        None => false,
    };
    if !exists {
        return Err(S3Error::with_message(
            S3ErrorCode::NoSuchBucket,
            format!("no bucket {bucket:?}"),
        ));
    }
    let uploads = in_progress(root, &bucket).await.map_err(|e| {
        S3Error::with_message(
            S3ErrorCode::InternalError,
            format!("the uploads in progress could not be read: {e}"),
        )
    })?;
    let prefix = input.prefix.unwrap_or_default();
    let delimiter = super::delimiter_or_none(input.delimiter);
    let max_uploads = input.max_uploads.unwrap_or(1000).clamp(0, 1000);
    let markers = Markers {
        key: input.key_marker.as_deref(),
        upload_id: input.upload_id_marker.as_deref(),
    };
    let page = page(
        uploads,
        &prefix,
        delimiter.as_deref(),
        markers,
        usize::try_from(max_uploads).unwrap_or(0),
    );
    let url = url_encoded(input.encoding_type.as_ref());
    let name = |s: String| if url { url_encode(&s) } else { s };
    let (next_key, next_id) = page.next.clone().unzip();
    Ok(ListMultipartUploadsOutput {
        bucket: Some(bucket),
        is_truncated: Some(page.next.is_some()),
        max_uploads: Some(max_uploads),
        next_key_marker: next_key.map(name),
        next_upload_id_marker: next_id.flatten(),
        uploads: Some(
            page.uploads
                .into_iter()
                .map(|u| MultipartUpload {
                    key: Some(name(u.key)),
                    upload_id: Some(u.id),
                    initiated: Some(u.initiated),
                    ..MultipartUpload::default()
                })
                .collect(),
        ),
        common_prefixes: (!page.prefixes.is_empty()).then(|| {
            page.prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: Some(name(p)),
                })
                .collect()
        }),
        key_marker: input.key_marker.map(name),
        upload_id_marker: input.upload_id_marker,
        prefix: Some(name(prefix)),
        delimiter: delimiter.map(name),
        encoding_type: input.encoding_type,
        request_charged: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(key: &str, id: &str, started: i64) -> Upload {
        let t = time::OffsetDateTime::from_unix_timestamp(started).unwrap();
        Upload {
            key: key.to_owned(),
            id: id.to_owned(),
            initiated: Timestamp::from(t),
        }
    }

    /// Two uploads of `logs/a` (the later one with the smaller id), one under `logs/b/`,
    /// one elsewhere.
    fn uploads() -> Vec<Upload> {
        vec![
            upload("other/d", "4", 1),
            upload("logs/a", "z", 1),
            upload("logs/b/c", "3", 1),
            upload("logs/a", "a", 2),
        ]
    }

    fn named(page: &Page) -> Vec<(&str, &str)> {
        let named = page.uploads.iter().map(|u| (u.key.as_str(), u.id.as_str()));
        named.collect()
    }

    #[test]
    fn uploads_of_one_key_are_in_the_order_they_started() {
        let all = page(uploads(), "logs/", None, Markers::default(), 1000);
        assert_eq!(
            named(&all),
            [("logs/a", "z"), ("logs/a", "a"), ("logs/b/c", "3")]
        );
        assert_eq!(all.next, None);
    }

    #[test]
    fn pages_resume_after_both_markers() {
        // Page 1 ends inside the uploads of `logs/a`: both markers name where.
        let first = page(uploads(), "logs/", None, Markers::default(), 1);
        assert_eq!(named(&first), [("logs/a", "z")]);
        assert_eq!(first.next, Some(("logs/a".into(), Some("z".into()))));
        let after = Markers {
            key: Some("logs/a"),
            upload_id: Some("z"),
        };
        let second = page(uploads(), "logs/", None, after, 1);
        assert_eq!(named(&second), [("logs/a", "a")]);
        let after = Markers {
            key: Some("logs/a"),
            upload_id: Some("a"),
        };
        let last = page(uploads(), "logs/", None, after, 1);
        assert_eq!(named(&last), [("logs/b/c", "3")]);
        assert_eq!(last.next, None);
        // A key marker alone skips every upload of that key.
        let after = Markers {
            key: Some("logs/a"),
            upload_id: None,
        };
        assert_eq!(
            named(&page(uploads(), "", None, after, 1000)),
            [("logs/b/c", "3"), ("other/d", "4")]
        );
    }

    #[test]
    fn a_delimiter_groups_uploads_into_common_prefixes() {
        let grouped = page(uploads(), "logs/", Some("/"), Markers::default(), 1000);
        assert_eq!(named(&grouped), [("logs/a", "z"), ("logs/a", "a")]);
        assert_eq!(grouped.prefixes, ["logs/b/"]);
        // A page ending on a common prefix resumes past every upload under it.
        let first = page(uploads(), "", Some("/"), Markers::default(), 1);
        assert_eq!(first.prefixes, ["logs/"]);
        assert_eq!(first.next, Some(("logs/".into(), None)));
        let after = Markers {
            key: Some("logs/"),
            upload_id: None,
        };
        let second = page(uploads(), "", Some("/"), after, 1000);
        assert_eq!(second.prefixes, ["other/"]);
    }

    #[test]
    fn no_uploads_asked_for_is_an_empty_page_that_is_not_truncated() {
        assert_eq!(
            page(uploads(), "", None, Markers::default(), 0),
            Page::default()
        );
    }
}
