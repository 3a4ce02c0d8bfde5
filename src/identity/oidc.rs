//! OIDC ID tokens from the organisation's identity provider: the signature is checked against
//! the provider's JWKS (fetched, cached, and fetched again when a token names a key the cache
//! does not have, which is how rotation shows), then issuer, audience, expiry and not-before
//! against the injected clock. The user comes from one claim, the groups from another.

use std::collections::HashMap;
use std::sync::RwLock;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::clock::SharedClock;
use crate::http::{HttpClient, get_json};
use crate::model::Principal;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The `iss` tokens must carry, e.g. `https://login.example.com`.
    pub issuer: String,
    /// The `aud` tokens must carry (the client id Sesame is registered as).
    pub audience: String,
    /// Where the keys are; default: `jwks_uri` from the issuer's discovery document.
    pub jwks_url: Option<String>,
    /// Claim naming the user.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Claim listing the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
}

fn default_user_claim() -> String {
    "email".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY: time::Duration = time::Duration::seconds(60);
/// A token naming an unknown key refreshes the cache at most this often.
const REFETCH_AFTER: time::Duration = time::Duration::seconds(10);

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the ID token is malformed: {0}")]
    Malformed(String),
    #[error("the ID token names key {0:?}, which the identity provider does not publish")]
    UnknownKey(String),
    #[error("the ID token is not valid: {0}")]
    Invalid(String),
    #[error("the ID token expired at {0}")]
    Expired(String),
    #[error("the ID token is not valid before {0}")]
    NotYetValid(String),
    #[error("the ID token has no {0:?} claim naming the user")]
    NoUser(String),
    #[error("the identity provider's keys cannot be fetched: {0}")]
    Keys(String),
}

struct Keys {
    by_kid: HashMap<String, (DecodingKey, Algorithm)>,
    fetched_at: Option<time::OffsetDateTime>,
}

pub struct Oidc {
    config: OidcConfig,
    clock: SharedClock,
    http: HttpClient,
    keys: RwLock<Keys>,
}

#[derive(Deserialize)]
struct Claims {
    exp: i64,
    nbf: Option<i64>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// Whether a bearer token looks like a JWT (three base64url parts) rather than an API token.
#[must_use]
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

impl Oidc {
    pub fn new(config: OidcConfig, clock: SharedClock) -> Result<Oidc, String> {
        Ok(Oidc {
            config,
            clock,
            http: crate::http::client()?,
            keys: RwLock::new(Keys {
                by_kid: HashMap::new(),
                fetched_at: None,
            }),
        })
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, OidcError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| OidcError::Malformed(e.to_string()))?;
        let kid = header
            .kid
            .ok_or_else(|| OidcError::Malformed("the header names no key (kid)".into()))?;
        let (key, algorithm) = self.key(&kid).await?;
        if header.alg != algorithm {
            return Err(OidcError::Invalid(format!(
                "signed with {:?}, but key {kid} is for {algorithm:?}",
                header.alg
            )));
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        // Time is checked below against the injected clock, not the wall clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = ["exp", "iss", "aud"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| OidcError::Invalid(e.to_string()))?;
        let now = self.clock.now();
        let at = |t: i64| {
            time::OffsetDateTime::from_unix_timestamp(t)
                .map(crate::duration::rfc3339)
                .unwrap_or_default()
        };
        if now - LEEWAY
            >= time::OffsetDateTime::from_unix_timestamp(data.claims.exp)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        {
            return Err(OidcError::Expired(at(data.claims.exp)));
        }
        if let Some(nbf) = data.claims.nbf
            && now + LEEWAY
                < time::OffsetDateTime::from_unix_timestamp(nbf)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        {
            return Err(OidcError::NotYetValid(at(nbf)));
        }
        let claims = data.claims.rest;
        let name = claims
            .get(&self.config.user_claim)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| OidcError::NoUser(self.config.user_claim.clone()))?
            .to_owned();
        let groups = match claims.get(&self.config.groups_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(Principal {
            name,
            groups,
            admin: false,
        })
    }

    /// The key for `kid`, fetching the key set when it is not cached (rotation).
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), OidcError> {
        if let Some(found) = self.cached(kid) {
            return Ok(found);
        }
        let recently = self
            .read()
            .fetched_at
            .is_some_and(|t| self.clock.now() - t < REFETCH_AFTER);
        if !recently {
            self.refresh().await?;
        }
        self.cached(kid)
            .ok_or_else(|| OidcError::UnknownKey(kid.to_owned()))
    }

    fn cached(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        self.read().by_kid.get(kid).cloned()
    }

    async fn refresh(&self) -> Result<(), OidcError> {
        let url = if let Some(url) = &self.config.jwks_url {
            url.clone()
        } else {
            let issuer = self.config.issuer.trim_end_matches('/');
            let discovery = format!("{issuer}/.well-known/openid-configuration");
            let doc = get_json(&self.http, &discovery)
                .await
                .map_err(OidcError::Keys)?;
            doc["jwks_uri"]
                .as_str()
                .ok_or_else(|| OidcError::Keys(format!("{discovery} names no jwks_uri")))?
                .to_owned()
        };
        let json = get_json(&self.http, &url).await.map_err(OidcError::Keys)?;
        let set: JwkSet =
            serde_json::from_value(json).map_err(|e| OidcError::Keys(format!("{url}: {e}")))?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk))
            else {
                continue;
            };
            let algorithm = match jwk.common.key_algorithm.map(|a| a.to_string()).as_deref() {
                Some(name) => name.parse::<Algorithm>().unwrap_or(Algorithm::RS256),
                None => match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    _ => Algorithm::RS256,
                },
            };
            by_kid.insert(kid, (key, algorithm));
        }
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.by_kid = by_kid;
        keys.fetched_at = Some(self.clock.now());
        tracing::info!(url, keys = keys.by_kid.len(), "OIDC keys fetched");
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
