//! `partNumber` on GET and HEAD, and `x-amz-mp-parts-count`, which s3s-fs ignores: an
//! object made by a multipart upload answers its part count and the bytes of the part
//! asked for, as S3 does (rclone and the AWS CLI ask, to copy with the same parts). s3s-fs
//! keeps no part sizes, so they are read from the part files at `CompleteMultipartUpload`
//! (before s3s-fs joins and removes them) and recorded in the object's internal record,
//! beside the multipart `ETag` (`…-N`) s3s-fs writes there. That record is rewritten by every
//! PUT (no sizes: one part) and copied with the object by a copy.

use std::path::Path;

use s3s::dto::{
    CompleteMultipartUploadInput, GetObjectInput, GetObjectOutput, HeadObjectOutput, Range,
};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::layout;

/// The field of the internal record holding the sizes, in part order.
const PART_SIZES: &str = "sesame_part_sizes";

/// How an object was made, as far as parts go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Made {
    /// By one PUT (or a copy of one): one part, the whole object.
    Whole,
    /// By a multipart upload whose part sizes were recorded.
    Parts(Vec<u64>),
    /// By a multipart upload completed before sizes were recorded: only the count is known.
    Unrecorded(i32),
}

/// The part count of a multipart `ETag` (`<hash>-<count>`), as S3 writes them.
fn count_in_etag(etag: &str) -> Option<i32> {
    let (_, count) = etag.rsplit_once('-')?;
    count.parse().ok().filter(|n| *n > 0)
}

/// What the internal record says of the object's parts.
fn made(record: &serde_json::Map<String, serde_json::Value>) -> Made {
    let etag = record
        .get("e_tag")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let Some(count) = count_in_etag(etag) else {
        return Made::Whole;
    };
    let sizes: Option<Vec<u64>> = record
        .get(PART_SIZES)
        .and_then(|v| v.as_array())
        .and_then(|sizes| sizes.iter().map(serde_json::Value::as_u64).collect());
    match sizes {
        Some(sizes) if usize::try_from(count).is_ok_and(|n| n == sizes.len()) => Made::Parts(sizes),
        _ => Made::Unrecorded(count),
    }
}

/// Where part `number` lies: its first byte and the byte after its last.
fn bounds(sizes: &[u64], number: i32) -> Option<(u64, u64)> {
    let index = usize::try_from(number).ok()?.checked_sub(1)?;
    let start: u64 = sizes.get(..index)?.iter().sum();
    Some((start, start + sizes.get(index)?))
}

async fn read_record(
    root: &Path,
    bucket: &str,
    key: &str,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let bytes = tokio::fs::read(layout::internal_record(root, bucket, key))
        .await
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What the object at `key` is made of (no record: one whole part).
async fn made_of(root: &Path, bucket: &str, key: &str) -> Made {
    read_record(root, bucket, key)
        .await
        .map_or(Made::Whole, |record| made(&record))
}

/// The sizes of the parts a completion lists, in its order, read before s3s-fs joins them;
/// `None` when one is missing (s3s-fs then refuses the completion itself).
pub(super) async fn listed_sizes(
    root: &Path,
    input: &CompleteMultipartUploadInput,
) -> Option<Vec<u64>> {
    let parts = input.multipart_upload.as_ref()?.parts.as_ref()?;
    let mut sizes = Vec::with_capacity(parts.len());
    for part in parts {
        let file = layout::part_file(root, &input.upload_id, part.part_number?);
        sizes.push(tokio::fs::metadata(file).await.ok()?.len());
    }
    Some(sizes)
}

/// Records `sizes` in the internal record of the object just completed, if the record is
/// still that object's (its `ETag` is the completion's: no PUT came in between). A failure
/// costs only `partNumber` on this object, so it is logged, not answered.
pub(super) async fn record(root: &Path, bucket: &str, key: &str, etag: &str, sizes: &[u64]) {
    let Some(mut record) = read_record(root, bucket, key).await else {
        return;
    };
    if record.get("e_tag").and_then(|v| v.as_str()) != Some(etag) {
        return;
    }
    record.insert(PART_SIZES.to_owned(), serde_json::json!(sizes));
    let written = async {
        let temporary = layout::temporary(root);
        tokio::fs::write(&temporary, serde_json::to_vec(&record)?).await?;
        tokio::fs::rename(&temporary, layout::internal_record(root, bucket, key)).await
    };
    if let Err(e) = written.await {
        tracing::warn!(bucket, key, error = %e, "the part sizes of a completed upload could not be recorded; partNumber will not be served for it");
    }
}

fn no_such_part(number: i32, count: usize) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidPart,
        format!("the object has {count} part(s); there is no part {number}"),
    )
}

fn unrecorded(count: i32) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NotImplemented,
        format!(
            "the object has {count} parts, whose sizes were not recorded (it was completed before the directory backend kept them): read it whole or by range"
        ),
    )
}

/// What a request for one part is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The whole object, and no count: part 1 of an object made in one piece, as S3 does.
    Whole,
    /// Bytes `start..end` of the object, and the object's part count.
    Part { start: u64, end: u64, count: i32 },
}

/// How part `number` of the object at `key` is answered, or why it cannot be.
async fn answer(root: &Path, bucket: &str, key: &str, number: i32) -> S3Result<Answer> {
    match made_of(root, bucket, key).await {
        Made::Whole if number == 1 => Ok(Answer::Whole),
        Made::Whole => Err(no_such_part(number, 1)),
        Made::Unrecorded(count) => Err(unrecorded(count)),
        Made::Parts(sizes) => {
            let (start, end) =
                bounds(&sizes, number).ok_or_else(|| no_such_part(number, sizes.len()))?;
            let count = i32::try_from(sizes.len()).unwrap_or(i32::MAX);
            Ok(Answer::Part { start, end, count })
        }
    }
}

/// GET of part `number`: the part's bytes as a range of the object, with the part count.
pub(super) async fn get_part(
    fs: &s3s_fs::FileSystem,
    root: &Path,
    mut req: S3Request<GetObjectInput>,
    number: i32,
) -> S3Result<S3Response<GetObjectOutput>> {
    if req.input.range.is_some() {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "a part number and a range cannot both be asked for",
        ));
    }
    let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
    let (start, end, count) = match answer(root, &bucket, &key, number).await? {
        Answer::Whole => return fs.get_object(req).await,
        Answer::Part { start, end, count } => (start, end, count),
    };
    req.input.range = Some(Range::Int {
        first: start,
        last: Some(end.saturating_sub(1)),
    });
    let mut got = fs.get_object(req).await?;
    got.output.parts_count = Some(count);
    Ok(got)
}

/// HEAD of part `number`: the part's length and range, with the part count, in place of
/// the whole object's (and none of its checksums, which are not the part's).
pub(super) async fn head_part(
    root: &Path,
    bucket: &str,
    key: &str,
    number: i32,
    head: &mut HeadObjectOutput,
) -> S3Result<()> {
    let (start, end, count) = match answer(root, bucket, key, number).await? {
        Answer::Whole => return Ok(()),
        Answer::Part { start, end, count } => (start, end, count),
    };
    let total = head.content_length.unwrap_or_default();
    head.content_length = i64::try_from(end - start).ok();
    head.content_range = Some(format!("bytes {start}-{}/{total}", end.saturating_sub(1)));
    head.parts_count = Some(count);
    head.checksum_crc32 = None;
    head.checksum_crc32c = None;
    head.checksum_crc64nvme = None;
    head.checksum_sha1 = None;
    head.checksum_sha256 = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(etag: &str, sizes: Option<&[u64]>) -> serde_json::Map<String, serde_json::Value> {
        let mut record = serde_json::Map::new();
        record.insert("e_tag".into(), etag.into());
        if let Some(sizes) = sizes {
            record.insert(PART_SIZES.into(), serde_json::json!(sizes));
        }
        record
    }

    #[test]
    fn the_record_tells_how_an_object_was_made() {
        assert_eq!(
            made(&record("9e107d9d372bb6826bd81d3542a419d6", None)),
            Made::Whole
        );
        let sizes: &[u64] = &[5, 5, 1];
        assert_eq!(
            made(&record("abc-3", Some(sizes))),
            Made::Parts(sizes.to_vec())
        );
        // Completed before sizes were kept, or with sizes that do not match the count.
        assert_eq!(made(&record("abc-3", None)), Made::Unrecorded(3));
        assert_eq!(made(&record("abc-2", Some(sizes))), Made::Unrecorded(2));
        assert_eq!(made(&serde_json::Map::new()), Made::Whole);
    }

    #[test]
    fn each_part_starts_where_the_one_before_ends() {
        let sizes = [5, 5, 1];
        assert_eq!(bounds(&sizes, 1), Some((0, 5)));
        assert_eq!(bounds(&sizes, 2), Some((5, 10)));
        assert_eq!(bounds(&sizes, 3), Some((10, 11)));
        assert_eq!(bounds(&sizes, 4), None);
        assert_eq!(bounds(&sizes, 0), None);
        assert_eq!(bounds(&sizes, -1), None);
    }
}
