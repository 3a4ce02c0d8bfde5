//! The real object store behind the gateway, reached with aws-sdk-s3 and the gateway's own
//! credentials, which never leave this process. A directory backend is an s3s-fs server
//! started in-process on a loopback port with a random key pair, so both kinds of backend
//! go through the same client and the same code path.

use std::net::SocketAddr;
use std::path::Path;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use rand::RngCore;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use crate::config::Backend;

/// Connects to the configured backend, starting the directory server when needed.
pub async fn connect(backend: &Backend) -> std::io::Result<aws_sdk_s3::Client> {
    match backend {
        Backend::Directory(dir) => {
            let (addr, access_key, secret) = start_directory_server(dir).await?;
            Ok(client(
                &format!("http://{addr}"),
                crate::config::DEFAULT_REGION,
                true,
                Some((access_key, secret)),
            )
            .await)
        }
        Backend::Endpoint {
            url,
            region,
            path_style,
            credentials,
        } => Ok(client(url, region, *path_style, credentials.clone()).await),
    }
}

/// An S3 client tuned for relaying: checksums only where the API requires them (the client's
/// own checksum headers are forwarded as they came), and no stalled-stream cut-off, because
/// pauses come from the user's client and are not the backend's fault.
pub async fn client(
    url: &str,
    region: &str,
    path_style: bool,
    credentials: Option<(String, String)>,
) -> aws_sdk_s3::Client {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_owned()));
    if let Some((id, secret)) = credentials {
        loader =
            loader.credentials_provider(Credentials::new(id, secret, None, None, "sesame-backend"));
    }
    let shared = loader.load().await;
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .endpoint_url(url)
        .force_path_style(path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Serves `dir` with s3s-fs, through the wrapper that makes it answer as S3 does, on a free
/// loopback port; returns its address and key pair.
pub async fn start_directory_server(dir: &Path) -> std::io::Result<(SocketAddr, String, String)> {
    std::fs::create_dir_all(dir)?;
    let fs = super::directory::Directory::new(dir)?;
    let access_key = format!("embedded-{}", random_hex(8));
    let secret = random_hex(20);
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(access_key.clone(), secret.clone()));
    let service = builder.build();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(super::serve_plain(listener, service));
    Ok((addr, access_key, secret))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}
