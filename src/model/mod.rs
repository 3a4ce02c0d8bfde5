//! Plain data: grants, scopes, access requests (their state machine), share links and users,
//! as the store keeps them and every layer above reads them. Nothing here does I/O or knows
//! about the store, the trail or the S3 front end; it sits beneath them all.

pub mod grant;
pub mod request;
pub mod scope;
pub mod share;
pub mod user;

pub use self::grant::{Credential, Grant, GrantState, Limits};
pub use self::scope::{Action, KeyScope, Scope};
pub use self::share::{Share, ShareState};
pub use self::user::{LocalUser, Principal, TotpEnrolment};

#[cfg(test)]
pub(crate) use self::grant::example_grant;
