//! The hash chain: every record carries the hash of the one before it and its own hash over
//! its content, so an edit, a deletion, an insertion or a reordering breaks the chain at the
//! first record it touches. Pure functions, shared by the writer and `sesame audit verify`.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::record::{Body, canonical};

/// Hash of the record before the first one.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the trail, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1, 2, 3, ... across all files.
    pub seq: u64,
    /// Hash of the previous record (or [`GENESIS`]).
    pub prev: String,
    /// What happened.
    pub body: Body,
    /// SHA-256 over `seq`, `prev` and `body` (see [`hash_of`]).
    pub hash: String,
}

impl Record {
    /// A line parsed into its record, without checking its hash (that is [`check_line`]).
    pub fn parse(line: &str) -> Result<Record, String> {
        let line: Line =
            serde_json::from_str(line).map_err(|e| format!("is not a trail record: {e}"))?;
        let seq = line.seq;
        line.typed().map_err(|e| unreadable(seq, &e))
    }

    /// The line as the trail stores it (and forwards it, and `sesame audit --json` prints
    /// it): the body canonical, as its hash covers it.
    #[must_use]
    pub fn line(&self) -> String {
        line(self.seq, &self.prev, &self.body.canonical(), &self.hash)
    }
}

/// A line as it is on disk, its body still untyped: the hash is checked over exactly what
/// the file holds, whatever this build makes of it.
#[derive(Deserialize)]
struct Line {
    seq: u64,
    prev: String,
    body: serde_json::Value,
    hash: String,
}

impl Line {
    fn typed(self) -> Result<Record, serde_json::Error> {
        Ok(Record {
            seq: self.seq,
            prev: self.prev,
            body: Body::deserialize(self.body)?,
            hash: self.hash,
        })
    }
}

fn unreadable(seq: u64, e: &serde_json::Error) -> String {
    format!(
        "record {seq} is not a record this build reads ({e}); a newer Sesame may have written it"
    )
}

/// SHA-256 over `seq`, `prev` and the body as canonical JSON (see [`canonical`]), one per
/// line; so the key order in the file does not matter.
#[must_use]
pub fn hash_of(seq: u64, prev: &str, canonical_body: &str) -> String {
    let mut h = Sha256::new();
    h.update(seq.to_string().as_bytes());
    h.update(b"\n");
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(canonical_body.as_bytes());
    hex::encode(h.finalize())
}

/// A trail line: the record, its body already canonical.
fn line(seq: u64, prev: &str, canonical_body: &str, hash: &str) -> String {
    format!(r#"{{"seq":{seq},"prev":"{prev}","body":{canonical_body},"hash":"{hash}"}}"#)
}

/// A record chained and ready to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub seq: u64,
    pub hash: String,
    /// The line to store, without its newline.
    pub line: String,
}

/// Chains a canonical body after `prev` as record `seq`.
#[must_use]
pub fn seal(seq: u64, prev: &str, canonical_body: &str) -> Sealed {
    let hash = hash_of(seq, prev, canonical_body);
    Sealed {
        seq,
        line: line(seq, prev, canonical_body, &hash),
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
    let record: Line = serde_json::from_str(line)
        .map_err(|e| fail(None, format!("is not a trail record: {e}")))?;
    let seq = Some(record.seq);
    if hash_of(record.seq, &record.prev, &canonical(&record.body)) != record.hash {
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
    let number = record.seq;
    let record = record
        .typed()
        .map_err(|e| fail(seq, unreadable(number, &e)))?;
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
    use crate::record::note;

    fn trail(n: u64) -> Vec<String> {
        let mut tip = Tip::default();
        (1..=n)
            .map(|seq| {
                let r = seal(
                    seq,
                    &tip.hash,
                    &note(format!("GetObject {seq}")).canonical(),
                );
                tip = Tip {
                    seq,
                    hash: r.hash.clone(),
                };
                r.line
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
        let forged = seal(3, "f".repeat(64).as_str(), &note("forged").canonical());
        lines.insert(2, forged.line);
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
        lines[3] = seal(4, GENESIS, &note("rewritten").canonical()).line;
        assert_eq!(verify(&lines).unwrap_err().line, 4);
    }

    #[test]
    fn key_order_in_the_file_does_not_matter() {
        let a = serde_json::json!({"b": 1, "a": {"y": 2, "x": 3}});
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a": {"x": 3, "y": 2}, "b": 1}"#).unwrap();
        assert_eq!(canonical(&a), r#"{"a":{"x":3,"y":2},"b":1}"#);
        assert_eq!(canonical(&a), canonical(&b));
    }

    #[test]
    fn an_intact_record_this_build_cannot_read_is_named_not_called_edited() {
        let body = r#"{"at":"2026-11-29T10:00:00Z","kind":"s3.teleported"}"#;
        let line = seal(1, GENESIS, body).line;
        let b = check_line(&Tip::default(), "t", 1, &line).unwrap_err();
        assert!(
            b.reason.starts_with(
                "record 1 is not a record this build reads (unknown variant `s3.teleported`"
            ),
            "{}",
            b.reason
        );
    }

    #[test]
    fn a_stored_line_reads_back_to_the_same_line() {
        let sealed = seal(7, GENESIS, &note("read back").canonical());
        let record = Record::parse(&sealed.line).unwrap();
        assert_eq!(
            (record.seq, record.hash.as_str()),
            (7, sealed.hash.as_str())
        );
        assert_eq!(record.line(), sealed.line);
    }
}
