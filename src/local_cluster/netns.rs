//! One network namespace per local node, joined by a bridge in the root
//! namespace, and the packet filters the fault tests use (partitions).
//!
//! Layout of one cluster (`P` = this process's id in base 36, `C` = the
//! cluster's counter in base 36, `k` = node number):
//!
//! ```text
//!  root namespace                         namespace hf-<pid>-<C>-node<k>
//!  bridge hfbPxC  10.A.B.1/24  ── veth hfvPxCn<k> ═══ eth0 10.A.B.(10+k)/24
//! ```
//!
//! The test process reaches every node through the bridge; the nodes reach
//! each other through it. The nodes have no default route: nothing they
//! send can leave the bridge. `10.A.B` is chosen per cluster among the
//! prefixes no interface or route of the machine uses yet.
//!
//! Faults are iptables rules inside the node namespaces (DROP by source or
//! destination address), so they never touch the root namespace's rules;
//! [`ClusterNet::heal`] flushes them, and dropping the [`ClusterNet`]
//! deletes the namespaces (with their rules and veth ends) and the bridge.
//! Every command run here is bounded in time.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::LocalClusterError;

/// How long one `ip` or `iptables` command may take (iptables waits for
/// the machine-wide xtables lock, which other tests may hold).
const COMMAND_LIMIT: Duration = Duration::from_secs(20);
/// The port every node listens on inside its namespace.
pub const NODE_PORT: u16 = 7400;

/// `ip` (iproute2).
const IP: &str = "ip";
/// `iptables` (the nf_tables backend is fine: rules live per namespace).
const IPTABLES: &str = "iptables";

/// The output of a bounded command.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `program args`, killing it (by pid) if it outlives `limit`.
fn run_bounded(program: &str, args: &[&str], limit: Duration) -> Result<Ran, LocalClusterError> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LocalClusterError::Io {
            what: format!("running {program} (is it installed?)"),
            source,
        })?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let result = match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(_) => {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = waiter.join();
            return Err(LocalClusterError::Net(format!(
                "{program} {} took longer than {limit:?} and was killed",
                args.join(" ")
            )));
        }
    };
    let _ = waiter.join();
    let out = result.map_err(|source| LocalClusterError::Io {
        what: format!("waiting for {program}"),
        source,
    })?;
    Ok(Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs a command that must succeed.
fn must(program: &str, args: &[&str]) -> Result<String, LocalClusterError> {
    let ran = run_bounded(program, args, COMMAND_LIMIT)?;
    if ran.ok {
        Ok(ran.stdout)
    } else {
        Err(LocalClusterError::Net(format!(
            "{program} {} failed: {}",
            args.join(" "),
            ran.stderr.trim()
        )))
    }
}

/// Best effort (clean-up): errors are ignored.
fn quietly(program: &str, args: &[&str]) {
    let _ = run_bounded(program, args, COMMAND_LIMIT);
}

/// `n` in base 36 (lower case), for short interface names.
fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[usize::try_from(n % 36).unwrap_or(0)]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// The names of one cluster's network objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetNames {
    /// The bridge in the root namespace.
    pub bridge: String,
    /// Per node: (namespace name, root-side veth name).
    pub nodes: Vec<(String, String)>,
}

impl NetNames {
    /// The names for cluster `cluster` of process `pid` with `nodes`
    /// nodes. Interface names stay within the kernel's 15 characters.
    pub fn new(pid: u32, cluster: u64, nodes: usize) -> Self {
        let p = base36(u64::from(pid));
        let c = base36(cluster);
        NetNames {
            bridge: format!("hfb{p}x{c}"),
            nodes: (1..=nodes)
                .map(|k| {
                    (
                        format!("hf-{pid}-{cluster}-node{k}"),
                        format!("hfv{p}x{c}n{k}"),
                    )
                })
                .collect(),
        }
    }
}

/// Picks a `10.A.B.0/24` that no address or route of the machine uses,
/// starting from one derived from the pid and the cluster counter.
fn free_subnet(pid: u32, cluster: u64) -> Result<[u8; 3], LocalClusterError> {
    let addrs = must(IP, &["-o", "-4", "addr", "show"])?;
    let routes = must(IP, &["-4", "route", "show", "table", "all"])?;
    let start = u64::from(pid)
        .wrapping_mul(131)
        .wrapping_add(cluster.wrapping_mul(7919));
    for step in 0..2000u64 {
        let h = start.wrapping_add(step.wrapping_mul(257));
        let a = 200 + u8::try_from(h % 50).unwrap_or(0);
        let b = u8::try_from((h / 50) % 256).unwrap_or(0);
        let prefix = format!("10.{a}.{b}.");
        let used = addrs.contains(&format!("inet {prefix}"))
            || routes
                .lines()
                .any(|l| l.starts_with(&prefix) || l.contains(&format!(" {prefix}")));
        if !used {
            return Ok([10, a, b]);
        }
    }
    Err(LocalClusterError::Net(
        "no free 10.x.y.0/24 subnet for the cluster bridge".into(),
    ))
}

/// One node's namespace.
#[derive(Debug, Clone)]
pub struct NodeNet {
    /// The namespace name (`ip netns` name).
    pub ns: String,
    /// The root-side veth.
    pub veth: String,
    /// The node's address.
    pub ip: Ipv4Addr,
}

impl NodeNet {
    /// The namespace file (what `nsenter --net=` takes).
    pub fn ns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.ns)
    }
}

/// The network of one cluster; deleted on drop.
#[derive(Debug)]
pub struct ClusterNet {
    bridge: String,
    host_ip: Ipv4Addr,
    nodes: Vec<NodeNet>,
    /// What was created, so a failed set-up still cleans up.
    bridge_made: bool,
}

impl ClusterNet {
    /// Makes the bridge and one namespace per node, for cluster number
    /// `cluster` of this process. Needs root, `ip` and `iptables`.
    /// Installs `iproute2`/`iptables` first when they are missing (see
    /// [`crate::host_packages`]).
    pub fn create(cluster: u64, nodes: usize) -> Result<Self, LocalClusterError> {
        use crate::host_packages::{ensure, IPROUTE2, IPTABLES};
        ensure(&[IPROUTE2, IPTABLES]).map_err(|e| LocalClusterError::Net(e.to_string()))?;
        let pid = std::process::id();
        let names = NetNames::new(pid, cluster, nodes);
        // Objects with exactly these names can only be left-overs of a
        // dead process that had our pid: remove them.
        for (ns, veth) in &names.nodes {
            quietly(IP, &["netns", "del", ns]);
            quietly(IP, &["link", "del", veth]);
        }
        quietly(IP, &["link", "del", &names.bridge]);
        let [a, b, c] = free_subnet(pid, cluster)?;
        let host_ip = Ipv4Addr::new(a, b, c, 1);
        let mut net = ClusterNet {
            bridge: names.bridge.clone(),
            host_ip,
            nodes: Vec::new(),
            bridge_made: false,
        };
        must(IP, &["link", "add", &names.bridge, "type", "bridge"])?;
        net.bridge_made = true;
        must(
            IP,
            &[
                "addr",
                "add",
                &format!("{host_ip}/24"),
                "dev",
                &names.bridge,
            ],
        )?;
        must(IP, &["link", "set", &names.bridge, "up"])?;
        for (k, (ns, veth)) in names.nodes.iter().enumerate() {
            let ip = Ipv4Addr::new(a, b, c, 11 + u8::try_from(k).unwrap_or(0));
            must(IP, &["netns", "add", ns])?;
            net.nodes.push(NodeNet {
                ns: ns.clone(),
                veth: veth.clone(),
                ip,
            });
            must(
                IP,
                &[
                    "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
                ],
            )?;
            must(IP, &["link", "set", veth, "master", &names.bridge, "up"])?;
            must(IP, &["-n", ns, "link", "set", "lo", "up"])?;
            must(
                IP,
                &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
            )?;
            must(IP, &["-n", ns, "link", "set", "eth0", "up"])?;
        }
        Ok(net)
    }

    /// The bridge's address (the test process's address on the network).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// The bridge's name.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// Node `i`'s namespace.
    pub fn node(&self, i: usize) -> &NodeNet {
        &self.nodes[i]
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Runs `iptables -w 10 <args>` inside node `i`'s namespace.
    fn iptables(&self, i: usize, args: &[&str]) -> Result<(), LocalClusterError> {
        let mut all = vec!["netns", "exec", &self.nodes[i].ns, IPTABLES, "-w", "10"];
        all.extend_from_slice(args);
        must(IP, &all).map(|_| ())
    }

    /// Node `i` neither sends to nor receives from any other node (the
    /// test process, on the bridge address, still reaches it).
    pub fn partition(&self, i: usize) -> Result<(), LocalClusterError> {
        for j in 0..self.nodes.len() {
            if j == i {
                continue;
            }
            let other = self.nodes[j].ip.to_string();
            self.iptables(i, &["-A", "INPUT", "-s", &other, "-j", "DROP"])?;
            self.iptables(i, &["-A", "OUTPUT", "-d", &other, "-j", "DROP"])?;
        }
        Ok(())
    }

    /// Packets from node `from` to node `to` are dropped (in `from`'s
    /// OUTPUT chain); the other direction still flows. With TCP this also
    /// stalls connections `to` opens to `from` (their replies are lost).
    pub fn partition_one_way(&self, from: usize, to: usize) -> Result<(), LocalClusterError> {
        let dst = self.nodes[to].ip.to_string();
        self.iptables(from, &["-A", "OUTPUT", "-d", &dst, "-j", "DROP"])
    }

    /// Removes every fault rule of every node.
    pub fn heal(&self) -> Result<(), LocalClusterError> {
        let mut first_error = None;
        for i in 0..self.nodes.len() {
            for chain in ["INPUT", "OUTPUT"] {
                if let Err(e) = self.iptables(i, &["-F", chain]) {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The fault rules now in node `i`'s namespace (`iptables -S`).
    pub fn rules(&self, i: usize) -> Result<Vec<String>, LocalClusterError> {
        let ns = &self.nodes[i].ns;
        let out = must(IP, &["netns", "exec", ns, IPTABLES, "-w", "10", "-S"])?;
        Ok(out
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(str::to_string)
            .collect())
    }
}

impl Drop for ClusterNet {
    fn drop(&mut self) {
        let started = Instant::now();
        for node in &self.nodes {
            // Deleting the namespace deletes its veth end, which deletes
            // the pair; the explicit link delete covers a namespace that
            // a leftover process still keeps alive.
            quietly(IP, &["netns", "del", &node.ns]);
            quietly(IP, &["link", "del", &node.veth]);
        }
        if self.bridge_made {
            quietly(IP, &["link", "del", &self.bridge]);
        }
        tracing::debug!(took = ?started.elapsed(), bridge = %self.bridge, "cluster network removed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limit_and_are_unique() {
        let names = NetNames::new(4_194_304, 1295, 9);
        assert!(names.bridge.len() <= 15, "{}", names.bridge);
        for (ns, veth) in &names.nodes {
            assert!(veth.len() <= 15, "{veth}");
            assert!(ns.starts_with("hf-4194304-1295-node"));
        }
        let other = NetNames::new(4_194_304, 1296, 9);
        assert_ne!(names.bridge, other.bridge);
        assert_ne!(names.nodes[0].1, other.nodes[0].1);
        let mut all: Vec<&String> = names.nodes.iter().map(|(_, v)| v).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 9);
    }

    #[test]
    fn base36_digits() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(4_194_304), "2hwcg");
    }

    #[test]
    fn a_command_that_hangs_is_killed_in_time() {
        let t = Instant::now();
        let r = run_bounded("sleep", &["30"], Duration::from_millis(300));
        assert!(matches!(r, Err(LocalClusterError::Net(_))));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
