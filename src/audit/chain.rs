//! The hash chain: every record carries the hash of the one before it and its own hash over
//! its content, so an edit, a deletion, an insertion or a reordering breaks the chain at the
//! first record it touches. Pure functions, shared by the writer and `sesame audit verify`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Hash of the record before the first one.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1, 2, 3, ... across all files.
    pub seq: u64,
    /// Hash of the previous record (or [`GENESIS`]).
    pub prev: String,
    /// What happened; free-form JSON whose shape depends on `body.kind`.
    pub body: serde_json::Value,
    /// SHA-256 over `seq`, `prev` and `body` (see [`hash_of`]).
    pub hash: String,
}

/// SHA-256 over `seq`, `prev` and the body as canonical JSON (keys sorted at every level),
/// one per line; so the key order in the file does not matter.
#[must_use]
pub fn hash_of(seq: u64, prev: &str, body: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(seq.to_string().as_bytes());
    h.update(b"\n");
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(canonical(body).as_bytes());
    hex::encode(h.finalize())
}

/// JSON with object keys sorted at every level.
#[must_use]
pub fn canonical(value: &serde_json::Value) -> String {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let sorted: std::collections::BTreeMap<&String, serde_json::Value> =
                    map.iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::to_value(sorted).expect("maps of values serialise")
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sort).collect())
            }
            other => other.clone(),
        }
    }
    serde_json::to_string(&sort(value)).expect("values serialise")
}

/// Builds the record that follows `prev` (`seq` is the previous one's plus one).
#[must_use]
pub fn next(seq: u64, prev: &str, body: serde_json::Value) -> Record {
    let hash = hash_of(seq, prev, &body);
    Record {
        seq,
        prev: prev.to_owned(),
        body,
        hash,
    }
}

/// The first place a sequence of lines stops being an intact chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The trail file (or `pruned.json`) where it happened.
    pub file: String,
    /// 1-based line number within that file.
    pub line: usize,
    pub seq: Option<u64>,
    pub reason: String,
}

/// Where the chain stands after verified records: the next seq and the hash to link to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    pub seq: u64,
    pub hash: String,
}

impl Default for Tip {
    fn default() -> Self {
        Tip {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}: {}", self.file, self.line, self.reason)
    }
}

/// Checks line `line_no` of `file` against the tip; on success returns the new tip.
pub fn check_line(
    tip: &Tip,
    file: &str,
    line_no: usize,
    line: &str,
) -> Result<(Tip, Record), Break> {
    let fail = |seq: Option<u64>, reason: String| Break {
        file: file.to_owned(),
        line: line_no,
        seq,
        reason,
    };
    let record: Record = serde_json::from_str(line)
        .map_err(|e| fail(None, format!("is not a trail record: {e}")))?;
    let seq = Some(record.seq);
    if hash_of(record.seq, &record.prev, &record.body) != record.hash {
        return Err(fail(
            seq,
            format!(
                "record {} was edited: its content does not match its hash",
                record.seq
            ),
        ));
    }
    if record.seq != tip.seq + 1 {
        let reason = if record.seq > tip.seq + 1 {
            format!(
                "record {} follows record {}: records {}..{} were deleted",
                record.seq,
                tip.seq,
                tip.seq + 1,
                record.seq - 1
            )
        } else {
            format!(
                "record {} follows record {}: records were inserted or reordered",
                record.seq, tip.seq
            )
        };
        return Err(fail(seq, reason));
    }
    if record.prev != tip.hash {
        return Err(fail(
            seq,
            format!(
                "record {} does not link to record {}: the chain was rewritten",
                record.seq, tip.seq
            ),
        ));
    }
    Ok((
        Tip {
            seq: record.seq,
            hash: record.hash.clone(),
        },
        record,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(n: u64) -> Vec<String> {
        let mut tip = Tip::default();
        (1..=n)
            .map(|seq| {
                let r = next(
                    seq,
                    &tip.hash,
                    serde_json::json!({"kind": "s3", "op": "GetObject", "n": seq}),
                );
                tip = Tip {
                    seq,
                    hash: r.hash.clone(),
                };
                serde_json::to_string(&r).unwrap()
            })
            .collect()
    }

    fn verify(lines: &[String]) -> Result<Tip, Break> {
        let mut tip = Tip::default();
        for (i, line) in lines.iter().enumerate() {
            tip = check_line(&tip, "t", i + 1, line)?.0;
        }
        Ok(tip)
    }

    #[test]
    fn an_intact_trail_verifies() {
        assert_eq!(verify(&trail(5)).unwrap().seq, 5);
    }

    #[test]
    fn every_kind_of_tampering_names_the_first_record_it_touches() {
        // edited: a field changed, hash left alone
        let mut lines = trail(5);
        lines[2] = lines[2].replace("GetObject", "HeadObject");
        let b = verify(&lines).unwrap_err();
        assert_eq!((b.line, b.seq), (3, Some(3)));
        assert!(b.reason.contains("record 3 was edited"), "{}", b.reason);

        // deleted
        let mut lines = trail(5);
        lines.remove(2);
        assert!(
            verify(&lines)
                .unwrap_err()
                .reason
                .contains("records 3..3 were deleted")
        );

        // inserted: a forged record with a valid hash of its own
        let mut lines = trail(5);
        let forged = next(
            3,
            "f".repeat(64).as_str(),
            serde_json::json!({"kind": "s3"}),
        );
        lines.insert(2, serde_json::to_string(&forged).unwrap());
        let b = verify(&lines).unwrap_err();
        assert!(
            b.reason.contains("does not link to record 2"),
            "{}",
            b.reason
        );

        // reordered
        let mut lines = trail(5);
        lines.swap(1, 2);
        assert!(
            verify(&lines)
                .unwrap_err()
                .reason
                .contains("record 3 follows record 1")
        );

        // rewritten from some point with fresh hashes still breaks at the seam
        let mut lines = trail(5);
        lines[3] =
            serde_json::to_string(&next(4, GENESIS, serde_json::json!({"kind": "s3"}))).unwrap();
        assert_eq!(verify(&lines).unwrap_err().line, 4);
    }

    #[test]
    fn key_order_in_the_file_does_not_matter() {
        let a = serde_json::json!({"b": 1, "a": {"y": 2, "x": 3}});
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a": {"x": 3, "y": 2}, "b": 1}"#).unwrap();
        assert_eq!(hash_of(1, GENESIS, &a), hash_of(1, GENESIS, &b));
    }
}
