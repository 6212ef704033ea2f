//! One cgroup per local node: the test watchdog backend kills every member
//! of a node's cgroup when the node's watchdog expires, which is the local
//! stand-in for a hardware reset (the daemon and every service it started,
//! whatever their process group).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::LocalClusterError;

/// Where cgroups can be made, in order of preference: the cgroup v2
/// hierarchy (hybrid or unified layout), else the v1 freezer hierarchy
/// (its `cgroup.procs` is enough for the test backend's kill loop).
const CANDIDATE_ROOTS: [&str; 3] = [
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup",
    "/sys/fs/cgroup/freezer",
];

/// A cgroup made for one local node; removed (after killing its members)
/// on drop.
#[derive(Debug)]
pub struct NodeCgroup {
    path: PathBuf,
}

impl NodeCgroup {
    /// Creates the cgroup `name` under the first usable hierarchy.
    pub fn create(name: &str) -> Result<Self, LocalClusterError> {
        let mut tried = Vec::new();
        for root in CANDIDATE_ROOTS {
            let root = Path::new(root);
            if !root.join("cgroup.procs").is_file() {
                continue;
            }
            let path = root.join(name);
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(NodeCgroup { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let cg = NodeCgroup { path };
                    cg.kill_members();
                    return Ok(cg);
                }
                Err(e) => tried.push(format!("{}: {e}", path.display())),
            }
        }
        Err(LocalClusterError::Cgroup(format!(
            "no cgroup hierarchy is writable (needs root): {}",
            if tried.is_empty() {
                "no hierarchy mounted under /sys/fs/cgroup".to_string()
            } else {
                tried.join("; ")
            }
        )))
    }

    /// The cgroup directory (what `watchdog-mux --protect-cgroup` takes).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves process `pid` into this cgroup.
    pub fn add(&self, pid: u32) -> Result<(), LocalClusterError> {
        let file = self.path.join("cgroup.procs");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|mut f| f.write_all(pid.to_string().as_bytes()))
            .map_err(|e| {
                LocalClusterError::Cgroup(format!("{}: adding {pid}: {e}", file.display()))
            })
    }

    /// The processes in this cgroup now.
    pub fn members(&self) -> Vec<u32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Whether `pid` is in this cgroup.
    pub fn contains(&self, pid: u32) -> bool {
        self.members().contains(&pid)
    }

    /// SIGKILLs every member, repeatedly, until none is left (bounded).
    pub fn kill_members(&self) {
        for _ in 0..50 {
            let members = self.members();
            if members.is_empty() {
                return;
            }
            for pid in members {
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeCgroup {
    fn drop(&mut self) {
        self.kill_members();
        // A killed process leaves the cgroup only once reaped; retry.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
