//! Measures agent call latencies with real processes (min/median/max of N).
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ha_manager::agents::{agent_for, FencingToken};

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name:<28} n={:<3} min={:>8.2?} median={:>8.2?} max={:>8.2?}",
        v.len(),
        v[0],
        v[v.len() / 2],
        v[v.len() - 1]
    );
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

fn main() {
    let n = 20;
    let dir = tempfile::tempdir().unwrap();
    let token = FencingToken::new(1, 1);
    let p = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let exec = agent_for("exec", "t", &p(&[("cmd", "exec sleep 300")]), dir.path()).unwrap();
    let (mut s, mut st, mut sp) = (vec![], vec![], vec![]);
    for _ in 0..n {
        s.push(time(|| exec.start(token).unwrap()).1);
        st.push(time(|| exec.status(token).unwrap()).1);
        sp.push(time(|| exec.stop(Some(Duration::from_secs(10)), token).unwrap()).1);
    }
    stats("exec start (incl 200ms check)", s);
    stats("exec status", st);
    stats("exec stop (SIGTERM)", sp);
    let state = dir.path().join("d.state");
    let ocf = agent_for(
        "ocf",
        "d",
        &p(&[
            ("agent", "heartbeat/Dummy"),
            ("state", state.to_str().unwrap()),
        ]),
        dir.path(),
    )
    .unwrap();
    let (mut s, mut st, mut sp) = (vec![], vec![], vec![]);
    for _ in 0..n {
        s.push(time(|| ocf.start(token).unwrap()).1);
        st.push(time(|| ocf.status(token).unwrap()).1);
        sp.push(time(|| ocf.stop(None, token).unwrap()).1);
    }
    stats("ocf Dummy start (monitor+start)", s);
    stats("ocf Dummy status (monitor)", st);
    stats("ocf Dummy stop (monitor+stop)", sp);
}
