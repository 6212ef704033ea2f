//! Raft RPCs and forwarded client requests over HTTP.
//!
//! - [`wire`]: message envelope (format version + postcard), the
//!   forwarded-request types and the authentication header.
//! - [`client`]: the openraft network (reqwest) plus the forwarding client.
//! - [`server`]: the axum router served under `/raft`.

pub mod client;
pub mod server;
pub mod wire;
