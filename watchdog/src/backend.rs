//! What the mux feeds: the real watchdog device, or the test backend.
//!
//! Both behave like a watchdog: armed from creation, they fire unless
//! [`Backend::keepalive`] is called within the device timeout. The mux
//! fences the node by the one thing it can always do: stop calling
//! `keepalive`.

use crate::device::{DeviceError, WatchdogDevice, WDIOF_SETTIMEOUT};
use crate::test_backend::TestBackendError;
use std::time::Duration;
use thiserror::Error;

/// Errors of a backend.
#[derive(Debug, Error)]
pub enum BackendError {
    /// The watchdog device failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The test backend failed.
    #[error(transparent)]
    Test(#[from] TestBackendError),
}

/// A watchdog the mux keeps alive.
pub trait Backend: Send {
    /// A one-line description for the logs.
    fn describe(&self) -> String;

    /// How long after the last keepalive the backend fires (resets the node).
    fn timeout(&self) -> Duration;

    /// Restarts the backend's timer.
    fn keepalive(&mut self) -> Result<(), BackendError>;

    /// Disarms cleanly (magic close). Only called with no armed clients and
    /// no fence.
    fn disarm(self: Box<Self>) -> Result<(), BackendError>;

    /// The mux exits while it must not disarm (armed clients, or fenced):
    /// makes sure the node is reset although the mux is gone.
    fn abandon(self: Box<Self>);
}

/// The Linux watchdog device as a backend.
#[derive(Debug)]
pub struct DeviceBackend {
    device: WatchdogDevice,
    timeout: Duration,
    description: String,
}

impl DeviceBackend {
    /// Opens the device (loading `module` first if the node is missing),
    /// sets its timeout to `timeout_secs` where the driver allows it, and
    /// reads back the timeout the driver applied.
    pub fn open(
        path: &std::path::Path,
        module: Option<&str>,
        timeout_secs: u64,
    ) -> Result<Self, DeviceError> {
        let device = WatchdogDevice::open_loading_module(path, module)?;
        // The device is armed now. No client has armed the mux yet (and
        // the caller checked that no reset is pending), so a setup error
        // disarms it again instead of resetting a node for a typo.
        match Self::configure(&device, path, timeout_secs) {
            Ok((timeout, description)) => Ok(DeviceBackend {
                device,
                timeout,
                description,
            }),
            Err(err) => {
                if let Err(close_err) = device.magic_close() {
                    tracing::error!(%close_err, "cannot disarm the watchdog after a setup error; the node may reset");
                } else {
                    tracing::warn!("watchdog disarmed after a setup error (drivers built with nowayout still reset the node)");
                }
                Err(err)
            }
        }
    }

    fn configure(
        device: &WatchdogDevice,
        path: &std::path::Path,
        timeout_secs: u64,
    ) -> Result<(Duration, String), DeviceError> {
        let info = device.support()?;
        let applied = if info.options & WDIOF_SETTIMEOUT != 0 {
            device.set_timeout(timeout_secs)?
        } else {
            tracing::warn!(
                device = %path.display(),
                "driver cannot set its timeout; using its fixed timeout"
            );
            device.timeout()?
        };
        if u64::from(applied) != timeout_secs {
            tracing::warn!(
                requested = timeout_secs,
                applied,
                "driver adjusted the watchdog timeout"
            );
        }
        device.keepalive()?;
        let description = format!(
            "watchdog device {} (identity '{}', firmware {}, flags {:?}, timeout {} s)",
            path.display(),
            info.identity,
            info.firmware_version,
            info.option_names(),
            applied
        );
        Ok((Duration::from_secs(u64::from(applied)), description))
    }
}

impl Backend for DeviceBackend {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn keepalive(&mut self) -> Result<(), BackendError> {
        Ok(self.device.keepalive()?)
    }

    fn disarm(self: Box<Self>) -> Result<(), BackendError> {
        Ok(self.device.magic_close()?)
    }

    fn abandon(self: Box<Self>) {
        // Closing without the magic byte leaves the timer running: the
        // hardware resets the node within `timeout`.
        drop(self.device);
    }
}
