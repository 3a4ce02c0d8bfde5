//! One outbound HTTP(S) client for the gateway's own calls (webhooks, OIDC key sets), with
//! the system's trust roots. S3 backend traffic goes through aws-sdk-s3 instead.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Largest JSON document read from elsewhere (a key set, a discovery document).
const MAX_JSON: usize = 1024 * 1024;

pub fn client() -> Result<HttpClient, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS trust roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// GETs a JSON document; any non-2xx answer is an error naming the URL.
pub async fn get_json(client: &HttpClient, url: &str) -> Result<serde_json::Value, String> {
    let req = hyper::Request::get(url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("{url}: {e}"))?;
    let res = client
        .request(req)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = res.status();
    let body = http_body_util::Limited::new(res.into_body(), MAX_JSON)
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url} is not JSON: {e}"))
}
