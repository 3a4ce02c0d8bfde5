//! The trail's files: `trail-000001.jsonl`, `trail-000002.jsonl`, ... in one folder. The
//! number in the name is the order; the writer appends to the highest one and starts the next
//! when it has grown past the rotation size. Names are strict so that a stray or renamed file
//! is reported instead of being read out of order.

use std::path::{Path, PathBuf};

/// One file of the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailFile {
    /// 1, 2, 3, ...: the position of the file in the trail.
    pub number: u64,
    pub path: PathBuf,
}

impl TrailFile {
    #[must_use]
    pub fn new(dir: &Path, number: u64) -> TrailFile {
        TrailFile {
            number,
            path: dir.join(name(number)),
        }
    }

    /// The file name, as shown in messages (`trail-000002.jsonl`).
    #[must_use]
    pub fn name(&self) -> String {
        name(self.number)
    }
}

/// The name of file `number` (six digits, more once past 999999).
#[must_use]
pub fn name(number: u64) -> String {
    format!("trail-{number:06}.jsonl")
}

/// Replaces `dir/name` with `bytes` atomically (a temporary file synced, renamed over it, and
/// the folder synced), so a crash leaves the old content or the new, never half of either:
/// how the retention anchor and the sinks' cursors are written.
pub fn replace(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

/// The number in a trail file's name; `None` for names that are not `trail-<digits>.jsonl`
/// with a number of at least 1.
#[must_use]
pub fn number_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("trail-")?.strip_suffix(".jsonl")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n >= 1)
}

/// The trail files of a folder, in trail order (no folder: none). A file that looks like a
/// trail file (`trail-*.jsonl`) but has no valid number is an error naming it, because
/// reading around it could hide part of the trail.
pub fn list(dir: &Path) -> Result<Vec<TrailFile>, String> {
    let mut files = Vec::new();
    for entry in entries(dir)? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let jsonl = Path::new(name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
        if !(name.starts_with("trail-") && jsonl) {
            continue;
        }
        let number = number_of(name).ok_or_else(|| {
            format!(
                "{}: {name:?} is not a trail file name (trail-NNNNNN.jsonl)",
                dir.display()
            )
        })?;
        files.push(TrailFile {
            number,
            path: entry.path(),
        });
    }
    files.sort_by_key(|f| f.number);
    Ok(files)
}

/// The entries of a folder of the trail (no folder: none), errors naming it.
pub(super) fn entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>, String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_odd_names_are_refused() {
        assert_eq!(name(1), "trail-000001.jsonl");
        assert_eq!(name(1_234_567), "trail-1234567.jsonl");
        assert_eq!(number_of("trail-000002.jsonl"), Some(2));
        assert_eq!(number_of("trail-1234567.jsonl"), Some(1_234_567));
        for odd in [
            "trail-2.jsonl",
            "trail-000000.jsonl",
            "trail-00000x.jsonl",
            "trail-000001.json",
        ] {
            assert_eq!(number_of(odd), None, "{odd}");
        }
    }

    #[test]
    fn files_are_listed_by_number_and_a_stray_trail_name_is_named() {
        let dir = tempfile::tempdir().unwrap();
        for n in [10, 2, 1] {
            std::fs::write(dir.path().join(name(n)), "").unwrap();
        }
        std::fs::write(dir.path().join("pruned.json"), "{}").unwrap();
        let numbers: Vec<u64> = list(dir.path()).unwrap().iter().map(|f| f.number).collect();
        assert_eq!(numbers, [1, 2, 10]);

        std::fs::write(dir.path().join("trail-old.jsonl"), "").unwrap();
        let err = list(dir.path()).unwrap_err();
        assert!(
            err.contains("\"trail-old.jsonl\" is not a trail file name"),
            "{err}"
        );
    }
}
