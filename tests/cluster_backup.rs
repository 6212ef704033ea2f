//! `ha-manager backup` / `restore` on real daemons: a cluster with
//! resources, rules and (imported, then migrated) groups round-trips into
//! a fresh cluster, whose services then really run; a restore into a
//! cluster that has a configuration, or from a bad file, changes nothing.

mod common;

use std::time::Duration;

use common::{marker, start, wait_running_once};
use ha_manager::local_cluster::{procs, wait_until, LocalCluster};

const LIMIT: Duration = Duration::from_secs(60);

/// The configuration files in a fresh backup taken through node `via`.
fn backup_files(c: &LocalCluster, via: usize, file: &std::path::Path) -> serde_json::Value {
    let out = c
        .cli(via, &["backup", file.to_str().expect("utf-8 path")])
        .expect("cli");
    assert_eq!(out.code, 0, "backup: {}", out.stderr);
    let text = std::fs::read_to_string(file).expect("backup written");
    let v: serde_json::Value = serde_json::from_str(&text).expect("backup is JSON");
    assert_eq!(v["format"], "ha-manager-backup");
    assert_eq!(v["version"], 1);
    v["files"].clone()
}

#[test]
fn a_backup_restores_into_a_fresh_cluster_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tmp");
    let m1 = marker(1);
    let m2 = marker(2);
    let resources = format!(
        "exec: one\n\tstate started\n\tgroup pair\n\tcmd {}\n\nexec: two\n\tstate started\n\tmax_restart 2\n\tcmd {}\n\tcomment second service\n",
        procs::marker_command(m1),
        procs::marker_command(m2)
    );
    let groups = "group: pair\n\tnodes node2:2,node3\n\tnofailback 1\n";
    std::fs::write(dir.path().join("resources.cfg"), &resources).expect("write");
    std::fs::write(dir.path().join("groups.cfg"), groups).expect("write");
    let backup = dir.path().join("cluster.backup.json");

    let files_a = {
        let c = start(3);
        let out = c
            .cli(
                1,
                &[
                    "import",
                    "--resources",
                    dir.path().join("resources.cfg").to_str().expect("utf-8"),
                    "--groups",
                    dir.path().join("groups.cfg").to_str().expect("utf-8"),
                ],
            )
            .expect("cli");
        assert_eq!(out.code, 0, "import: {}", out.stderr);
        // The CRM migrates the group into a rule; then a rule of our own.
        wait_until(LIMIT, "groups migrated to rules", || {
            let out = c.cli(0, &["groupconfig"]).ok()?;
            (out.code == 0 && out.stdout.trim().is_empty()).then_some(())
        })
        .expect("groups migrate");
        let out = c
            .cli(
                0,
                &[
                    "rules",
                    "add",
                    "node-affinity",
                    "two-on-3",
                    "--resources",
                    "exec:two",
                    "--nodes",
                    "node3",
                ],
            )
            .expect("cli");
        assert_eq!(out.code, 0, "rules add: {}", out.stderr);
        let out = c
            .cli(0, &["crs", "set", "ha-rebalance-on-start=1"])
            .expect("cli");
        assert_eq!(out.code, 0, "crs set: {}", out.stderr);
        wait_running_once(&c, m1, LIMIT);
        wait_running_once(&c, m2, LIMIT);
        let files = backup_files(&c, 2, &backup);
        // A restore into a cluster that has a configuration is refused.
        let again = c
            .cli(0, &["restore", backup.to_str().expect("utf-8")])
            .expect("cli");
        assert_ne!(again.code, 0);
        assert!(again.stderr.contains("empty"), "{}", again.stderr);
        assert_eq!(backup_files(&c, 0, &dir.path().join("b2.json")), files);
        files
    };
    assert!(files_a["resources.cfg"]
        .as_str()
        .unwrap()
        .contains("exec: two"));
    assert!(files_a["rules.cfg"].as_str().unwrap().contains("two-on-3"));
    assert!(
        files_a["rules.cfg"].as_str().unwrap().contains("node2:2"),
        "the migrated group is a rule: {files_a}"
    );
    // The first cluster is gone (and with it its services).
    assert!(procs::marker_pids(m1).is_empty() && procs::marker_pids(m2).is_empty());

    let c = start(3);
    // A file of a newer format, or not a backup, is refused, naming the
    // field, and changes nothing.
    let text = std::fs::read_to_string(&backup).expect("read");
    let newer = dir.path().join("newer.json");
    std::fs::write(&newer, text.replace("\"version\": 1", "\"version\": 99")).expect("write");
    let out = c
        .cli(0, &["restore", newer.to_str().expect("utf-8")])
        .expect("cli");
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("field 'version'") && out.stderr.contains("99"),
        "{}",
        out.stderr
    );
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"format\": \"tar\"").expect("write");
    let out = c
        .cli(0, &["restore", junk.to_str().expect("utf-8")])
        .expect("cli");
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("junk.json"), "{}", out.stderr);
    let empty = backup_files(&c, 0, &dir.path().join("empty.json"));
    assert_eq!(empty["resources.cfg"], "");
    assert_eq!(empty["rules.cfg"], "");

    // The real restore, through a follower.
    let out = c
        .cli(2, &["restore", backup.to_str().expect("utf-8")])
        .expect("cli");
    assert_eq!(out.code, 0, "restore: {}", out.stderr);
    let files_b = backup_files(&c, 1, &dir.path().join("b3.json"));
    assert_eq!(files_b, files_a);
    // The scheduler options came along.
    let crs = c
        .cli(0, &["crs", "get", "--output-format", "json"])
        .expect("cli");
    assert!(
        crs.stdout.contains("\"ha-rebalance-on-start\": \"1\""),
        "{}",
        crs.stdout
    );
    // The services run again, `two` on node3 as its rule says.
    wait_running_once(&c, m1, LIMIT);
    let on = wait_running_once(&c, m2, LIMIT);
    assert_eq!(c.nodes[on].name, "node3");
}
