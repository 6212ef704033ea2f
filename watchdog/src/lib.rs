//! Self-fencing for ha-manager.
//!
//! - [`device`]: the Linux watchdog device through its ioctl API.
//! - [`backend`] and [`test_backend`]: what watchdog-mux keeps alive.
//! - [`mux`]: the watchdog-mux daemon (binary `watchdog-mux`).
//! - [`client`]: the blocking client the LRM uses.
//! - [`protocol`]: the wire format between them.
//!
//! The timing rule that ties the mux and device timeouts to the lease ttl
//! lives in one place, the `lease` crate (`TimingProfile::check`), which
//! the daemon applies to the mux it connects to.
//!
//! See the crate README for the protocol and how to test.

#![deny(missing_docs)]

pub mod backend;
pub mod civil;
pub mod client;
pub mod device;
pub mod duration;
pub mod mux;
pub mod protocol;
pub mod test_backend;

pub use client::{ClientError, WatchdogClient};
