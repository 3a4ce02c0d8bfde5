//! Grants at work: the book of grants (every change to one a serialised update of its current
//! version, published to the transfers it cuts), the credentials derived for them, and the
//! usage metered against their limits. The plain data lives in [`crate::model`].

pub mod book;
pub mod credential;
pub mod usage;

pub use self::book::{Approval, BindError, Change, GrantError, Grants, LiveGrant, Revoked};
pub use self::credential::IssuedCredential;
