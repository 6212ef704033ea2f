//! What a SIGTERM means for the LRM: a plain daemon stop (services are
//! frozen and keep running, spec 4.7) or a node shutdown/reboot (the
//! shutdown policy applies, spec 3.17). systemd tells which through the
//! jobs it has queued while the system goes down.

use std::process::Command;

use crate::lrm::NodeShutdown;

/// Classifies `systemctl list-jobs` output: a queued poweroff/halt target
/// means a shutdown, a reboot/kexec target a reboot.
pub fn classify_jobs(jobs: &str) -> NodeShutdown {
    let mut kind = NodeShutdown::None;
    for line in jobs.lines() {
        let unit = line.split_whitespace().nth(1).unwrap_or("");
        match unit {
            "reboot.target" | "kexec.target" | "soft-reboot.target" => return NodeShutdown::Reboot,
            "poweroff.target" | "halt.target" => kind = NodeShutdown::Shutdown,
            "shutdown.target" if kind == NodeShutdown::None => kind = NodeShutdown::Shutdown,
            _ => {}
        }
    }
    kind
}

/// Environment variable naming the `systemctl` to ask (default: the one
/// on PATH); the multi-node tests point it at a script, as no systemd runs
/// there.
pub const SYSTEMCTL_ENV: &str = "HA_MANAGER_SYSTEMCTL";

/// Asks systemd whether the node is going down. Without systemd (tests,
/// containers) a SIGTERM is a daemon stop.
pub fn node_shutdown_kind() -> NodeShutdown {
    let systemctl = std::env::var_os(SYSTEMCTL_ENV).unwrap_or_else(|| "systemctl".into());
    match Command::new(systemctl)
        .args(["list-jobs", "--no-legend", "--plain"])
        .output()
    {
        Ok(out) if out.status.success() => classify_jobs(&String::from_utf8_lossy(&out.stdout)),
        _ => NodeShutdown::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_targets_decide_the_kind() {
        assert_eq!(classify_jobs(""), NodeShutdown::None);
        assert_eq!(
            classify_jobs("12 nginx.service stop running\n"),
            NodeShutdown::None
        );
        assert_eq!(
            classify_jobs("1 poweroff.target start waiting\n2 shutdown.target start waiting\n"),
            NodeShutdown::Shutdown
        );
        assert_eq!(
            classify_jobs("2 shutdown.target start waiting\n3 reboot.target start waiting\n"),
            NodeShutdown::Reboot
        );
    }
}
