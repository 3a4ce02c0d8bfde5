//! Offline verification of a trail folder: every line, in order, against the chain.

use std::io::BufRead as _;
use std::path::Path;

use super::chain::{Break, Record, Tip, check_line};

#[derive(Debug)]
pub enum VerifyError {
    Broken(Break),
    Io(String),
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub records: u64,
    pub tip: Tip,
}

/// The trail files of a folder, oldest first.
pub fn trail_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, VerifyError> {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                name.starts_with("trail-")
                    && p.extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(VerifyError::Io(format!("{}: {e}", dir.display()))),
    };
    files.sort();
    Ok(files)
}

/// Checks every record of every trail file, and every signed checkpoint against the
/// published public key (`audit-signing.pub` beside the folder, when present); stops at the
/// first break.
pub fn verify_dir(dir: &Path) -> Result<Summary, VerifyError> {
    let public_key = std::fs::read_to_string(
        dir.with_file_name(super::SIGNING_KEY_FILE)
            .with_extension("pub"),
    )
    .ok()
    .map(|k| k.trim().to_owned());
    let mut tip = Tip::default();
    for_each_record(dir, |line, text| {
        let (next, record) = check_line(&tip, line, text).map_err(VerifyError::Broken)?;
        if record.body.get("kind").and_then(serde_json::Value::as_str) == Some("checkpoint") {
            super::checkpoint::check(&record.body, tip.seq, &tip.hash, public_key.as_deref())
                .map_err(|reason| {
                    VerifyError::Broken(Break {
                        line,
                        seq: Some(record.seq),
                        reason: format!("record {}: {reason}", record.seq),
                    })
                })?;
        }
        tip = next;
        Ok(())
    })?;
    Ok(Summary {
        records: tip.seq,
        tip,
    })
}

/// Calls `f` with each line (1-based across files) of the trail.
pub fn for_each_record(
    dir: &Path,
    mut f: impl FnMut(usize, &str) -> Result<(), VerifyError>,
) -> Result<(), VerifyError> {
    let mut line_no = 0;
    for path in trail_files(dir)? {
        let file = std::fs::File::open(&path)
            .map_err(|e| VerifyError::Io(format!("{}: {e}", path.display())))?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| VerifyError::Io(format!("{}: {e}", path.display())))?;
            line_no += 1;
            f(line_no, &line)?;
        }
    }
    Ok(())
}

/// All records, parsed (after verification, for queries).
pub fn records(dir: &Path) -> Result<Vec<Record>, VerifyError> {
    let mut out = Vec::new();
    for_each_record(dir, |line, text| {
        let record: Record = serde_json::from_str(text).map_err(|e| {
            VerifyError::Broken(Break {
                line,
                seq: None,
                reason: format!("is not a trail record: {e}"),
            })
        })?;
        out.push(record);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appended_records_verify_and_a_reopened_trail_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = super::super::AuditLog::open(dir.path()).unwrap();
            let appends: Vec<_> = (0..20)
                .map(|i| log.append(serde_json::json!({"kind": "test", "i": i})))
                .collect();
            let seqs: Vec<u64> = futures::future::join_all(appends)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            let mut sorted = seqs.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (1..=20).collect::<Vec<_>>());
        }
        let log = super::super::AuditLog::open(dir.path()).unwrap();
        assert_eq!(
            log.append(serde_json::json!({"kind": "test"}))
                .await
                .unwrap(),
            21
        );
        assert_eq!(verify_dir(dir.path()).unwrap().records, 21);
    }

    #[tokio::test]
    async fn a_chain_rewritten_without_the_key_fails_at_the_next_checkpoint() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("audit");
        {
            let log = super::super::AuditLog::open(&dir).unwrap();
            for i in 0..150 {
                log.append(serde_json::json!({"kind": "test", "i": i}))
                    .await
                    .unwrap();
            }
        }
        // 150 records and one checkpoint after record 100.
        let summary = verify_dir(&dir).unwrap();
        assert_eq!(summary.records, 151);
        let trail = dir.join(super::super::TRAIL_FILE);
        let lines: Vec<String> = std::fs::read_to_string(&trail)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert!(lines[100].contains("\"checkpoint\""), "{}", lines[100]);

        // Edit record 50 and recompute every hash after it, as someone without the key would.
        let mut tip = Tip::default();
        let mut forged = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let mut record: Record = serde_json::from_str(line).unwrap();
            if i == 49 {
                record.body["i"] = 4242.into();
            }
            let rebuilt = super::super::chain::next(record.seq, &tip.hash, record.body);
            tip = Tip {
                seq: rebuilt.seq,
                hash: rebuilt.hash.clone(),
            };
            forged.push(serde_json::to_string(&rebuilt).unwrap());
        }
        std::fs::write(&trail, forged.join("\n") + "\n").unwrap();
        let Err(VerifyError::Broken(b)) = verify_dir(&dir) else {
            panic!("forgery verified")
        };
        assert_eq!(b.line, 101);
        assert!(
            b.reason.contains("does not cover the record before it"),
            "{}",
            b.reason
        );
    }

    #[test]
    fn a_tampered_trail_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut tip = Tip::default();
        let mut text = String::new();
        for seq in 1..=3 {
            let r = super::super::chain::next(
                seq,
                &tip.hash,
                serde_json::json!({"kind": "test", "seq": seq}),
            );
            tip = Tip {
                seq,
                hash: r.hash.clone(),
            };
            text.push_str(&serde_json::to_string(&r).unwrap());
            text.push('\n');
        }
        std::fs::write(
            dir.path().join(super::super::TRAIL_FILE),
            text.replace("\"seq\":2}", "\"seq\":9}"),
        )
        .unwrap();
        let Err(err) = super::super::AuditLog::open(dir.path()) else {
            panic!("opened a broken trail")
        };
        assert!(err.to_string().contains("broken at line 2"), "{err}");
    }
}
