//! The tutorial example, run against caproto's own random_walk demo IOC.

mod support;

#[path = "../examples/tutorial.rs"]
mod tutorial;

use std::process::{Command, Stdio};
use std::time::Duration;

use pvloom_ca::client::Context;

#[test]
fn tutorial_runs_against_caproto_random_walk() {
    let port = support::free_port();
    let repeater = support::free_udp_port();
    let mut ioc = Command::new(support::venv_python())
        .args(["-m", "caproto.ioc_examples.random_walk", "--prefix", "rw:", "--interfaces", "127.0.0.1"])
        .envs(support::server_env(port, repeater))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = scopeguard(&mut ioc);
    let ctx = Context::builder().config(support::client_config(port, repeater)).build().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ctx.get_pv("rw:dt").wait_for_connection(Some(Duration::from_millis(500))).is_err() {
        assert!(std::time::Instant::now() < deadline, "random_walk IOC did not come up");
    }
    let values = tutorial::tutorial(&ctx, "rw:").unwrap();
    assert!(!values.is_empty(), "the subscription saw updates");
    drop(guard);
}

struct Kill<'a>(&'a mut std::process::Child);

impl Drop for Kill<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scopeguard(child: &mut std::process::Child) -> Kill<'_> {
    Kill(child)
}
