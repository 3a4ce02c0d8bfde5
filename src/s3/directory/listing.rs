//! Listings (`ListObjects`, `ListObjectsV2`) as S3 answers them, where s3s-fs does not: any
//! delimiter string groups keys (s3s-fs slices inside a multi-byte one), `Marker` pages a v1
//! listing, every listed object has its `ETag`, and `encoding-type=url` encodes the names.

use std::collections::BTreeMap;

use s3s::dto::{
    CommonPrefix, EncodingType, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, Object,
};
use s3s::{S3, S3Request, S3Response, S3Result};

use super::{Directory, delimiter_or_none};

/// Whether a listing asked for `encoding-type=url`.
pub(super) fn url_encoded(encoding: Option<&EncodingType>) -> bool {
    encoding.is_some_and(|e| e.as_str() == EncodingType::URL)
}

/// A name as S3 writes it under `encoding-type=url`: every byte but the unreserved ones and
/// `/` as `%XX` (a space as `%20`, which every client's decoding reads as a space).
pub(super) fn url_encode(name: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(name, KEEP).to_string()
}

/// Every key and common prefix of a listing, encoded.
fn encode_names(objects: &mut Option<Vec<Object>>, prefixes: &mut Option<Vec<CommonPrefix>>) {
    for object in objects.iter_mut().flatten() {
        object.key = object.key.as_deref().map(url_encode);
    }
    for common in prefixes.iter_mut().flatten() {
        common.prefix = common.prefix.as_deref().map(url_encode);
    }
}

/// One page of a listing grouped by a delimiter: what a `ListObjectsV2` answers.
#[derive(Debug, Default, PartialEq)]
struct Page {
    objects: Vec<Object>,
    prefixes: Vec<String>,
    /// The last entry of a truncated page, where the next one resumes.
    next: Option<String>,
}

/// One entry of a grouped listing, in key order.
enum Entry {
    Object(Box<Object>),
    Prefix,
}

/// Groups `objects` (every key under `prefix`) by `delimiter` as S3 does, with the whole
/// delimiter kept at the end of each common prefix, and pages them after `after`. s3s-fs
/// slices the key one byte past the delimiter's start, which panics inside a multi-byte
/// delimiter and cuts a multi-character one short, so the grouping is done here.
fn page(
    objects: Vec<Object>,
    prefix: &str,
    delimiter: &str,
    after: Option<&str>,
    max_keys: usize,
) -> Page {
    let mut entries = BTreeMap::new();
    for object in objects {
        let key = object.key.clone().unwrap_or_default();
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        match rest.find(delimiter) {
            Some(at) => {
                let common = format!("{prefix}{}", &rest[..at + delimiter.len()]);
                entries.entry(common).or_insert(Entry::Prefix);
            }
            None => {
                entries.insert(key, Entry::Object(Box::new(object)));
            }
        }
    }
    let mut rest = entries
        .into_iter()
        .filter(|(key, _)| after.is_none_or(|after| key.as_str() > after))
        .peekable();
    let mut page = Page::default();
    let mut last = None;
    for (key, entry) in rest.by_ref().take(max_keys) {
        match entry {
            Entry::Object(object) => page.objects.push(*object),
            Entry::Prefix => page.prefixes.push(key.clone()),
        }
        last = Some(key);
    }
    if max_keys > 0 && rest.peek().is_some() {
        page.next = last;
    }
    page
}

impl Directory {
    /// Answered by this wrapper's `ListObjectsV2`, as s3s-fs itself does, plus the `Marker`
    /// S3 echoes back.
    pub(super) async fn list_v1(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let marker = req.input.marker.clone();
        let url = url_encoded(req.input.encoding_type.as_ref());
        let mut v2 = self.list_grouped(req.map_input(Into::into)).await?;
        self.fill_etags(&mut v2.output).await?;
        let mut v1 = v2.map_output(|v2| ListObjectsOutput {
            contents: v2.contents,
            common_prefixes: v2.common_prefixes,
            delimiter: v2.delimiter,
            encoding_type: v2.encoding_type,
            name: v2.name,
            prefix: v2.prefix,
            marker,
            max_keys: v2.max_keys,
            is_truncated: v2.is_truncated,
            next_marker: v2.next_continuation_token,
            ..Default::default()
        });
        if url {
            let o = &mut v1.output;
            encode_names(&mut o.contents, &mut o.common_prefixes);
            for name in [
                &mut o.prefix,
                &mut o.delimiter,
                &mut o.marker,
                &mut o.next_marker,
            ] {
                *name = name.as_deref().map(url_encode);
            }
        }
        Ok(v1)
    }

    /// [`Directory::list_grouped`], with names encoded when the client asked for
    /// `encoding-type=url` (s3s-fs says it encoded them and does not).
    pub(super) async fn list_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let url = url_encoded(req.input.encoding_type.as_ref());
        let mut v2 = self.list_grouped(req).await?;
        self.fill_etags(&mut v2.output).await?;
        if url {
            let o = &mut v2.output;
            encode_names(&mut o.contents, &mut o.common_prefixes);
            for name in [&mut o.prefix, &mut o.delimiter, &mut o.start_after] {
                *name = name.as_deref().map(url_encode);
            }
        }
        Ok(v2)
    }

    /// Gives every listed object its `ETag`, as S3 lists them (s3s-fs leaves it out, and
    /// s3cmd sync, for one, compares by it): the one a HEAD of the object answers.
    async fn fill_etags(&self, listing: &mut ListObjectsV2Output) -> S3Result<()> {
        let Some(bucket) = listing.name.clone() else {
            return Ok(());
        };
        for object in listing.contents.iter_mut().flatten() {
            let Some(key) = object.key.clone().filter(|_| object.e_tag.is_none()) else {
                continue;
            };
            // An object deleted since it was listed keeps no ETag, as it keeps no object.
            if let Ok(head) = self.head(&bucket, &key).await {
                object.e_tag = head.e_tag;
            }
        }
        Ok(())
    }

    /// Without a delimiter s3s-fs lists as S3 does. With one, every key under the prefix is
    /// read from s3s-fs unpaged and grouped and paged by [`page`]. Names are as stored.
    async fn list_grouped(
        &self,
        mut req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let Some(delimiter) = delimiter_or_none(req.input.delimiter.take()) else {
            return self.fs.list_objects_v2(req).await;
        };
        let continuation = req.input.continuation_token.take();
        let start_after = req.input.start_after.take();
        let max_keys = req.input.max_keys.replace(i32::MAX).unwrap_or(1000);
        // s3s-fs matches keys against the prefix without its leading slashes.
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let trimmed = prefix.trim_start_matches('/').to_owned();
        let after = match (continuation.as_deref(), start_after.as_deref()) {
            (Some(token), Some(start)) => Some(token.max(start)),
            (Some(after), None) | (None, Some(after)) => Some(after),
            (None, None) => None,
        };
        let mut every = self.fs.list_objects_v2(req).await?;
        let objects = every.output.contents.take().unwrap_or_default();
        let page = page(
            objects,
            &trimmed,
            &delimiter,
            after,
            usize::try_from(max_keys).unwrap_or(0),
        );
        let count = page.objects.len() + page.prefixes.len();
        Ok(every.map_output(|every| ListObjectsV2Output {
            key_count: Some(i32::try_from(count).unwrap_or(i32::MAX)),
            max_keys: Some(max_keys),
            is_truncated: Some(page.next.is_some()),
            contents: (!page.objects.is_empty()).then_some(page.objects),
            common_prefixes: (!page.prefixes.is_empty()).then(|| {
                page.prefixes
                    .into_iter()
                    .map(|prefix| CommonPrefix {
                        prefix: Some(prefix),
                    })
                    .collect()
            }),
            continuation_token: continuation,
            next_continuation_token: page.next,
            delimiter: Some(delimiter),
            start_after,
            ..every
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(keys: &[&str]) -> Vec<Object> {
        keys.iter()
            .map(|k| Object {
                key: Some((*k).to_owned()),
                ..Default::default()
            })
            .collect()
    }

    fn keys(page: &Page) -> Vec<&str> {
        page.objects
            .iter()
            .filter_map(|o| o.key.as_deref())
            .collect()
    }

    const KEYS: &[&str] = &["a/b", "a/c/d", "café→x", "caféy", "p", "x--1", "x--2"];

    #[test]
    fn a_multi_byte_delimiter_ends_each_common_prefix_whole() {
        // `é` is two bytes: s3s-fs sliced between them and panicked.
        let page = page(objects(KEYS), "", "é", None, 1000);
        assert_eq!(keys(&page), ["a/b", "a/c/d", "p", "x--1", "x--2"]);
        assert_eq!(page.prefixes, ["café"]);
        assert_eq!(page.next, None);
        let arrows = super::page(objects(KEYS), "caf", "→", None, 1000);
        assert_eq!(keys(&arrows), ["caféy"]);
        assert_eq!(arrows.prefixes, ["café→"]);
    }

    #[test]
    fn a_multi_character_delimiter_is_kept_whole() {
        let page = page(objects(KEYS), "", "--", None, 1000);
        assert_eq!(page.prefixes, ["x--"]);
    }

    #[test]
    fn pages_resume_after_the_last_entry_and_skip_a_whole_common_prefix() {
        // Page 1 ends on the prefix `a/`; page 2 resumes after it, never inside it.
        let first = page(objects(KEYS), "", "/", None, 1);
        assert_eq!(first.prefixes, ["a/"]);
        assert_eq!(first.next.as_deref(), Some("a/"));
        let second = page(objects(KEYS), "", "/", first.next.as_deref(), 2);
        // In byte order, as S3 sorts: `y` (0x79) before `→` (0xE2 0x86 0x92).
        assert_eq!(keys(&second), ["caféy", "café→x"]);
        assert_eq!(second.next.as_deref(), Some("café→x"));
        let last = page(objects(KEYS), "", "/", Some("x--1"), 2);
        assert_eq!(keys(&last), ["x--2"]);
        assert_eq!(last.next, None);
    }

    #[test]
    fn no_keys_asked_for_is_an_empty_page_that_is_not_truncated() {
        assert_eq!(page(objects(KEYS), "", "/", None, 0), Page::default());
    }

    #[test]
    fn url_encoded_names_keep_their_slashes_and_nothing_else() {
        assert_eq!(
            url_encode("team-a/a b+c%é~.txt"),
            "team-a/a%20b%2Bc%25%C3%A9~.txt"
        );
        assert!(url_encoded(Some(&EncodingType::from_static("url"))));
        assert!(!url_encoded(None));
    }
}
