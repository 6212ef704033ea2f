mod common;

use std::time::{Duration, Instant};

use common::start_netns;
use ha_manager::local_cluster::heartbeat::now_ns;
use ha_manager::local_cluster::wait_until;

#[test]
fn smoke() {
    let t = Instant::now();
    let c = start_netns(3);
    eprintln!("formed in {:?}", t.elapsed());
    let t0 = now_ns();
    let sid = c.add_heartbeat_service(0, "hb", &[]).unwrap();
    let t = Instant::now();
    wait_until(Duration::from_secs(60), "beats", || {
        let hb = c.heartbeats("hb").ok()?;
        (hb.beats().len() > 5).then_some(())
    })
    .unwrap();
    eprintln!("{sid} running after {:?}", t.elapsed());
    std::thread::sleep(Duration::from_secs(2));
    let hb = c.heartbeats("hb").unwrap();
    eprintln!("{}", hb.describe(t0));
    eprintln!("{:?}", c.status(1).unwrap());
    eprintln!("leader {:?}", c.leader());
}
