//! `sesame audit verify` and `sesame audit`. Verification reads the trail straight from its
//! root (every replica's chain, `<data dir>/audit` unless `--audit-dir` names another), so an
//! auditor can check it offline with nothing running; queries read it there too, or through
//! a gateway's control API (`GET /v1/audit`) like every other verb, merging the chains by
//! time with the replica that wrote each record shown. Refusals show, and can be picked by,
//! the reason their records carry (`--reason`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::client::{CliError, Client};
use crate::audit::chain::Record;
use crate::audit::query::{COLUMNS, Query, cells, parse_time};
use crate::audit::replicas::{self, Entry};
use crate::audit::verify::VerifyError;
use crate::record::Denial;

/// Verifies every chain under `root`, each on its own: one line per chain, and an error
/// (exit 1) when any is broken, naming its file and line.
pub fn verify(root: &Path) -> Result<String, CliError> {
    let checked = replicas::verify_all(root, |_, _| {}).map_err(CliError::Unreachable)?;
    let mut lines = String::new();
    let mut broken = 0;
    for c in &checked {
        let name = c.chain.name();
        let _ = match &c.outcome {
            Ok(summary) => {
                let pruned = summary.pruned_through.map_or_else(String::new, |seq| {
                    format!(" (records 1..{seq} deleted by retention, anchor valid)")
                });
                writeln!(
                    lines,
                    "  {name}: intact, {} records in {} file(s), last hash {}{pruned}",
                    summary.records,
                    summary.files,
                    &summary.tip.hash[..16]
                )
            }
            Err(VerifyError::Broken(b)) => {
                broken += 1;
                writeln!(lines, "  {name}: NOT INTACT at {b}")
            }
            Err(VerifyError::Io(e)) => return Err(CliError::Unreachable(e.clone())),
        };
    }
    let shown = root.display();
    match (checked.len(), broken) {
        (0, _) => Ok(format!("{shown}: intact, no records yet\n")),
        (chains, 0) => Ok(format!("{shown}: intact, {chains} chain(s)\n{lines}")),
        (chains, broken) => Err(CliError::Invalid(format!(
            "{shown}: NOT INTACT, {broken} of {chains} chain(s) broken\n{}",
            lines.trim_end()
        ))),
    }
}

/// Which records to show (the flags of `sesame audit`); every filter given must match.
#[derive(Debug, Default, clap::Args)]
pub struct Filter {
    /// Records in this replica's chain (`local`: the trail from before replicas had ids).
    #[arg(long)]
    pub replica: Option<String>,
    #[arg(long)]
    pub principal: Option<String>,
    #[arg(long)]
    pub grant: Option<String>,
    #[arg(long)]
    pub bucket: Option<String>,
    /// Keys starting with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// An operation, e.g. `GetObject`.
    #[arg(long)]
    pub op: Option<String>,
    /// `allowed`, `denied` or `refused`.
    #[arg(long)]
    pub decision: Option<String>,
    /// The `x-amz-request-id` a client was answered with: every record about that request.
    #[arg(long)]
    pub request_id: Option<String>,
    /// From this time (RFC 3339, or a date: midnight UTC).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (RFC 3339, or a date: midnight UTC).
    #[arg(long)]
    pub until: Option<String>,
    /// Refusals for this reason (`outside_scope`, `expired`, `limit_reached`, ...), as the
    /// REASON column shows it; records written before records carried one have none.
    #[arg(long)]
    pub reason: Option<String>,
}

impl Filter {
    fn query(&self) -> Result<Query, CliError> {
        let time = |flag: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| parse_time(flag, v).map_err(CliError::Usage))
                .transpose()
        };
        Ok(Query {
            replica: self.replica.clone(),
            principal: self.principal.clone(),
            grant: self.grant.clone(),
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            op: self.op.clone(),
            decision: self.decision.clone(),
            request_id: self.request_id.clone(),
            since: time("--since", &self.since)?,
            until: time("--until", &self.until)?,
        })
    }

    /// The reason asked for, if it is one a refusal can be recorded with. The gateway's
    /// query knows no reason, so it is matched here, on the records it answered.
    fn reason(&self) -> Result<Option<&str>, CliError> {
        match self.reason.as_deref() {
            Some(r) if !Denial::REASONS.contains(&r) => Err(CliError::Usage(format!(
                "--reason {r:?} is not a reason a refusal is recorded with: one of {}",
                Denial::REASONS.join(", ")
            ))),
            reason => Ok(reason),
        }
    }
}

/// Whether `record` is a refusal for `reason` (every record, when none is asked for).
fn for_reason(record: &Record, reason: Option<&str>) -> bool {
    reason.is_none_or(|r| record.body.kind.denial().map(Denial::name) == Some(r))
}

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shown {
    /// A table for people.
    Table,
    /// One row per record, the table's columns.
    Csv,
    /// The records as the trail stores them, one per line with the replica in front (also
    /// `--json`).
    #[value(hide = true)]
    Json,
}

/// The records of every chain under the trail root `root` that `filter` matches, by time.
pub fn query(root: &Path, filter: &Filter, shown: Shown) -> Result<String, CliError> {
    let (wanted, reason) = (filter.query()?, filter.reason()?);
    let entries = replicas::read(root, |chain, record| {
        wanted.matches(chain.name(), &record.body) && for_reason(record, reason)
    })
    .map_err(|e| match e {
        VerifyError::Broken(b) => CliError::Invalid(b.to_string()),
        VerifyError::Io(e) => CliError::Unreachable(e),
    })?;
    Ok(render(&entries, shown))
}

/// The same, from the gateway `client` talks to (`GET /v1/audit`).
pub(super) async fn query_remote(
    client: &Client,
    filter: &Filter,
    shown: Shown,
) -> Result<String, CliError> {
    let (wanted, reason) = (filter.query()?, filter.reason()?);
    let mut path = "/v1/audit".to_owned();
    for (i, (name, value)) in wanted.params().into_iter().enumerate() {
        let value =
            percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC);
        let _ = write!(path, "{}{name}={value}", if i == 0 { '?' } else { '&' });
    }
    let body = client.get_bytes(&path).await?;
    let lines = String::from_utf8(body.to_vec()).map_err(|e| {
        CliError::Unreachable(format!(
            "the gateway answered records that are not text: {e}"
        ))
    })?;
    if shown == Shown::Json && reason.is_none() {
        return Ok(lines);
    }
    let mut entries = lines
        .lines()
        .map(Entry::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::Unreachable(format!("unexpected answer from the gateway: {e}")))?;
    entries.retain(|e| for_reason(&e.record, reason));
    Ok(render(&entries, shown))
}

/// Records as JSON lines (as stored, with the replica in front), CSV, or a table.
fn render(records: &[Entry], shown: Shown) -> String {
    let mut out = String::new();
    match shown {
        Shown::Json => {
            for r in records {
                let _ = writeln!(out, "{}", r.line());
            }
        }
        Shown::Csv => {
            let _ = writeln!(out, "{}", header().join(","));
            for r in records {
                let row: Vec<String> = row(r).iter().map(|c| csv_field(c)).collect();
                let _ = writeln!(out, "{}", row.join(","));
            }
        }
        Shown::Table => {
            let rows: Vec<[String; SHOWN]> = records.iter().map(row).collect();
            out = super::output::table(
                &header()
                    .map(str::to_ascii_uppercase)
                    .each_ref()
                    .map(String::as_str),
                &rows,
            );
        }
    }
    out
}

/// How many columns the table and the CSV have: the trail's view of a record
/// (`audit::query`), and the reason of a refusal beside its error code.
const SHOWN: usize = COLUMNS.len() + 1;

/// Where the reason goes: after the error code.
fn reason_at() -> usize {
    COLUMNS
        .iter()
        .position(|c| *c == "error_code")
        .map_or(COLUMNS.len(), |i| i + 1)
}

/// `cells` with `reason` put in at [`reason_at`].
fn with_reason<T: Clone>(cells: &[T; COLUMNS.len()], reason: T) -> [T; SHOWN] {
    let at = reason_at();
    std::array::from_fn(|i| match i.cmp(&at) {
        std::cmp::Ordering::Less => cells[i].clone(),
        std::cmp::Ordering::Equal => reason.clone(),
        std::cmp::Ordering::Greater => cells[i - 1].clone(),
    })
}

fn header() -> [&'static str; SHOWN] {
    with_reason(&COLUMNS, "reason")
}

fn row(entry: &Entry) -> [String; SHOWN] {
    let reason = entry.record.body.kind.denial().map(Denial::name);
    with_reason(&cells(entry), reason.unwrap_or_default().to_owned())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// `sesame report`: fetches the report from the gateway (which holds the store) and writes
/// it to a file or standard output.
pub(super) async fn report(
    client: &super::Client,
    from: Option<String>,
    to: Option<String>,
    format: &str,
    output: Option<&Path>,
) -> Result<(), CliError> {
    let encode = |v: &str| {
        percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut query = format!("format={}", encode(format));
    for (name, value) in [("from", from), ("to", to)] {
        if let Some(value) = value {
            let _ = write!(query, "&{name}={}", encode(&value));
        }
    }
    let report = client.get_bytes(&format!("/v1/report?{query}")).await?;
    if let Some(path) = output {
        std::fs::write(path, &report)
            .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("report written to {}", path.display());
    } else {
        std::io::stdout()
            .write_all(&report)
            .map_err(|e| CliError::Usage(format!("cannot write the report: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of a fixture's trail root, to tamper with.
    fn copied(fixture: &str) -> tempfile::TempDir {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(fixture);
        let to = tempfile::tempdir().unwrap();
        for replica in ["r-0a1b2c3d", "r-4e5f6a7b"] {
            std::fs::create_dir(to.path().join(replica)).unwrap();
            for file in ["trail-000001.jsonl", "audit-signing.pub"] {
                std::fs::copy(
                    from.join(replica).join(file),
                    to.path().join(replica).join(file),
                )
                .unwrap();
            }
        }
        to
    }

    #[test]
    fn verify_says_how_each_replicas_chain_is_and_names_the_break() {
        let root = copied("audit-v3/trail/audit");
        let out = verify(root.path()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!("{}: intact, 2 chain(s)", root.path().display())
        );
        assert!(
            lines[1].starts_with("  r-0a1b2c3d: intact, 102 records in 1 file(s), last hash "),
            "{out}"
        );
        assert!(
            lines[2].starts_with("  r-4e5f6a7b: intact, 6 records in 1 file(s), last hash "),
            "{out}"
        );

        let file = root.path().join("r-4e5f6a7b/trail-000001.jsonl");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replace("payroll/b.csv", "payroll/z.csv")).unwrap();
        let Err(CliError::Invalid(out)) = verify(root.path()) else {
            panic!("a tampered chain verified")
        };
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "{}: NOT INTACT, 1 of 2 chain(s) broken",
                root.path().display()
            )
        );
        assert!(
            lines[1].starts_with("  r-0a1b2c3d: intact, 102 records"),
            "{out}"
        );
        assert_eq!(
            lines[2],
            "  r-4e5f6a7b: NOT INTACT at r-4e5f6a7b/trail-000001.jsonl line 2: record 2 was edited: its content does not match its hash"
        );
    }

    #[test]
    fn verify_reads_the_trail_from_before_replicas_as_local() {
        let root =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit-v1/trail/audit");
        let out = verify(&root).unwrap();
        assert!(
            out.contains("\n  local: intact, 136 records in 1 file(s), last hash "),
            "{out}"
        );
    }
}
