//! Every route of the control API, once: its method and its path as the OpenAPI document
//! writes it (`{id}` for a segment the caller fills in). The router recognises requests from
//! this table alone, so no route exists without a row here, and a test checks the table
//! against `openapi.json` both ways: each row documented, each documented operation a row.

use hyper::Method;

/// Declares a set of routes: the enum, every member in order, and each one's method and path.
macro_rules! routes {
    ($(#[$meta:meta])* $set:ident { $($name:ident = $method:ident $path:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum $set {
            $($name,)*
        }

        impl $set {
            pub(super) const ALL: &'static [$set] = &[$($set::$name,)*];

            pub(super) fn method(self) -> Method {
                match self {
                    $($set::$name => Method::$method,)*
                }
            }

            /// As the OpenAPI document writes it.
            pub(super) fn path(self) -> &'static str {
                match self {
                    $($set::$name => $path,)*
                }
            }
        }
    };
}

routes! {
    /// Routes anyone may call, without a token.
    Open {
        Health = GET "/v1/health",
        OpenApi = GET "/v1/openapi.json",
    }
}

routes! {
    /// Routes that need a bearer token.
    Route {
        WhoAmI = GET "/v1/whoami",
        ListGrants = GET "/v1/grants",
        CreateGrant = POST "/v1/grants",
        GetGrant = GET "/v1/grants/{id}",
        RevokeGrant = POST "/v1/grants/{id}/revoke",
        IssueCredentials = POST "/v1/grants/{id}/credentials",
        ExtendGrant = POST "/v1/grants/{id}/extend",
        ListRequests = GET "/v1/requests",
        FileRequest = POST "/v1/requests",
        GetRequest = GET "/v1/requests/{id}",
        Approve = POST "/v1/requests/{id}/approve",
        Deny = POST "/v1/requests/{id}/deny",
        Withdraw = POST "/v1/requests/{id}/withdraw",
        Report = GET "/v1/report",
        Audit = GET "/v1/audit",
        ListShares = GET "/v1/shares",
        CreateShare = POST "/v1/shares",
        GetShare = GET "/v1/shares/{id}",
        RevokeShare = POST "/v1/shares/{id}/revoke",
        ListUsers = GET "/v1/users",
        AddUser = POST "/v1/users",
        EnrollMfa = POST "/v1/mfa/enroll",
        ResetMfa = POST "/v1/users/{name}/mfa/reset",
        PolicyStatus = GET "/v1/policies",
        ReloadPolicies = POST "/v1/policies/reload",
    }
}

/// What a request's method and path name.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Recognised<'a> {
    Open(Open),
    /// With the path's `{...}` segment, for the routes that have one.
    Route(Route, Option<&'a str>),
}

/// The route for `method` and `path` (without its query or trailing slash), if any.
pub(super) fn recognise<'a>(method: &Method, path: &'a str) -> Option<Recognised<'a>> {
    let open = Open::ALL
        .iter()
        .find(|r| r.method() == method && fit(r.path(), path).is_some())
        .map(|r| Recognised::Open(*r));
    open.or_else(|| {
        Route::ALL.iter().find_map(|r| {
            let fit = fit(r.path(), path).filter(|_| r.method() == method)?;
            Some(Recognised::Route(*r, fit.segment))
        })
    })
}

/// Every method and path the router answers, in table order.
pub(super) fn every() -> impl Iterator<Item = (Method, &'static str)> {
    let open = Open::ALL.iter().map(|r| (r.method(), r.path()));
    open.chain(Route::ALL.iter().map(|r| (r.method(), r.path())))
}

/// A path that fits a template.
struct Fit<'a> {
    /// What the path has where the template says `{...}`, if it does.
    segment: Option<&'a str>,
}

/// Whether `path` fits `template`: the same segments, any where the template says `{...}`.
fn fit<'a>(template: &str, path: &'a str) -> Option<Fit<'a>> {
    let (mut wanted, mut given) = (template.split('/'), path.split('/'));
    let mut segment = None;
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return Some(Fit { segment }),
            (Some(w), Some(g)) if w.starts_with('{') => segment = Some(g),
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every operation `openapi.json` documents, as (method, path).
    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(super::super::OPENAPI).unwrap();
        let mut operations = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if method != "parameters" {
                    operations.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        operations
    }

    fn routed() -> BTreeSet<(String, String)> {
        every()
            .map(|(method, path)| (method.to_string(), path.to_owned()))
            .collect()
    }

    /// Every row is documented with its method, and every documented operation is a row:
    /// a new route needs its entry in `openapi.json` for this to pass.
    #[test]
    fn the_table_and_the_document_name_the_same_operations() {
        let (routed, documented) = (routed(), documented());
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routed but not in src/api/openapi.json (document them): {undocumented:?}; \
             in src/api/openapi.json but not routed (add a row here): {unrouted:?}"
        );
    }

    /// Each row is reached by a request for its own path (its segment filled in), and by no
    /// other row: the table has no overlaps for the order of its rows to decide.
    #[test]
    fn each_path_recognises_its_own_row_only() {
        for (method, template) in every() {
            let path = template
                .split('/')
                .map(|s| if s.starts_with('{') { "x-1" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let fitting: Vec<_> = every()
                .filter(|(m, t)| *m == method && fit(t, &path).is_some())
                .map(|(_, t)| t)
                .collect();
            assert_eq!(fitting, [template], "{method} {path}");
            let recognised = match recognise(&method, &path) {
                Some(Recognised::Open(r)) => (r.path(), None),
                Some(Recognised::Route(r, filled)) => (r.path(), filled),
                None => panic!("{method} {path} is not recognised"),
            };
            let filled = template.contains('{').then_some("x-1");
            assert_eq!(recognised, (template, filled), "{method} {path}");
        }
    }

    #[test]
    fn other_methods_and_paths_are_not_routes() {
        assert_eq!(recognise(&Method::DELETE, "/v1/grants/g-1"), None);
        assert_eq!(recognise(&Method::GET, "/v1/grants/g-1/revoke"), None);
        assert_eq!(recognise(&Method::GET, "/v1/grants/g-1/x/y"), None);
        assert_eq!(recognise(&Method::GET, "/v2/health"), None);
        assert_eq!(
            recognise(&Method::GET, "/v1/health"),
            Some(Recognised::Open(Open::Health))
        );
        assert_eq!(
            recognise(&Method::POST, "/v1/users/bob/mfa/reset"),
            Some(Recognised::Route(Route::ResetMfa, Some("bob")))
        );
    }

    #[test]
    fn a_path_has_at_most_one_segment_to_fill() {
        for (method, template) in every() {
            assert!(
                template.matches('{').count() <= 1,
                "{method} {template}: the router hands each route one segment"
            );
        }
    }
}
