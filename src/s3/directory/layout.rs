//! Where s3s-fs 0.14 keeps what it knows beside the objects: file names directly under the
//! root, read (and, for an object's internal record, extended) here because s3s-fs does not
//! expose them. Only this file knows those names; a new s3s-fs version is checked here.

use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `name` as s3s-fs encodes a bucket or a key in its sidecar file names.
fn encoded(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(name)
}

/// The JSON record s3s-fs keeps of an object (its `ETag`, its checksums).
pub(super) fn internal_record(root: &Path, bucket: &str, key: &str) -> PathBuf {
    let name = format!(
        ".bucket-{}.object-{}.internal.json",
        encoded(bucket),
        encoded(key)
    );
    root.join(name)
}

/// The file s3s-fs keeps while an upload is in progress (deleted at completion or abort).
pub(super) fn upload_marker(root: &Path, upload_id: &str) -> PathBuf {
    root.join(format!(".upload-{upload_id}.json"))
}

/// The file holding one uploaded part.
pub(super) fn part_file(root: &Path, upload_id: &str, part_number: i32) -> PathBuf {
    root.join(format!(".upload_id-{upload_id}.part-{part_number}"))
}

/// The bucket, key and upload id named by the metadata file s3s-fs writes when an upload
/// starts (`.bucket-B.object-K.upload-ID.metadata.json`, B and K in URL-safe base64, whose
/// alphabet has no `.`), or `None` for any other file.
pub(super) fn upload_metadata(file_name: &str) -> Option<(String, String, String)> {
    let rest = file_name.strip_prefix(".bucket-")?;
    let rest = rest.strip_suffix(".metadata.json")?;
    let (bucket, rest) = rest.split_once(".object-")?;
    let (key, upload_id) = rest.split_once(".upload-")?;
    let decode = |s: &str| String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok();
    Some((decode(bucket)?, decode(key)?, upload_id.to_owned()))
}

/// A name for a file written here, beside the root's other files: s3s-fs removes names of
/// this shape left by a crash when it starts.
pub(super) fn temporary(root: &Path) -> PathBuf {
    root.join(format!(".tmp.sesame-{}.internal.part", random_suffix()))
}

fn random_suffix() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The path of `key` in `bucket` as s3s-fs resolves it, when every segment is a plain name
/// (no `..`, no root, nothing empty); other keys are left to s3s-fs.
pub(super) fn plain_path(root: &Path, bucket: &str, key: &str) -> Option<PathBuf> {
    let path = Path::new(bucket).join(key);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !bucket.is_empty() && !bucket.contains('/')).then(|| root.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_read_back_from_the_name_s3s_fs_gives_its_metadata() {
        let name = format!(
            ".bucket-{}.object-{}.upload-0b9e.metadata.json",
            encoded("b"),
            encoded("logs/a é.bin")
        );
        let named = upload_metadata(&name);
        assert_eq!(
            named,
            Some(("b".into(), "logs/a é.bin".into(), "0b9e".into()))
        );
        // An object's own metadata, and other files, name no upload.
        let object = format!(
            ".bucket-{}.object-{}.metadata.json",
            encoded("b"),
            encoded("k")
        );
        assert_eq!(upload_metadata(&object), None);
        assert_eq!(upload_metadata(".upload-0b9e.json"), None);
    }

    #[test]
    fn only_plain_keys_resolve_here() {
        let root = Path::new("/r");
        assert_eq!(
            plain_path(root, "b", "a/c"),
            Some(PathBuf::from("/r/b/a/c"))
        );
        assert_eq!(plain_path(root, "b", "../x"), None);
        assert_eq!(plain_path(root, "b", "/etc"), None);
        assert_eq!(plain_path(root, "", "k"), None);
    }
}
