//! One integration binary. Every test drives real clients (aws-cli, boto3, aws-sdk-s3, curl)
//! over loopback sockets against a gateway in front of a real S3 server.
//!
//! - `harness`: backends (s3s-fs in-process, Garage as a process), the gateway, the clients.
//! - `relay`: the recording hop between gateway and backend, for proving a refused request
//!   never reached the backend.
//! - `attacks`: the adversarial suite, one module per class of attack (see its own list).
//! - `garage`: starting Garage; shared with the benchmark.
//! - `access`: each action and operation allowed inside a grant, denied outside it, after
//!   expiry and after revocation, as each client reports it.
//! - `passthrough`: ranges, metadata, tagging, conditional requests and odd keys as on the
//!   backend.
//! - `attacks_parsing`: raw signed attacks on the one parse and on forwarded headers, as tables.
//! - `front_door`: the holes s3s leaves open, each closed (SigV2, unsigned headers, presign
//!   lifetime, anonymous and forged requests, checksums, chunk sizes).
//! - `streaming`: transfers cut mid-stream, memory bounded for a gibibyte through the binary.
//! - `chunked`: aws-chunked uploads with trailers, right and wrong, and oversized chunks.
//! - `directory`: folder keys and list delimiters (multi-byte, multi-character, empty) answered
//!   as S3 answers them, on the embedded directory backend as on Garage; `ListObjects` (v1)
//!   markers and `ListMultipartUploads`.
//! - `directory_objects`: conditional GETs and HEADs, part counts, writes into a missing
//!   bucket, and an object and a folder of one name, on the directory backend as on Garage.
//! - `table`: every operation of the table through boto3, against the backend's own answer.
//! - `s3cmd`, `rclone`, `minio_py`, `js_sdk`: each client's everyday story, unchanged and with
//!   its defaults, inside a grant and refused outside it.
//! - `workflow`: users, MFA, requests and approvals end to end, and a SIGKILL restart.
//! - `credential_process`: aws-cli profiles that request, wait for approval, then work.
//! - `policies`: policy folders reloaded on a running gateway, invalid files reported.
//! - `notifications`: webhooks signed, retried, covering the request and grant lifecycle;
//!   a notice owed across a SIGKILL delivered after the restart; one backoff with the
//!   forwarder.
//! - `oidc`: ID tokens from a test identity provider, every check, key rotation.
//! - `share`: share links with curl: Range, HEAD, expiry, revocation, download limits under
//!   concurrency, tampering, cuts in flight.
//! - `audit`: one record per request, tamper detection, fail closed when unwritable,
//!   rotation across files under traffic, records forwarded to a collector.
//! - `replica_trails`: gateways with a data directory each writing their own audit chains
//!   into one shared trail root, read and verified together.
//! - `faults`: the trail's disk filling up and freeing again under a running gateway.
//! - `churn`: SIGKILLs at random points under S3 traffic and grant churn; nothing
//!   acknowledged is lost, nothing revoked is served.
//! - `usage`: what was done under a grant, and its byte and object limits enforced while
//!   streaming and across a restart.
//! - `cli`: `sesame serve` and `sesame grant` as an operator uses them.
//! - `listen`: both listeners under half-sent heads, too many connections, form POSTs and SIGTERM.
//! - `tls`: both listeners over TLS with a CA made in the test, every client trusting it and
//!   refusing another; renewal under a download and on SIGHUP; client certificates on the
//!   control API; a backend behind TLS; plain HTTP off loopback refused.
//! - `report`: the auditor's report rendered by headless Chromium, every chart drawn.
//! - `postgres`: a fresh database on the test PostgreSQL server for each test that needs one.
//! - `replicas`: gateways sharing one PostgreSQL store: credentials, revocations, transfers
//!   in flight and one-download links across them; 503 while the store is out of reach.

// Scenarios read top to bottom as a story; test data is small and patterned.
#![allow(
    clippy::too_many_lines,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap
)]

mod access;
mod attacks;
mod attacks_parsing;
mod audit;
mod bodies;
mod chunked;
mod churn;
mod cli;
mod credential_process;
mod directory;
mod directory_objects;
mod faults;
mod front_door;
mod garage;
mod harness;
mod js_sdk;
mod listen;
mod minio_py;
mod notifications;
mod oidc;
mod passthrough;
mod policies;
mod postgres;
mod rclone;
mod relay;
mod replica_processes;
mod replica_trails;
mod replicas;
mod report;
mod s3cmd;
mod scripted;
mod share;
mod sigv4;
mod streaming;
mod table;
mod tls;
mod usage;
mod workflow;

/// Runs each named scenario once per backend: `fs::name` and `garage::name`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::BackendKind::Fs).await;
                }
            )*
        }
        mod garage {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::BackendKind::Garage).await;
                }
            )*
        }
    };
}
