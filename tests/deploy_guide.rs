//! The deploy guide, executed: every command of `examples/deploy/README.md`
//! (and, through it, `examples/deploy/resources.sh`) runs here, in the
//! guide's order, against three real daemons on loopback, so the guide
//! cannot drift from the code.
//!
//! How the guide is read (the convention is stated in the guide itself):
//! - only ```` ```sh ```` blocks are commands; other blocks (config files,
//!   journal excerpts, tables) are not run;
//! - a line `nodeN# command` runs `command` on node N; the lines after it,
//!   up to the next command, are its sample output;
//! - in a section whose `##` heading says "(every node)", lines without a
//!   prompt are commands run on node1, node2 and node3 in turn;
//! - a trailing `\` continues a command on the next line.
//!
//! Sample output is compared by shape: whitespace runs count as one space,
//! a run of digits not preceded by a letter matches any number (ids,
//! terms, ports, timestamps), `...` matches anything and `<word>` one
//! word. Every sample line must match a real line, in order, and every
//! real line must match a sample line, unless the sample has a line that is
//! only `...`. Read-only commands are retried until they match (the
//! cluster converges), for at most [`CONVERGE`].
//!
//! What is substituted (in commands, sample output and the node*.toml
//! files; see [`Substitutions`]): the guide's addresses become each node's
//! loopback address; `/etc/ha-manager`, `/var/lib/ha-manager` and the mux's
//! `/run` paths become the node's directory under a temp dir (the layout
//! `ha_manager::local_cluster` uses); `/etc/systemd/system` and
//! `/usr/local/bin` live under the temp dir; `target/release/` is the
//! directory of the binaries cargo built for this test; `<token>` is the
//! join token `cluster init` (or the last `cluster join-token create`)
//! printed, `<token-id>` its id; the CLI gets `HA_MANAGER_CONFIG` (the
//! default `/etc/ha-manager/node.toml` does not exist here);
//! `journalctl -u X -b` reads the node's log file of X; the floating IP's
//! agent, address and interface in sample output are the ones the test
//! gives `resources.sh` (`heartbeat/Dummy`, 127.0.0.100, `lo`).
//!
//! What is started instead of systemd (see [`Run::action`]): `systemctl enable
//! --now watchdog-mux` starts the node's watchdog-mux with the test backend
//! protecting the node's cgroup, with the `--device-timeout` of the guide's
//! drop-in; `systemctl enable --now|start ha-manager` starts the installed
//! `ha-manager daemon --config <node.toml>` in that cgroup (the unit's
//! `ExecStart`, checked); `systemctl stop ha-manager` is a SIGTERM with the
//! daemon's exit (0) awaited, `systemctl stop watchdog-mux` a SIGTERM of the
//! mux. Section 14 starts from a failure the test makes: node1's daemon
//! hangs (SIGSTOP) and the test backend "resets" node1 (see [`Run::hang`]). The services of `resources.sh` run through the
//! real agents: the systemd agent calls a stand-in `systemctl` (no systemd
//! runs here, see [`FAKE_SYSTEMCTL`]) and the floating IP uses the real OCF
//! agent code with Debian's `heartbeat/Dummy` (`VIP_AGENT`), as the
//! script's comments say.

mod common;
#[path = "deploy_guide/guide_text.rs"]
mod guide_text;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use guide_text::{parse_guide, shape_mismatch, On, Step};
use ha_manager::domain::TimingProfile;
use ha_manager::local_cluster::{LocalCluster, LocalClusterOptions};
use nix::sys::signal::Signal;

/// One set of daemons at a time: the machine running the tests is small.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How long a read-only command may be retried until its output matches.
const CONVERGE: Duration = Duration::from_secs(40);

/// Commands the test cannot run, by prefix, and why. Keep it short.
const SKIPPED: &[(&str, &str)] = &[
    ("apt-get install", "installs host packages; the test needs resource-agents (Dummy) and uses a stand-in systemctl"),
    ("systemctl disable --now nginx", "no systemd here; nginx is never started by the test"),
    ("cargo build --release", "the test runs inside a cargo build: the binaries of that build are installed instead"),
    ("systemctl daemon-reload", "no systemd here; the installed unit files are checked instead"),
    ("reboot", "the test cannot reboot the host"),
    ("journalctl -b -1", "no previous boot: the test's nodes are never reset"),
];

/// Commands retried (they fail and change nothing until the cluster is
/// ready, e.g. `cluster leave` while services still run on the node).
const RETRIED_UNTIL_OK: &[&str] = &["ha-manager cluster leave"];

/// Read-only commands: retried until their output matches the sample.
const READ_ONLY: &[&str] = &[
    "ha-manager status",
    "ha-manager config",
    "ha-manager cluster status",
    "ha-manager cluster ca status",
    "ha-manager rules",
    "ha-manager groupconfig",
    "cat ",
    "journalctl",
    "grep ",
];

/// The stand-in for `systemctl` on the daemons' PATH: a unit is "active"
/// while a file of its name exists in the state directory (shared by the
/// three nodes, which share this host). `list-jobs` (asked by the daemon at
/// a stop) lists no job: a SIGTERM is a daemon stop, not a node shutdown.
const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
# Stand-in for systemctl in tests/deploy_guide.rs (no systemd runs there).
state="$(dirname "$0")/units"
mkdir -p "$state"
eval unit=\${$#}
case "$1" in
  start) touch "$state/$unit" ;;
  stop|kill) rm -f "$state/$unit" ;;
  is-active) if [ -e "$state/$unit" ]; then echo active; else echo inactive; exit 3; fi ;;
  list-jobs) ;;
  *) echo "stand-in systemctl: unsupported: $*" >&2; exit 1 ;;
esac
"#;

// ----- substitutions ------------------------------------------------------------

/// The guide's host values and their loopback stand-ins, for one node.
struct Substitutions {
    pairs: Vec<(String, String)>,
}

impl Substitutions {
    fn for_node(c: &LocalCluster, i: usize, root: &Path, bins: &Path, token: &str) -> Self {
        let dir = c.nodes[i].dir.display().to_string();
        let root = root.display().to_string();
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, n) in c.nodes.iter().enumerate() {
            pairs.push((format!("192.168.10.1{}:7400", k + 1), n.addr.clone()));
        }
        pairs.extend([
            (
                "journalctl -u watchdog-mux -b".into(),
                format!("cat {dir}/mux.log"),
            ),
            (
                "journalctl -u ha-manager -b".into(),
                format!("cat {dir}/daemon.log"),
            ),
            ("/etc/ha-manager".into(), dir.clone()),
            ("/var/lib/ha-manager".into(), format!("{dir}/data")),
            ("/run/watchdog-mux.sock".into(), format!("{dir}/mux.sock")),
            (
                "/run/watchdog-mux.active".into(),
                format!("{dir}/mux.active"),
            ),
            (
                "/sys/fs/cgroup/ha.slice".into(),
                c.nodes[i].cgroup().path().display().to_string(),
            ),
            (
                "/etc/systemd/system".into(),
                format!("{root}/etc/systemd/system"),
            ),
            ("/usr/local/bin".into(), format!("{root}/usr/local/bin")),
            ("target/release/".into(), format!("{}/", bins.display())),
            // The floating IP as the test's environment sets it for
            // resources.sh (see Run::shell).
            (
                "agent heartbeat/IPaddr2".into(),
                "agent heartbeat/Dummy".into(),
            ),
            ("ip 192.168.10.100".into(), "ip 127.0.0.100".into()),
            ("nic eth0".into(), "nic lo".into()),
        ]);
        // Before `cluster init` printed it, `<token>` stays a placeholder.
        if !token.is_empty() {
            pairs.push(("<token>".into(), token.to_string()));
            // `<CA fingerprint>:<id>.<secret>`
            let bare = token.split_once(':').map_or(token, |(_, t)| t);
            let id = bare.split_once('.').map_or(bare, |(id, _)| id);
            pairs.push(("<token-id>".into(), id.to_string()));
        }
        Substitutions { pairs }
    }

    fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (from, to) in &self.pairs {
            out = out.replace(from, to);
        }
        out
    }
}

// ----- running the guide ------------------------------------------------------------

struct Run {
    cluster: LocalCluster,
    root: PathBuf,
    bins: PathBuf,
    examples: PathBuf,
    token: String,
    skipped: Vec<(usize, String, &'static str)>,
}

impl Run {
    fn subs(&self, i: usize) -> Substitutions {
        Substitutions::for_node(&self.cluster, i, &self.root, &self.bins, &self.token)
    }

    /// Runs a shell command as the guide's operator on node `i`.
    fn shell(&self, i: usize, command: &str) -> (i32, String, String) {
        let path = format!(
            "{}/usr/local/bin:{}",
            self.root.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&self.examples)
            .env("PATH", path)
            .env("HA_MANAGER_CONFIG", self.cluster.nodes[i].config_path())
            .env("VIP", "127.0.0.100")
            .env("VIP_NIC", "lo")
            .env("VIP_AGENT", "heartbeat/Dummy")
            .stdin(Stdio::null())
            .output()
            .expect("sh runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The systemctl commands the test carries out itself; `true` if
    /// `command` was one.
    fn action(&mut self, i: usize, command: &str) -> bool {
        let c = &mut self.cluster;
        match command {
            "systemctl enable --now watchdog-mux" | "systemctl start watchdog-mux" => {
                c.start_mux(i).expect("the mux starts")
            }
            "systemctl enable --now ha-manager" | "systemctl start ha-manager" => {
                c.start_daemon(i).expect("the daemon starts")
            }
            "systemctl stop ha-manager" | "systemctl disable --now ha-manager" => {
                // A daemon that is gone already (left the cluster, or killed
                // by the watchdog) has nothing to stop, as for systemd.
                if !c.daemon_exited(i) {
                    c.signal_daemon(i, Signal::SIGTERM).expect("SIGTERM");
                    assert_eq!(
                        c.wait_daemon_exit(i, Duration::from_secs(60)),
                        Some(0),
                        "a clean stop of {}'s daemon exits 0",
                        c.nodes[i].name
                    );
                }
            }
            "systemctl stop watchdog-mux" => {
                let pid = c.nodes[i].mux_pid().expect("the node has a mux");
                let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
                nix::sys::signal::kill(pid, Signal::SIGTERM).expect("SIGTERM the mux");
                ha_manager::local_cluster::wait_until(
                    Duration::from_secs(10),
                    "the mux's exit",
                    || c.mux_exited(i).then_some(()),
                )
                .expect("the mux stops on SIGTERM");
            }
            "systemctl disable --now watchdog-mux" => c.stop_processes(i),
            _ => return false,
        }
        true
    }

    /// Section 15's claim, checked before its `rmdir`: the stopped mux
    /// of a fenced node left its marker behind, and a mux started now
    /// refuses, with the message the guide quotes.
    fn a_mux_refuses_while_the_marker_exists(&mut self, i: usize) {
        let dir = self.cluster.nodes[i].dir.clone();
        assert!(
            dir.join("mux.active").is_dir(),
            "the fenced mux left its marker behind"
        );
        let out = Command::new(self.root.join("usr/local/bin/watchdog-mux"))
            .args(["--backend", "test", "--protect-cgroup"])
            .arg(self.cluster.nodes[i].cgroup().path())
            .arg("--socket")
            .arg(dir.join("mux.sock"))
            .arg("--active-marker")
            .arg(dir.join("mux.active"))
            .args(["--device-timeout", "4s"])
            .stdin(Stdio::null())
            .output()
            .expect("watchdog-mux runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("a previous watchdog-mux exited while clients were armed, so a reset is pending"),
            "a mux refuses to start while the marker exists: {stderr}"
        );
    }

    /// The failure section 14 describes, made on node `i` (which runs the
    /// services): its daemon hangs (SIGSTOP), so its watchdog client
    /// misses its deadline and the test backend kills the node's cgroup,
    /// the stand-in for a reset.
    fn hang(&mut self, i: usize) {
        let name = self.cluster.nodes[i].name.clone();
        for sid in ["systemd:nginx", "ocf:vip"] {
            let at = self.cluster.service_status(i, sid).and_then(|e| e.node);
            assert_eq!(at.as_deref(), Some(name.as_str()), "{sid} runs on {name}");
        }
        self.cluster.pause_daemon(i).expect("SIGSTOP the daemon");
    }

    fn run_step(&mut self, step: &Step, i: usize) {
        let original = step
            .command
            .split(" #")
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        if let Some((_, why)) = SKIPPED.iter().find(|(p, _)| original.starts_with(p)) {
            if !self.skipped.iter().any(|(line, _, _)| *line == step.line) {
                self.skipped.push((step.line, original, why));
            }
            return;
        }
        if original == "rmdir /run/watchdog-mux.active" {
            self.a_mux_refuses_while_the_marker_exists(i);
        }
        if self.action(i, &original) {
            eprintln!(
                "[README.md:{} node{}] {original} (done by the test)",
                step.line,
                i + 1
            );
            return;
        }
        let subs = self.subs(i);
        let command = subs.apply(&step.command);
        let sample: Vec<String> = step.sample.iter().map(|l| subs.apply(l)).collect();
        let read_only = READ_ONLY.iter().any(|p| original.starts_with(p));
        let retried = RETRIED_UNTIL_OK.iter().any(|p| original.starts_with(p));
        let end = Instant::now() + CONVERGE;
        loop {
            let (code, stdout, stderr) = self.shell(i, &command);
            let problem = if code != 0 {
                Some(format!("exit {code}; stderr: {}", stderr.trim()))
            } else if !sample.is_empty() {
                shape_mismatch(&sample, &stdout)
            } else {
                None
            };
            match problem {
                None => {
                    eprintln!("[README.md:{} node{}] {original}\n{stdout}", step.line, i + 1);
                    if let Some(t) = stdout.lines().find_map(|l| l.strip_prefix("join token: ")) {
                        self.token = t.trim().to_string();
                    }
                    return;
                }
                Some(p) if (read_only || retried) && Instant::now() < end => {
                    let _ = p;
                    std::thread::sleep(Duration::from_millis(500));
                }
                Some(p) => panic!(
                    "README.md:{} on node{}: `{original}` ({command}): {p}\nstdout:\n{stdout}\nsample:\n{}\n{}",
                    step.line,
                    i + 1,
                    sample.join("\n"),
                    self.cluster.log_tails(20)
                ),
            }
        }
    }
}

/// The `--device-timeout` of the guide's mux drop-in.
fn drop_in_device_timeout(text: &str) -> Duration {
    let value = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .skip_while(|w| *w != "--device-timeout")
        .nth(1)
        .expect("the drop-in sets --device-timeout");
    let secs: u64 = value
        .strip_suffix('s')
        .and_then(|v| v.parse().ok())
        .expect("the drop-in's device timeout is whole seconds");
    Duration::from_secs(secs)
}

#[test]
fn the_deploy_guide_runs_as_written() {
    let _turn = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    assert!(
        Path::new("/usr/lib/ocf/resource.d/heartbeat/Dummy").is_file(),
        "the guide's test needs Debian's resource-agents (apt-get install resource-agents)"
    );
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let deploy = repo.join("examples/deploy");
    let guide = std::fs::read_to_string(deploy.join("README.md")).expect("README.md");
    let steps = parse_guide(&guide);
    assert!(
        steps.len() > 20,
        "the guide's commands were found: {steps:#?}"
    );

    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().to_path_buf();
    let bins = common::bin_dir();
    let fake = root.join("fakebin");
    std::fs::create_dir_all(&fake).expect("fakebin");
    std::fs::write(fake.join("systemctl"), FAKE_SYSTEMCTL).expect("systemctl stand-in");
    std::fs::set_permissions(
        fake.join("systemctl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod the systemctl stand-in");
    let installed = root.join("usr/local/bin");
    std::fs::create_dir_all(&installed).expect("bin dir");
    std::fs::create_dir_all(root.join("etc/systemd/system")).expect("unit dir");

    let drop_in =
        std::fs::read_to_string(deploy.join("watchdog-mux-timing.conf")).expect("drop-in");
    let node_toml = std::fs::read_to_string(deploy.join("node1.toml")).expect("node1.toml");
    let timing: TimingProfile = node_toml
        .lines()
        .find_map(|l| l.strip_prefix("timing = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("node1.toml sets timing")
        .parse()
        .expect("node1.toml's timing profile exists");
    let timing = timing.name;
    let mut options = LocalClusterOptions::new(3, timing, root.join("nodes"), installed.clone());
    let path = format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    options.daemon_env.push(("PATH".into(), path));
    for i in 0..3 {
        options
            .mux_device_timeout
            .insert(i, drop_in_device_timeout(&drop_in));
    }
    let cluster = LocalCluster::prepare(options).expect("node directories and cgroups");

    // A copy of examples/ with the node files' host values substituted.
    let examples = root.join("examples");
    std::fs::create_dir_all(examples.join("deploy")).expect("examples copy");
    std::fs::copy(
        repo.join("examples/watchdog-mux.service"),
        examples.join("watchdog-mux.service"),
    )
    .expect("copy the mux unit");
    let mut run = Run {
        cluster,
        root: root.clone(),
        bins,
        examples: examples.clone(),
        token: String::new(),
        skipped: Vec::new(),
    };
    for entry in std::fs::read_dir(&deploy).expect("examples/deploy") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(entry.path()).expect("read");
        let node = name
            .strip_prefix("node")
            .and_then(|r| r.strip_suffix(".toml"))
            .and_then(|k| k.parse::<usize>().ok());
        let text = match node {
            Some(k) => run.subs(k - 1).apply(&text),
            None => text,
        };
        std::fs::write(examples.join("deploy").join(&name), text).expect("write");
    }

    let started = Instant::now();
    let mut hung = false;
    for step in &steps {
        if step.heading.starts_with("14.") && !hung {
            run.hang(0);
            hung = true;
        }
        match step.on {
            On::Node(i) => run.run_step(step, i),
            On::Every => (0..3).for_each(|i| run.run_step(step, i)),
        }
    }
    // Section 10's journal excerpt is what the survivors logged for the
    // failure of section 14 (node1 fenced, its services recovered on node2).
    let excerpt: Vec<&str> = guide
        .lines()
        .skip_while(|l| !l.starts_with("What to expect on the survivors' journals"))
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .collect();
    assert!(
        excerpt.len() >= 3,
        "section 10 quotes the journal: {excerpt:?}"
    );
    let journals: String = run
        .cluster
        .nodes
        .iter()
        .map(|n| std::fs::read_to_string(n.dir.join("daemon.log")).unwrap_or_default())
        .collect();
    for line in excerpt {
        assert!(
            journals.contains(line),
            "section 10's journal line is logged: {line}"
        );
    }
    // The unit starts the daemon the way the test did.
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/ha-manager.service"))
        .expect("the guide installed ha-manager.service");
    assert!(
        unit.contains(
            "ExecStart=/usr/local/bin/ha-manager daemon --config /etc/ha-manager/node.toml"
        ),
        "ha-manager.service starts the daemon as the test does"
    );
    eprintln!("guide run in {:?}; skipped:", started.elapsed());
    for (line, command, why) in &run.skipped {
        eprintln!("  README.md:{line}: {command}: {why}");
    }
}

/// Section 7's promise: a daemon without credentials answers at once,
/// and a `cluster join` through it fails with that answer instead of
/// waiting for a timeout; once the node is initialised the same port
/// serves the real API.
#[test]
fn joining_through_a_node_that_is_not_initialised_fails_at_once() {
    let _turn = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("temp dir");
    let options = LocalClusterOptions::new(2, "fast", tmp.path().join("nodes"), common::bin_dir());
    let mut c = LocalCluster::prepare(options).expect("node directories and cgroups");
    c.start_node(0).expect("node1 boots without credentials");
    let addr = c.nodes[0].addr.clone();
    // Poll until the daemon has bound its port (connection refused before).
    let (out, took) =
        ha_manager::local_cluster::wait_until(Duration::from_secs(20), "node1's port", || {
            let asked = Instant::now();
            let out = c
                .cli_within(
                    1,
                    &[
                        "cluster",
                        "join",
                        &addr,
                        "--token",
                        &format!("{}:0123", "0".repeat(64)),
                    ],
                    Duration::from_secs(25),
                )
                .expect("the CLI runs");
            (!out.stderr.contains("contacting")).then(|| (out, asked.elapsed()))
        })
        .expect("node1 answers");
    assert_ne!(out.code, 0, "the join must fail: {}", out.stdout);
    assert!(
        out.stderr
            .contains("node 'node1' is not part of a cluster yet")
            && out.stderr.contains("ha-manager cluster init"),
        "the join names the cause: {}",
        out.stderr
    );
    assert!(
        took < Duration::from_secs(10),
        "the answer came at once, not after a timeout: {took:?}"
    );
    assert!(
        !c.nodes[1].dir.join("data/cluster.json").exists(),
        "a refused join writes no credentials"
    );
    // Initialised, the same daemon hands its port over to the real API.
    let init = c.cli(0, &["cluster", "init"]).expect("init runs");
    assert_eq!(init.code, 0, "{}", init.stderr);
    ha_manager::local_cluster::wait_until(Duration::from_secs(30), "the real API", || {
        c.cluster_status(0).ok()
    })
    .expect("the daemon serves the API after init");
}

/// The timing tables of the guide (sections 10 and 16) are the `lease`
/// crate's profiles.
#[test]
fn the_guide_s_timing_numbers_are_the_code_s() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(repo.join("examples/deploy/README.md")).expect("README.md");
    let cells = |prefix: &str| -> Vec<String> {
        let row = guide
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("README.md has a table row '{prefix}'"));
        row.split('|')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    let secs = |cell: &str| -> Duration {
        let n: f64 = cell
            .trim_end_matches('s')
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("'{cell}' is a number of seconds"));
        Duration::from_secs_f64(n)
    };
    let order: Vec<TimingProfile> = cells("| constant |")[1..]
        .iter()
        .map(|name| name.parse().expect("a profile name"))
        .collect();
    type Field = fn(&TimingProfile) -> Duration;
    let rows: [(&str, Field); 8] = [
        ("| CRM/LRM round, lease renewal |", |p| p.round_interval),
        ("| CRM/LRM round, lease renewal |", |p| {
            p.lease_renew_interval
        }),
        ("| renewal attempt timeout |", |p| p.renew_attempt_timeout),
        ("| fence delay", |p| p.fence_delay),
        ("| mux client timeout |", |p| p.mux_client_timeout),
        ("| watchdog device timeout", |p| p.device_timeout),
        ("| lease ttl |", |p| p.lease_ttl),
        ("| safety margin |", |p| p.margin),
    ];
    for (prefix, field) in rows {
        let row = cells(prefix);
        for (profile, cell) in order.iter().zip(&row[1..]) {
            assert_eq!(secs(cell), field(profile), "{prefix} {}", profile.name);
        }
    }
    for profile in TimingProfile::ALL {
        let row = cells(&format!("| `{}` |", profile.name));
        assert_eq!(
            secs(&row[1]),
            profile.device_timeout,
            "section 16, {}",
            profile.name
        );
        assert!(profile.check_mux_device_timeout(secs(&row[1])).is_ok());
    }
}

/// Section 5 and the node*.toml headers: `node` plus an address is a
/// complete node file, `node` alone is refused with the message the guide
/// quotes, and nothing is written either way.
#[test]
fn a_node_file_needs_a_name_and_an_address() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let run = |text: &str| {
        let file = tmp.path().join("node.toml");
        std::fs::write(&file, text).expect("write node.toml");
        let out = Command::new(env!("CARGO_BIN_EXE_ha-manager"))
            .args(["config", "--config"])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("the CLI runs");
        assert!(!out.status.success(), "no cluster here: config must fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let data = tmp.path().join("data");
    let only_node = run("node = \"node1\"\n");
    assert!(
        only_node.contains(
            "field 'advertise': '0.0.0.0:7400' is a wildcard address: set 'advertise' to an \
             address the other nodes can reach"
        ),
        "{only_node}"
    );
    let with_address = run(&format!(
        "node = \"node1\"\nadvertise = \"192.168.10.11:7400\"\ndata_dir = \"{}\"\n",
        data.display()
    ));
    assert!(
        !with_address.contains("field") && with_address.contains("cluster.json"),
        "node and advertise pass the node file's checks (then: no credentials): {with_address}"
    );
    assert!(
        !data.exists(),
        "a CLI verb writes nothing into the data dir"
    );
}
