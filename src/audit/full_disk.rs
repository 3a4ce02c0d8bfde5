//! The trail on a filesystem that fills up and frees again (a small tmpfs mounted by the test,
//! which needs root, as CI and the test command have): a failed batch leaves no fragment, its
//! sequence numbers go to the next batch, and the trail verifies once space is back.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::tests::writer;
use super::verify::{records, verify_dir};

/// A tmpfs of `size` mounted for the length of a test, unmounted when dropped.
pub(crate) struct SmallDisk {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    pub(crate) fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a {size} tmpfs at {} failed: this test needs root (CI and scripts/test run as root)",
            path.display()
        );
        SmallDisk { path, _dir: dir }
    }

    /// Writes a filler file until the disk is full; deleting it frees the space again.
    pub(crate) fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = [0u8; 4096];
        while file.write(&chunk).is_ok_and(|n| n > 0) {}
        // The last page of the filler may take a few bytes more.
        while file.write(&[0u8]).is_ok_and(|n| n > 0) {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn bodies(n: usize, pad: usize) -> Vec<String> {
    (0..n)
        .map(|i| crate::record::note(format!("record {i} {}", "x".repeat(pad))).canonical())
        .collect()
}

fn seqs(dir: &Path) -> Vec<u64> {
    records(dir).unwrap().iter().map(|r| r.seq).collect()
}

#[test]
fn a_full_disk_leaves_no_fragment_and_the_trail_resumes_when_space_returns() {
    let disk = SmallDisk::mount("256k");
    let dir = disk.path.join("audit");
    let mut w = writer(&dir, u64::MAX);
    assert_eq!(w.commit(bodies(3, 10)).unwrap(), vec![1, 2, 3]);
    let durable = std::fs::metadata(&w.current.path).unwrap().len();

    let filler = disk.fill();
    // A batch far larger than what is left: part of it may reach the file before ENOSPC.
    let err = w.commit(bodies(50, 2000)).unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert!(
        !err.to_string().contains(&disk.path.display().to_string()),
        "the error names the data directory: {err}"
    );
    assert_eq!(
        std::fs::metadata(&w.current.path).unwrap().len(),
        durable,
        "the failed batch left a fragment in the trail"
    );
    verify_dir(&dir).unwrap();

    // Space comes back: the next batch takes the numbers the failed one never got.
    std::fs::remove_file(filler).unwrap();
    assert_eq!(w.commit(bodies(2, 10)).unwrap(), vec![4, 5]);
    verify_dir(&dir).unwrap();
    assert_eq!(seqs(&dir), vec![1, 2, 3, 4, 5]);
}
