//! Background tasks whose deadlines are data: pending requests time out at the deadline
//! stored with them (re-armed from the store at start, so one that passed while the gateway
//! was down fires at once), and the policy folder is watched for changes.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::grant::workflow::Workflow;

/// Times out pending requests at their deadlines; deadlines are data, so a restart re-arms
/// them from the store and a deadline passed while down fires at once.
pub async fn run_timeouts(
    workflow: Arc<Workflow>,
    clock: SharedClock,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        if let Err(e) = workflow.tick() {
            tracing::error!(error = %e, "timing out requests failed; retrying");
        }
        let next = workflow.next_deadline();
        let sleep = async {
            match next {
                Some(deadline) => clock.sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = wake.notified() => {}
        }
    }
}

/// Reloads the policies whenever a file in their folder changes (checked every two seconds).
pub async fn watch_policies(workflow: Arc<Workflow>) {
    let Some(dir) = workflow.policy_dir().map(std::path::Path::to_owned) else {
        return;
    };
    let mut seen = fingerprint(&dir);
    let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        every.tick().await;
        let now = fingerprint(&dir);
        if now != seen {
            seen = now;
            let _ = workflow.reload_policies();
        }
    }
}

/// Paths, sizes and modification times of the policy files: what a change would move.
fn fingerprint(
    dir: &std::path::Path,
) -> Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)> {
    fn walk(
        dir: &std::path::Path,
        out: &mut Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)>,
    ) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if let Ok(meta) = entry.metadata() {
                out.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}
