//! `sesame audit verify` and `sesame audit`: the trail read straight from the data
//! directory, so an auditor can check it offline with nothing running.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::client::CliError;
use crate::audit::verify::{VerifyError, records, verify_dir};

pub fn verify(data_dir: &Path) -> Result<String, CliError> {
    let dir = data_dir.join(crate::server::AUDIT_DIR);
    match verify_dir(&dir) {
        Ok(summary) => {
            let pruned = summary.pruned_through.map_or_else(String::new, |seq| {
                format!(" (records 1..{seq} deleted by retention, anchor valid)")
            });
            Ok(format!(
                "{}: intact, {} records in {} file(s), last hash {}{pruned}\n",
                dir.display(),
                summary.records,
                summary.files,
                &summary.tip.hash[..16]
            ))
        }
        Err(VerifyError::Broken(b)) => Err(CliError::Invalid(format!(
            "{}: NOT INTACT at {b}",
            dir.display()
        ))),
        Err(VerifyError::Io(e)) => Err(CliError::Unreachable(e)),
    }
}

/// Which records to show (the flags of `sesame audit`); every filter given must match.
#[derive(Debug, Default, clap::Args)]
pub struct Filter {
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
    /// From this time (RFC 3339, UTC).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (RFC 3339, UTC).
    #[arg(long)]
    pub until: Option<String>,
}

impl Filter {
    fn matches(&self, body: &serde_json::Value) -> bool {
        let field = |name: &str| body.get(name).and_then(serde_json::Value::as_str);
        let eq = |want: &Option<String>, name: &str| {
            want.as_deref().is_none_or(|w| field(name) == Some(w))
        };
        eq(&self.principal, "principal")
            && eq(&self.grant, "grant")
            && eq(&self.bucket, "bucket")
            && eq(&self.op, "op")
            && eq(&self.decision, "decision")
            && eq(&self.request_id, "request_id")
            && self.prefix.as_deref().is_none_or(|p| field("key").is_some_and(|k| k.starts_with(p)))
            // RFC 3339 times in UTC compare as text.
            && self.since.as_deref().is_none_or(|t| field("at").is_some_and(|at| at >= t))
            && self.until.as_deref().is_none_or(|t| field("at").is_some_and(|at| at < t))
    }
}

/// Records as JSON lines (`--json`), CSV, or a table.
pub fn query(data_dir: &Path, filter: &Filter, format: &str) -> Result<String, CliError> {
    let dir = data_dir.join(crate::server::AUDIT_DIR);
    let all = records(&dir).map_err(|e| match e {
        VerifyError::Broken(b) => CliError::Invalid(b.to_string()),
        VerifyError::Io(e) => CliError::Unreachable(e),
    })?;
    let shown = all.iter().filter(|r| filter.matches(&r.body));
    let mut out = String::new();
    let columns = [
        "seq",
        "at",
        "kind",
        "event",
        "principal",
        "grant",
        "op",
        "bucket",
        "key",
        "decision",
        "error_code",
        "status",
        "bytes_out",
        "bytes_in",
        "client",
    ];
    let cell = |r: &crate::audit::chain::Record, c: &str| -> String {
        match c {
            "seq" => r.seq.to_string(),
            _ => match r.body.get(c) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            },
        }
    };
    match format {
        "json" => {
            for r in shown {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string(r).expect("records serialise")
                );
            }
        }
        "csv" => {
            let _ = writeln!(out, "{}", columns.join(","));
            for r in shown {
                let row: Vec<String> = columns.iter().map(|c| csv_field(&cell(r, c))).collect();
                let _ = writeln!(out, "{}", row.join(","));
            }
        }
        _ => {
            let rows: Vec<[String; 15]> = shown.map(|r| columns.map(|c| cell(r, c))).collect();
            out = super::output::table(
                &columns
                    .map(str::to_ascii_uppercase)
                    .each_ref()
                    .map(String::as_str),
                &rows,
            );
        }
    }
    Ok(out)
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
