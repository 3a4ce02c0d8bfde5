//! Virtual-hosted-style addressing for a configured domain: `bucket.DOMAIN[:port]` names the
//! bucket; every other host (the domain itself, `localhost`, an IP) is path style. s3s's own
//! host parsers keep the port and treat unknown hosts as bucket names, which would break
//! path-style requests to `localhost:9440`.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

#[derive(Debug)]
pub struct DomainHost {
    domain: String,
}

impl DomainHost {
    pub fn new(domain: &str) -> Result<DomainHost, String> {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = !domain.is_empty()
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(format!("domain {domain:?} is not a valid host name"));
        }
        Ok(DomainHost { domain })
    }

    /// The bucket a host header names, if it is `bucket.DOMAIN` (port ignored).
    fn bucket_of<'a>(&self, host: &'a str) -> Option<&'a str> {
        let name = strip_port(host);
        let bucket = name.strip_suffix(self.domain.as_str())?.strip_suffix('.')?;
        (!bucket.is_empty()).then_some(bucket)
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

impl S3Host for DomainHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_of(host) {
            Some(bucket) => VirtualHost::new(self.domain.as_str()).with_bucket(bucket),
            None => VirtualHost::new(self.domain.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_subdomains_of_the_domain_name_a_bucket() {
        let host = DomainHost::new("s3.example.com").unwrap();
        assert_eq!(host.bucket_of("photos.s3.example.com"), Some("photos"));
        assert_eq!(host.bucket_of("photos.s3.example.com:9440"), Some("photos"));
        assert_eq!(host.bucket_of("s3.example.com:9440"), None);
        assert_eq!(host.bucket_of("localhost:9440"), None);
        assert_eq!(host.bucket_of("evil-s3.example.com"), None);
        assert!(DomainHost::new("bad domain").is_err());
    }
}
