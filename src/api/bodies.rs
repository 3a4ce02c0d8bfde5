//! The JSON bodies the control API accepts, in one place: the handlers deserialise them and
//! the CLI serialises them, so neither side can name a field the other does not know. What a
//! caller may leave out is an `Option`, not sent when `None`; unknown fields are refused.
//! A test checks each against its schema in `openapi.json`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::Action;

/// `POST /v1/grants` (admin): a grant made directly, returned with credentials for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    /// `s3://bucket/prefix/` (ends with `/`) or `s3://bucket/key`.
    pub scope: String,
    pub principal: String,
    pub actions: Vec<Action>,
    pub duration_seconds: i64,
    /// Now when absent.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub starts_at: Option<OffsetDateTime>,
}

/// `POST /v1/requests`: ask for access, decided by policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRequest {
    pub scope: String,
    pub actions: Vec<Action>,
    pub duration_seconds: i64,
    /// Now when absent.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// A fresh TOTP code, where the policy asks the requester for MFA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
}

/// `POST /v1/grants/{id}/extend`: more time on a grant, decided like a new request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extend {
    pub duration_seconds: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
}

/// `POST /v1/requests/{id}/approve`, `.../deny` and `.../withdraw`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decide {
    /// A fresh TOTP code, where the policy asks approvers for MFA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
    /// Required to deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/users` (admin): a local user, answered with their token (shown once).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddUser {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// `POST /v1/mfa/enroll`: the body may be left out when no authenticator is enrolled yet.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollMfa {
    /// A current code of the authenticator already enrolled, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
}

/// `POST /v1/shares`: a link to one object under a grant the caller holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateShare {
    /// `s3://bucket/key` of one object.
    pub uri: String,
    /// Life of the link; the gateway's default (15 minutes) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_downloads: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The grant to make it under; the caller's active grant that reads the object and ends
    /// last when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    /// The properties and required properties of the body `method path` documents.
    fn documented(method: &str, path: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let doc: Value = serde_json::from_str(super::super::OPENAPI).unwrap();
        let mut schema =
            &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
        if let Some(name) = schema["$ref"].as_str() {
            let name = name.rsplit('/').next().unwrap();
            schema = &doc["components"]["schemas"][name];
        }
        let names = |v: &Value| -> BTreeSet<String> {
            match v {
                Value::Object(map) => map.keys().cloned().collect(),
                Value::Array(list) => list.iter().map(|n| n.as_str().unwrap().into()).collect(),
                _ => BTreeSet::new(),
            }
        };
        let properties = names(&schema["properties"]);
        assert!(!properties.is_empty(), "{method} {path} documents no body");
        (properties, names(&schema["required"]))
    }

    fn sent(body: &impl Serialize) -> BTreeSet<String> {
        match serde_json::to_value(body).unwrap() {
            Value::Object(map) => map.keys().cloned().collect(),
            other => panic!("a body is an object, not {other}"),
        }
    }

    /// A body with every field given sends every documented property; with only what it
    /// must have, exactly the required ones; and what it sends reads back.
    fn check<B: Serialize + serde::de::DeserializeOwned>(
        method: &str,
        path: &str,
        full: &B,
        least: &B,
    ) {
        let (properties, required) = documented(method, path);
        assert_eq!(sent(full), properties, "{method} {path}: every field");
        assert_eq!(
            sent(least),
            required,
            "{method} {path}: the required fields"
        );
        for body in [full, least] {
            let text = serde_json::to_string(body).unwrap();
            let back: B = serde_json::from_str(&text).unwrap();
            assert_eq!(
                serde_json::to_string(&back).unwrap(),
                text,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn each_body_is_its_documented_schema() {
        let at = Some(time::macros::datetime!(2026-12-01 09:00 UTC));
        let some = || Some("x".to_owned());
        check(
            "post",
            "/v1/grants",
            &CreateGrant {
                scope: "s3://b/p/".into(),
                principal: "alice".into(),
                actions: vec![Action::Read],
                duration_seconds: 60,
                starts_at: at,
            },
            &CreateGrant {
                scope: "s3://b/p/".into(),
                principal: "alice".into(),
                actions: vec![Action::Read],
                duration_seconds: 60,
                starts_at: None,
            },
        );
        let request =
            |starts_at, justification: Option<String>, totp: Option<String>| FileRequest {
                scope: "s3://b/p/".into(),
                actions: vec![Action::Read],
                duration_seconds: 60,
                starts_at,
                justification,
                totp,
            };
        check(
            "post",
            "/v1/requests",
            &request(at, some(), some()),
            &request(None, None, None),
        );
        let extend = |justification: Option<String>, totp: Option<String>| Extend {
            duration_seconds: 60,
            justification,
            totp,
        };
        check(
            "post",
            "/v1/grants/{id}/extend",
            &extend(some(), some()),
            &extend(None, None),
        );
        let decide = Decide {
            totp: some(),
            reason: some(),
        };
        for verb in ["approve", "deny", "withdraw"] {
            let path = format!("/v1/requests/{{id}}/{verb}");
            check("post", &path, &decide, &Decide::default());
        }
        check(
            "post",
            "/v1/users",
            &AddUser {
                name: "bob".into(),
                groups: vec!["g".into()],
            },
            &AddUser {
                name: "bob".into(),
                groups: vec![],
            },
        );
        check(
            "post",
            "/v1/mfa/enroll",
            &EnrollMfa { totp: some() },
            &EnrollMfa::default(),
        );
        let share = |ttl_seconds, max_downloads, why: Option<String>, grant| CreateShare {
            uri: "s3://b/k".into(),
            ttl_seconds,
            max_downloads,
            why,
            grant,
        };
        check(
            "post",
            "/v1/shares",
            &share(Some(60), Some(1), some(), some()),
            &share(None, None, None, None),
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Decide>(r#"{"reasn": "typo"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `reasn`"), "{err}");
    }
}
