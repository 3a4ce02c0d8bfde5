//! What a request can make the gateway hold before it is authenticated, decided from its
//! request line and headers alone.
//!
//! s3s reads these bodies before (or without) a signature check:
//! - a browser form upload (`POST` with `multipart/form-data`): its fields (up to 20 MiB) to
//!   find a signature, then, with none, the whole file (up to 5 GiB) before access is
//!   checked. Sesame hands out SigV4 credentials and share links; POST policies are not in
//!   its model, so form uploads are refused here, before a byte of the body is read, and the
//!   client that sent `Expect: 100-continue` is never asked for it.
//! - an STS-signed request's body, at most 8 KiB (s3s's own bound).
//!
//! Every other body is read after the signature and access checks: XML bodies whole (20 MiB
//! at most, s3s's bound), uploads streamed, aws-chunked chunks bounded by the guard.

use hyper::Method;
use hyper::header::{CONTENT_TYPE, HeaderMap};

use super::denial::Denial;

/// Refuses a form upload from its method and headers. Any `Content-Type` that starts with
/// `multipart/form-data` counts, in any case and among duplicates: a superset of what s3s
/// takes for a form.
pub fn refuse_form_upload(method: &Method, headers: &HeaderMap) -> Result<(), Denial> {
    let is_form = headers.get_all(CONTENT_TYPE).iter().any(|value| {
        let value = value.as_bytes().trim_ascii_start();
        value.len() >= FORM.len() && value[..FORM.len()].eq_ignore_ascii_case(FORM)
    });
    if method == Method::POST && is_form {
        return Err(Denial::FormUpload);
    }
    Ok(())
}

const FORM: &[u8] = b"multipart/form-data";

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_types: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for ct in content_types {
            h.append(CONTENT_TYPE, ct.parse().unwrap());
        }
        h
    }

    #[test]
    fn form_uploads_are_refused_however_the_type_is_written() {
        for ct in [
            "multipart/form-data; boundary=x",
            "Multipart/Form-Data;boundary=x",
            "  multipart/form-data",
        ] {
            let err = refuse_form_upload(&Method::POST, &headers(&[ct])).unwrap_err();
            assert_eq!(err, Denial::FormUpload, "{ct}");
        }
        // A duplicate header would make s3s see none; refused all the same.
        assert!(
            refuse_form_upload(
                &Method::POST,
                &headers(&["text/plain", "multipart/form-data; boundary=x"])
            )
            .is_err()
        );
    }

    #[test]
    fn other_posts_and_other_methods_pass() {
        // DeleteObjects, CompleteMultipartUpload: XML bodies read after the checks.
        assert!(refuse_form_upload(&Method::POST, &headers(&["application/xml"])).is_ok());
        assert!(refuse_form_upload(&Method::POST, &headers(&[])).is_ok());
        // A PUT of an object whose own type is a form is an ordinary signed upload.
        assert!(refuse_form_upload(&Method::PUT, &headers(&["multipart/form-data"])).is_ok());
    }
}
