//! Tests of the host measurements: this machine's real files, and
//! fixtures with malformed lines.

use super::*;

fn parse_message(e: StatsError) -> (String, usize, String, String) {
    match e {
        StatsError::Parse {
            file,
            line,
            field,
            message,
        } => (file, line, field, message),
        other => panic!("not a parse error: {other}"),
    }
}

#[test]
fn this_machines_proc_files_parse() {
    let (cpus, mem) = read_capacity().unwrap();
    assert!(cpus >= 1);
    let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
    assert!(cpus >= parallelism, "{cpus} < {parallelism}");
    let info = read_meminfo().unwrap();
    assert_eq!(info.total, mem);
    assert!(
        info.available > 0 && info.available <= info.total,
        "{info:?}"
    );
    let first = read_cpu_times().unwrap();
    // Burn some CPU, then the node's usage is positive and bounded.
    let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
    let mut x = 0u64;
    while std::time::Instant::now() < until {
        x = x.wrapping_mul(31).wrapping_add(7);
    }
    std::hint::black_box(x);
    let second = read_cpu_times().unwrap();
    assert_eq!(first.cpus, cpus);
    let used = second.cores_since(&first);
    assert!(used > 0.0 && used <= cpus as f64 + 1e-9, "{used}");
}

#[test]
fn this_process_is_found_in_its_process_group_and_cgroup() {
    let scan = scan_process_groups().unwrap();
    let me = std::process::id() as i32;
    let text = fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
    let own = parse_pid_stat(&text, "stat").unwrap();
    assert_eq!(scan.start_times.get(&me), Some(&own.start_time));
    let (ticks, rss) = scan.groups[&own.pgrp];
    assert!(rss > 0, "resident pages of the test's process group");
    assert!(ticks >= own.ticks);
    // Our own cgroup (cgroup v2: "0::/path").
    let cgroup = fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("cgroup v2");
    let (usec, _mem) = read_cgroup(path).unwrap();
    assert!(usec > 0);
    // A v1 memory cgroup of this process, where there is one (hybrid
    // layout): its usage is what `read_cgroup` reads for memory.
    if let Some(v1) = cgroup
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p))
    {
        let file = Path::new(CGROUP_ROOT)
            .join("memory")
            .join(v1.trim_start_matches('/'))
            .join("memory.usage_in_bytes");
        if let Ok(text) = fs::read_to_string(&file) {
            assert!(parse_memory_current(&text, "usage").unwrap() > 0);
        }
    }
}

#[test]
fn fixtures_parse_and_malformed_lines_are_named() {
    let cpuinfo = "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nflags\t\t: fpu\n";
    assert_eq!(parse_cpuinfo_count(cpuinfo, "cpuinfo").unwrap(), 2);
    let (file, line, field, _) = parse_message(
        parse_cpuinfo_count("processor\t: 0\nprocessor\t: x\n", "cpuinfo").unwrap_err(),
    );
    assert_eq!(
        (file.as_str(), line, field.as_str()),
        ("cpuinfo", 2, "processor")
    );
    assert!(parse_cpuinfo_count("model name: X\n", "cpuinfo").is_err());

    let meminfo = "MemTotal:       16316412 kB\nMemFree:  1 kB\nMemAvailable:    8158206 kB\nHugePages_Total:       0\n";
    let info = parse_meminfo(meminfo, "meminfo").unwrap();
    assert_eq!(info.total, 16_316_412 * 1024);
    assert_eq!(info.used(), (16_316_412 - 8_158_206) * 1024);
    let (file, line, field, message) = parse_message(
        parse_meminfo("MemTotal: 10 kB\nMemAvailable: lots kB\n", "meminfo").unwrap_err(),
    );
    assert_eq!(
        (file.as_str(), line, field.as_str()),
        ("meminfo", 2, "MemAvailable")
    );
    assert!(message.contains("lots"), "{message}");
    let shown = parse_meminfo("MemTotal: 10 kB\n", "/proc/meminfo")
        .unwrap_err()
        .to_string();
    assert_eq!(shown, "/proc/meminfo:0: field 'MemAvailable': missing");

    let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1 2\n";
    let t0 = parse_proc_stat(stat, "stat").unwrap();
    assert_eq!((t0.busy, t0.total, t0.cpus), (150, 1000, 2));
    let t1 = CpuTimes {
        busy: 250,
        total: 1200,
        cpus: 2,
    };
    // 100 of 200 ticks busy on 2 CPUs: one core.
    assert!((t1.cores_since(&t0) - 1.0).abs() < 1e-9);
    let shown = parse_proc_stat("cpu  1 2 x 4 5 6 7 8\n", "/proc/stat")
        .unwrap_err()
        .to_string();
    assert!(
        shown.starts_with("/proc/stat:1: field 'cpu.system'"),
        "{shown}"
    );
    let (_, line, field, _) = parse_message(parse_proc_stat("cpu0 1 2 3\n", "stat").unwrap_err());
    assert_eq!((line, field.as_str()), (0, "cpu"));

    let pid = "4242 (we ird) (x)) S 1 4240 4240 0 -1 4194560 100 0 0 0 70 30 0 0 20 0 1 0 98765 1000 321 18446744073709551615";
    let usage = parse_pid_stat(pid, "/proc/4242/stat").unwrap();
    assert_eq!(
        usage,
        PidUsage {
            pgrp: 4240,
            ticks: 100,
            rss_pages: 321,
            start_time: 98765
        }
    );
    let shown = parse_pid_stat(
        "4242 (x) S 1 4240 4240 0 -1 4194560 100 0 0 0 7x 30",
        "/proc/4242/stat",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        shown,
        "/proc/4242/stat:1: field 'utime': field 14 is not a number"
    );
    assert!(parse_pid_stat("no parenthesis", "s").is_err());

    let cpu_stat = "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n";
    assert_eq!(
        parse_cgroup_cpu_usec(cpu_stat, "cpu.stat").unwrap(),
        1_500_000
    );
    let (_, line, field, _) = parse_message(
        parse_cgroup_cpu_usec("nr_periods 0\nusage_usec -3\n", "cpu.stat").unwrap_err(),
    );
    assert_eq!((line, field.as_str()), (2, "usage_usec"));
    assert_eq!(parse_memory_current("4096\n", "m").unwrap(), 4096);
    assert!(parse_memory_current("max\n", "m").is_err());
}

#[test]
fn systemctl_show_gives_the_cgroup_and_the_limits() {
    let text = "ControlGroup=/system.slice/web.service\nCPUQuotaPerSecUSec=1s 500ms\nMemoryMax=536870912\n";
    let info = parse_systemctl_show(text, "systemctl show web.service").unwrap();
    assert_eq!(
        info.control_group.as_deref(),
        Some("/system.slice/web.service")
    );
    assert_eq!(info.cpu_quota, Some(1.5));
    assert_eq!(info.memory_max, Some(536_870_912));
    let none = parse_systemctl_show(
        "ControlGroup=\nCPUQuotaPerSecUSec=infinity\nMemoryMax=infinity\n",
        "s",
    )
    .unwrap();
    assert_eq!(none, UnitInfo::default());
    assert_eq!(
        parse_systemctl_show("CPUQuotaPerSecUSec=200ms\n", "s")
            .unwrap()
            .cpu_quota,
        Some(0.2)
    );
    let (_, line, field, _) =
        parse_message(parse_systemctl_show("ControlGroup=/x\nMemoryMax=lots\n", "s").unwrap_err());
    assert_eq!((line, field.as_str()), (2, "MemoryMax"));
    assert!(parse_systemctl_show("CPUQuotaPerSecUSec=2 parsecs\n", "s").is_err());
}
