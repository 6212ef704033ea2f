//! The Linux watchdog device (`/dev/watchdog`) through its ioctl API.
//!
//! Opening the device starts the hardware timer; from then on the node
//! resets unless [`WatchdogDevice::keepalive`] is called within the device
//! timeout. Dropping a `WatchdogDevice` closes the file *without* the magic
//! close, so the timer keeps running and the node resets: only
//! [`WatchdogDevice::magic_close`] disarms it.

use nix::errno::Errno;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use thiserror::Error;

/// The default watchdog device path.
pub const DEFAULT_DEVICE_PATH: &str = "/dev/watchdog";
/// The default kernel module to load when the device is missing.
pub const DEFAULT_MODULE: &str = "softdog";

/// Length of the identity field of `struct watchdog_info`.
const IDENTITY_LEN: usize = 32;

/// `struct watchdog_info` from `<linux/watchdog.h>`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RawWatchdogInfo {
    /// `WDIOF_*` flags the driver supports.
    pub options: u32,
    /// Firmware version of the card.
    pub firmware_version: u32,
    /// NUL-padded driver identity.
    pub identity: [u8; IDENTITY_LEN],
}

mod ioctls {
    use super::RawWatchdogInfo;
    use nix::libc::c_int;

    const WATCHDOG_IOCTL_BASE: u8 = b'W';
    nix::ioctl_read!(get_support, WATCHDOG_IOCTL_BASE, 0, RawWatchdogInfo);
    nix::ioctl_read!(keepalive, WATCHDOG_IOCTL_BASE, 5, c_int);
    nix::ioctl_readwrite!(set_timeout, WATCHDOG_IOCTL_BASE, 6, c_int);
    nix::ioctl_read!(get_timeout, WATCHDOG_IOCTL_BASE, 7, c_int);
    nix::ioctl_read!(get_time_left, WATCHDOG_IOCTL_BASE, 10, c_int);
}

/// `WDIOF_*` support flags and their names, from `<linux/watchdog.h>`.
const SUPPORT_FLAGS: [(u32, &str); 11] = [
    (0x0001, "OVERHEAT"),
    (0x0002, "FANFAULT"),
    (0x0004, "EXTERN1"),
    (0x0008, "EXTERN2"),
    (0x0010, "POWERUNDER"),
    (0x0020, "CARDRESET"),
    (0x0040, "POWEROVER"),
    (0x0080, "SETTIMEOUT"),
    (0x0100, "MAGICCLOSE"),
    (0x0200, "PRETIMEOUT"),
    (0x8000, "KEEPALIVEPING"),
];
/// `WDIOF_SETTIMEOUT`.
pub const WDIOF_SETTIMEOUT: u32 = 0x0080;
/// `WDIOF_MAGICCLOSE`.
pub const WDIOF_MAGICCLOSE: u32 = 0x0100;

/// What the driver says about itself (`WDIOC_GETSUPPORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Driver identity, e.g. `Software Watchdog`.
    pub identity: String,
    /// Firmware version.
    pub firmware_version: u32,
    /// Raw `WDIOF_*` option flags.
    pub options: u32,
}

impl DeviceInfo {
    /// Builds the info from the raw kernel struct.
    pub fn from_raw(raw: &RawWatchdogInfo) -> Self {
        let end = raw
            .identity
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(IDENTITY_LEN);
        DeviceInfo {
            identity: String::from_utf8_lossy(&raw.identity[..end]).into_owned(),
            firmware_version: raw.firmware_version,
            options: raw.options,
        }
    }

    /// Names of the option flags the driver reports.
    pub fn option_names(&self) -> Vec<&'static str> {
        SUPPORT_FLAGS
            .iter()
            .filter(|(bit, _)| self.options & bit != 0)
            .map(|(_, name)| *name)
            .collect()
    }
}

/// Errors of the watchdog device.
#[derive(Debug, Error)]
pub enum DeviceError {
    /// The device node does not exist.
    #[error("watchdog device {path} does not exist (no watchdog driver loaded?)")]
    Missing {
        /// Device path.
        path: PathBuf,
    },
    /// The device node does not exist and loading the module did not help.
    #[error("watchdog device {path} does not exist and loading kernel module '{module}' failed: {reason}")]
    ModuleLoadFailed {
        /// Device path.
        path: PathBuf,
        /// Module name.
        module: String,
        /// What went wrong.
        reason: String,
    },
    /// Another process holds the device open (the kernel allows one opener).
    #[error("watchdog device {path} is busy: another process (another watchdog-mux or watchdog daemon?) has it open")]
    Busy {
        /// Device path.
        path: PathBuf,
    },
    /// The device could not be opened for another reason.
    #[error("cannot open watchdog device {path}: {source}")]
    Open {
        /// Device path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a watchdog device.
    #[error("{path} is not a watchdog device ({operation} failed: {errno})")]
    NotAWatchdog {
        /// Device path.
        path: PathBuf,
        /// The ioctl that failed.
        operation: &'static str,
        /// The errno.
        errno: Errno,
    },
    /// An ioctl failed.
    #[error("watchdog device {path}: {operation} failed: {errno}")]
    Ioctl {
        /// Device path.
        path: PathBuf,
        /// The ioctl that failed.
        operation: &'static str,
        /// The errno.
        errno: Errno,
    },
    /// A timeout the driver cannot represent was requested.
    #[error("watchdog device {path}: invalid timeout {seconds} s: {reason}")]
    InvalidTimeout {
        /// Device path.
        path: PathBuf,
        /// The requested seconds.
        seconds: u64,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// Writing the magic close byte failed.
    #[error("watchdog device {path}: magic close failed: {source}")]
    MagicClose {
        /// Device path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// An open watchdog device. Open means armed.
#[derive(Debug)]
pub struct WatchdogDevice {
    file: File,
    path: PathBuf,
}

impl WatchdogDevice {
    /// Opens the device at `path`. This starts the hardware timer.
    pub fn open(path: &Path) -> Result<Self, DeviceError> {
        match OpenOptions::new().write(true).open(path) {
            Ok(file) => Ok(WatchdogDevice {
                file,
                path: path.to_path_buf(),
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(DeviceError::Missing {
                path: path.to_path_buf(),
            }),
            Err(err) if err.raw_os_error() == Some(Errno::EBUSY as i32) => Err(DeviceError::Busy {
                path: path.to_path_buf(),
            }),
            Err(source) => Err(DeviceError::Open {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Opens the device; if it is missing and `module` is given, first runs
    /// `modprobe <module>` and then tries once more.
    pub fn open_loading_module(path: &Path, module: Option<&str>) -> Result<Self, DeviceError> {
        match (Self::open(path), module) {
            (Err(DeviceError::Missing { .. }), Some(module)) => {
                load_module(module).map_err(|reason| DeviceError::ModuleLoadFailed {
                    path: path.to_path_buf(),
                    module: module.to_string(),
                    reason,
                })?;
                Self::open(path).map_err(|err| match err {
                    DeviceError::Missing { path } => DeviceError::ModuleLoadFailed {
                        path,
                        module: module.to_string(),
                        reason: "modprobe succeeded but the device node is still missing"
                            .to_string(),
                    },
                    other => other,
                })
            }
            (result, _) => result,
        }
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn ioctl_error(&self, operation: &'static str, errno: Errno) -> DeviceError {
        if errno == Errno::ENOTTY {
            DeviceError::NotAWatchdog {
                path: self.path.clone(),
                operation,
                errno,
            }
        } else {
            DeviceError::Ioctl {
                path: self.path.clone(),
                operation,
                errno,
            }
        }
    }

    /// The driver identity and option flags (`WDIOC_GETSUPPORT`).
    pub fn support(&self) -> Result<DeviceInfo, DeviceError> {
        let mut raw = RawWatchdogInfo::default();
        // SAFETY: the fd is open for the lifetime of `self.file`, and `raw`
        // is a live, correctly laid out `struct watchdog_info` that the
        // kernel fills in.
        unsafe { ioctls::get_support(self.file.as_raw_fd(), &mut raw) }
            .map_err(|errno| self.ioctl_error("WDIOC_GETSUPPORT", errno))?;
        Ok(DeviceInfo::from_raw(&raw))
    }

    /// Sets the timeout (`WDIOC_SETTIMEOUT`) and returns the timeout the
    /// driver actually applied, which may differ.
    pub fn set_timeout(&self, seconds: u64) -> Result<u32, DeviceError> {
        let requested =
            i32::try_from(seconds)
                .ok()
                .filter(|s| *s > 0)
                .ok_or(DeviceError::InvalidTimeout {
                    path: self.path.clone(),
                    seconds,
                    reason: "must be between 1 and 2^31-1 seconds",
                })?;
        let mut value = requested;
        // SAFETY: the fd is open; `value` is a live c_int the kernel reads
        // and overwrites with the applied timeout.
        unsafe { ioctls::set_timeout(self.file.as_raw_fd(), &mut value) }
            .map_err(|errno| self.ioctl_error("WDIOC_SETTIMEOUT", errno))?;
        self.timeout()
    }

    /// The current timeout in seconds (`WDIOC_GETTIMEOUT`).
    pub fn timeout(&self) -> Result<u32, DeviceError> {
        let mut value: nix::libc::c_int = 0;
        // SAFETY: the fd is open; `value` is a live c_int the kernel writes.
        unsafe { ioctls::get_timeout(self.file.as_raw_fd(), &mut value) }
            .map_err(|errno| self.ioctl_error("WDIOC_GETTIMEOUT", errno))?;
        u32::try_from(value).map_err(|_| DeviceError::Ioctl {
            path: self.path.clone(),
            operation: "WDIOC_GETTIMEOUT (negative result)",
            errno: Errno::EINVAL,
        })
    }

    /// Seconds left before the device resets the node
    /// (`WDIOC_GETTIMELEFT`); many drivers do not support it.
    pub fn time_left(&self) -> Result<u32, DeviceError> {
        let mut value: nix::libc::c_int = 0;
        // SAFETY: the fd is open; `value` is a live c_int the kernel writes.
        unsafe { ioctls::get_time_left(self.file.as_raw_fd(), &mut value) }
            .map_err(|errno| self.ioctl_error("WDIOC_GETTIMELEFT", errno))?;
        Ok(u32::try_from(value).unwrap_or(0))
    }

    /// Restarts the device timer (`WDIOC_KEEPALIVE`).
    pub fn keepalive(&self) -> Result<(), DeviceError> {
        let mut ignored: nix::libc::c_int = 0;
        // SAFETY: the fd is open; the kernel ignores the argument of
        // WDIOC_KEEPALIVE but we still pass a live c_int.
        unsafe { ioctls::keepalive(self.file.as_raw_fd(), &mut ignored) }
            .map_err(|errno| self.ioctl_error("WDIOC_KEEPALIVE", errno))?;
        Ok(())
    }

    /// Disarms the device: writes the magic byte 'V', then closes it.
    ///
    /// Drivers without `MAGICCLOSE` support, or built with `nowayout`, keep
    /// the timer running regardless.
    pub fn magic_close(mut self) -> Result<(), DeviceError> {
        self.file
            .write_all(b"V")
            .and_then(|()| self.file.flush())
            .map_err(|source| DeviceError::MagicClose {
                path: self.path.clone(),
                source,
            })
    }
}

/// Runs `modprobe <module>`; the error is a readable reason.
fn load_module(module: &str) -> Result<(), String> {
    let valid = !module.is_empty()
        && module
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(format!(
            "invalid module name '{module}' (allowed: letters, digits, '_', '-')"
        ));
    }
    let output = Command::new("modprobe")
        .arg("--")
        .arg(module)
        .output()
        .map_err(|err| format!("cannot run modprobe: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "modprobe exited with {}: {}",
            output.status,
            stderr.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        let err = WatchdogDevice::open(&path).unwrap_err();
        assert!(matches!(err, DeviceError::Missing { .. }));
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn failing_module_load_is_a_clean_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        let err = WatchdogDevice::open_loading_module(&path, Some("ha-manager-no-such-module"))
            .unwrap_err();
        assert!(matches!(err, DeviceError::ModuleLoadFailed { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("ha-manager-no-such-module"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    #[test]
    fn module_names_are_validated_before_running_modprobe() {
        let err = load_module("softdog; reboot").unwrap_err();
        assert!(err.contains("invalid module name"), "{err}");
        assert!(load_module("").is_err());
    }

    #[test]
    fn a_regular_file_is_not_a_watchdog() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let device = WatchdogDevice::open(file.path()).unwrap();
        let err = device.support().unwrap_err();
        assert!(matches!(err, DeviceError::NotAWatchdog { .. }), "{err}");
        assert!(err.to_string().contains("WDIOC_GETSUPPORT"));
        assert!(matches!(
            device.keepalive(),
            Err(DeviceError::NotAWatchdog { .. })
        ));
        assert!(matches!(
            device.timeout(),
            Err(DeviceError::NotAWatchdog { .. })
        ));
    }

    #[test]
    fn zero_timeout_is_rejected_before_the_ioctl() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let device = WatchdogDevice::open(file.path()).unwrap();
        assert!(matches!(
            device.set_timeout(0),
            Err(DeviceError::InvalidTimeout { .. })
        ));
        assert!(matches!(
            device.set_timeout(u64::MAX),
            Err(DeviceError::InvalidTimeout { .. })
        ));
    }

    #[test]
    fn device_info_parses_identity_and_flags() {
        let mut raw = RawWatchdogInfo {
            options: WDIOF_SETTIMEOUT | WDIOF_MAGICCLOSE | 0x8000,
            firmware_version: 0,
            identity: [0; IDENTITY_LEN],
        };
        raw.identity[..17].copy_from_slice(b"Software Watchdog");
        let info = DeviceInfo::from_raw(&raw);
        assert_eq!(info.identity, "Software Watchdog");
        assert_eq!(
            info.option_names(),
            vec!["SETTIMEOUT", "MAGICCLOSE", "KEEPALIVEPING"]
        );
    }

    #[test]
    fn ioctl_numbers_match_linux_watchdog_h() {
        // Values of the WDIOC_* macros on Linux (asm-generic ioctl encoding).
        let int = std::mem::size_of::<nix::libc::c_int>();
        let info = std::mem::size_of::<RawWatchdogInfo>();
        assert_eq!(nix::request_code_read!(b'W', 0, info) as u32, 0x8028_5700);
        assert_eq!(nix::request_code_read!(b'W', 5, int) as u32, 0x8004_5705);
        assert_eq!(
            nix::request_code_readwrite!(b'W', 6, int) as u32,
            0xc004_5706
        );
        assert_eq!(nix::request_code_read!(b'W', 7, int) as u32, 0x8004_5707);
        assert_eq!(nix::request_code_read!(b'W', 10, int) as u32, 0x8004_570a);
    }

    #[test]
    fn raw_info_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<RawWatchdogInfo>(), 40);
    }

    /// Exercises a real device when one is offered:
    /// `WATCHDOG_TEST_DEVICE=/dev/watchdog1 cargo test -p watchdog real_device`.
    /// It sets a 30 s timeout, feeds it, and magic-closes it.
    #[test]
    fn real_device_when_offered() {
        let Some(path) = std::env::var_os("WATCHDOG_TEST_DEVICE") else {
            eprintln!("skipped: set WATCHDOG_TEST_DEVICE to test a real watchdog device");
            return;
        };
        let device = WatchdogDevice::open(Path::new(&path)).unwrap();
        let info = device.support().unwrap();
        eprintln!("device {info:?} flags {:?}", info.option_names());
        if info.options & WDIOF_SETTIMEOUT != 0 {
            assert!(device.set_timeout(30).unwrap() >= 1);
        }
        device.keepalive().unwrap();
        device.magic_close().unwrap();
    }
}
