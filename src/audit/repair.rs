//! The one repair the gateway makes by itself: a last line cut short by a crash. The writer
//! answers its callers only after a batch is written and fsynced, so a line without its
//! newline at the very end of the newest file belongs to a batch nobody was told about. It
//! is moved aside (never deleted: `torn-<file>-<offset>.jsonl`), and the chain records that
//! it happened; anything else wrong with the trail still stops the gateway.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;

use super::files;

/// What was moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    pub file: String,
    /// Where the torn line started in its file.
    pub offset: u64,
    pub bytes: u64,
    /// Where its bytes were kept.
    pub kept_in: String,
}

/// Cuts a torn last line off the newest trail file, keeping its bytes beside it.
pub fn torn_tail(dir: &Path) -> Result<Option<Torn>, String> {
    let Some(newest) = files::list(dir)?.pop() else {
        return Ok(None);
    };
    let shown = |e: std::io::Error| format!("{}: {e}", newest.path.display());
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&newest.path)
        .map_err(shown)?;
    let len = file.metadata().map_err(shown)?.len();
    if len == 0 {
        return Ok(None);
    }
    // Lines are short (a record is a few hundred bytes); read back from the end until the
    // last newline is found.
    let mut start = len;
    let mut tail = Vec::new();
    loop {
        let from = start.saturating_sub(64 * 1024);
        let mut chunk = vec![0; usize::try_from(start - from).unwrap_or(0)];
        file.seek(SeekFrom::Start(from)).map_err(shown)?;
        file.read_exact(&mut chunk).map_err(shown)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        start = from;
        if tail.last() == Some(&b'\n') && tail.len() == usize::try_from(len - start).unwrap_or(0) {
            return Ok(None);
        }
        if let Some(i) = tail.iter().rposition(|b| *b == b'\n') {
            let cut = start + i as u64 + 1;
            return keep_and_cut(dir, &newest, &mut file, cut, &tail[i + 1..]).map(Some);
        }
        if start == 0 {
            return keep_and_cut(dir, &newest, &mut file, 0, &tail).map(Some);
        }
    }
}

fn keep_and_cut(
    dir: &Path,
    newest: &files::TrailFile,
    file: &mut std::fs::File,
    cut: u64,
    torn: &[u8],
) -> Result<Torn, String> {
    let name = newest.name();
    let kept_in = format!("torn-{}-{cut}.jsonl", name.trim_end_matches(".jsonl"));
    let kept = dir.join(&kept_in);
    let shown = |path: &Path, e: std::io::Error| format!("{}: {e}", path.display());
    let mut side = std::fs::File::create(&kept).map_err(|e| shown(&kept, e))?;
    side.write_all(torn).map_err(|e| shown(&kept, e))?;
    side.sync_all().map_err(|e| shown(&kept, e))?;
    file.set_len(cut).map_err(|e| shown(&newest.path, e))?;
    file.sync_all().map_err(|e| shown(&newest.path, e))?;
    tracing::warn!(file = %name, offset = cut, bytes = torn.len(), kept_in = %kept_in, "the trail's last line was cut short by a crash; moved aside");
    Ok(Torn {
        file: name,
        offset: cut,
        bytes: torn.len() as u64,
        kept_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_moved_aside_and_whole_lines_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let trail = dir.path().join(files::name(1));
        std::fs::write(&trail, b"{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3,\"bo").unwrap();
        let torn = torn_tail(dir.path()).unwrap().unwrap();
        assert_eq!((torn.offset, torn.bytes), (20, 12));
        assert_eq!(
            std::fs::read(&trail).unwrap(),
            b"{\"seq\":1}\n{\"seq\":2}\n"
        );
        assert_eq!(
            std::fs::read(dir.path().join(&torn.kept_in)).unwrap(),
            b"{\"seq\":3,\"bo"
        );
        // Whole lines are left alone.
        assert_eq!(torn_tail(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_file_with_only_a_torn_line_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let trail = dir.path().join(files::name(1));
        std::fs::write(&trail, b"{\"seq\":1,").unwrap();
        let torn = torn_tail(dir.path()).unwrap().unwrap();
        assert_eq!((torn.offset, torn.bytes), (0, 9));
        assert!(std::fs::read(&trail).unwrap().is_empty());
        assert_eq!(torn_tail(dir.path()).unwrap(), None);
    }
}
