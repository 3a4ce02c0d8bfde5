//! Sesame: a just-in-time access gateway for S3 object storage. People get narrow,
//! short-lived grants; the gateway checks every S3 request against them and streams objects
//! to and from the real backend.

pub mod api;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod desk;
pub mod duration;
pub mod feed;
pub mod grant;
pub mod http;
pub mod identity;
#[cfg(test)]
mod layers;
pub mod listen;
pub mod model;
pub mod notify;
pub mod policy;
pub mod record;
pub mod report;
pub mod s3;
pub mod schedule;
pub mod secret;
pub mod server;
pub mod share;
pub mod store;
pub mod tls;
