//! What the tests and the local demo need from the host, and getting it.
//!
//! The README's test command (`cargo test --workspace --all-targets`) must
//! pass on a fresh Debian machine that has only the Rust toolchain. Some
//! tests drive real host programs — Debian's OCF agents, `ip` and
//! `iptables` for the network faults, Chromium and ChromeDriver for the
//! dashboard — so instead of skipping (a skipped fault test proves
//! nothing) they call [`ensure`], which installs the
//! missing Debian packages when it runs as root with `apt-get`, and
//! otherwise fails with the exact command to run.
//!
//! Several test binaries run at once under `cargo test`; an exclusive
//! `flock` on one lock file makes them install one after the other, and
//! each re-checks after taking the lock, so a package is installed once.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// A Debian package and a file whose presence shows it is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPackage {
    /// Debian package name.
    pub package: &'static str,
    /// A file the package installs (absolute path), or a command name
    /// looked up in `PATH`, `/usr/sbin` and `/sbin`.
    pub provides: &'static str,
}

/// Debian's OCF resource agents (`ocf:heartbeat:Dummy` and friends).
pub const RESOURCE_AGENTS: HostPackage = HostPackage {
    package: "resource-agents",
    provides: "/usr/lib/ocf/resource.d/heartbeat/Dummy",
};

/// `ip`, for the per-node network namespaces of the fault tests.
pub const IPROUTE2: HostPackage = HostPackage {
    package: "iproute2",
    provides: "ip",
};

/// `iptables`, with which the fault tests cut links.
pub const IPTABLES: HostPackage = HostPackage {
    package: "iptables",
    provides: "iptables",
};

/// Debian's headless-capable Chromium, for the dashboard's browser tests.
pub const CHROMIUM: HostPackage = HostPackage {
    package: "chromium",
    provides: "/usr/bin/chromium",
};

/// Debian's ChromeDriver (the WebDriver server the browser tests drive
/// Chromium through); same version as [`CHROMIUM`].
pub const CHROMIUM_DRIVER: HostPackage = HostPackage {
    package: "chromium-driver",
    provides: "/usr/bin/chromedriver",
};

/// Why the host could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum HostPackageError {
    /// Packages are missing and could not be installed here.
    #[error(
        "missing host packages {packages}: {why}; install them with \
         `apt-get install -y {packages}` (as root) and run the tests again"
    )]
    Missing {
        /// The missing packages, space-separated.
        packages: String,
        /// What stopped the automatic installation.
        why: String,
    },
}

/// Where the test binaries of all crates serialise their installs.
const LOCK_FILE: &str = "/tmp/ha-manager-host-packages.lock";

/// Serialises the installs of the threads of one test binary (the file
/// lock below serialises processes).
static IN_PROCESS: Mutex<()> = Mutex::new(());

/// True when `pkg`'s marker file or command is present.
pub fn is_installed(pkg: &HostPackage) -> bool {
    find(pkg.provides).is_some()
}

/// Where `provides` is: the path itself when absolute, else the command
/// found in `PATH` or the sbin directories (root's tools live there even
/// when a test's `PATH` lacks them).
fn find(provides: &str) -> Option<PathBuf> {
    let p = Path::new(provides);
    if p.is_absolute() {
        return p.exists().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(provides))
        .find(|c| c.is_file())
}

/// Makes sure every package in `pkgs` is installed, installing the missing
/// ones with `apt-get` (needs root and network access to the Debian
/// mirror). Returns at once, without locking, when all are present.
pub fn ensure(pkgs: &[HostPackage]) -> Result<(), HostPackageError> {
    if pkgs.iter().all(is_installed) {
        return Ok(());
    }
    let _thread = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let missing = |pkgs: &[HostPackage]| -> Vec<&'static str> {
        pkgs.iter()
            .filter(|p| !is_installed(p))
            .map(|p| p.package)
            .collect()
    };
    let fail = |names: &[&str], why: String| HostPackageError::Missing {
        packages: names.join(" "),
        why,
    };
    let names = missing(pkgs);
    let lock = File::create(LOCK_FILE)
        .map_err(|e| fail(&names, format!("cannot open {LOCK_FILE}: {e}")))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| fail(&names, format!("cannot lock {LOCK_FILE}: {e}")))?;
    // Another test binary may have installed them while we waited.
    let names = missing(pkgs);
    if names.is_empty() {
        return Ok(());
    }
    if find("apt-get").is_none() {
        return Err(fail(&names, "apt-get is not available".into()));
    }
    eprintln!(
        "ha-manager tests: installing host packages {} with apt-get",
        names.join(" ")
    );
    apt_get(&["update", "-q"]).map_err(|why| fail(&names, why))?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&names);
    apt_get(&install).map_err(|why| fail(&names, why))?;
    let still = missing(pkgs);
    if !still.is_empty() {
        return Err(fail(
            &still,
            "apt-get succeeded but the packages' files are still missing".into(),
        ));
    }
    Ok(())
}

/// Runs `apt-get args` non-interactively; its output goes to our stderr
/// (shown by the test harness on failure).
fn apt_get(args: &[&str]) -> Result<(), String> {
    let out = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or("").trim();
    Err(format!(
        "`apt-get {}` failed ({}): {last} (are we root, and is a Debian mirror reachable?)",
        args.join(" "),
        out.status
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_file_or_command_counts_as_installed() {
        assert!(is_installed(&HostPackage {
            package: "x",
            provides: "/"
        }));
        assert!(is_installed(&HostPackage {
            package: "x",
            provides: "sh"
        }));
        assert!(!is_installed(&HostPackage {
            package: "x",
            provides: "/no/such/file/anywhere"
        }));
        assert!(ensure(&[]).is_ok());
    }

    #[test]
    fn the_error_names_the_packages_and_the_command() {
        let e = HostPackageError::Missing {
            packages: "a b".into(),
            why: "no apt".into(),
        };
        let s = e.to_string();
        assert!(s.contains("apt-get install -y a b"), "{s}");
        assert!(s.contains("no apt"), "{s}");
    }
}
