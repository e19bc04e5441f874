//! The demo's chirp part: an echo node on loopback beside the IOC and the LDMS daemon,
//! and a client node that sends it requests and times each answer.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pvloom_chirp::{Chirp, Config, Outgoing};
use pvloom_core::{Delivery, Runtime};

pub struct ChirpDemo {
    echo: Arc<OnceLock<Chirp>>,
    client: Chirp,
    pub addr: SocketAddr,
    _runtime: Runtime,
}

fn config() -> Config {
    Config { port: 0, bind_v4: Ipv4Addr::LOCALHOST, synchronous: false, disable_encryption: true, ..Config::default() }
}

impl ChirpDemo {
    pub fn start() -> anyhow::Result<ChirpDemo> {
        let runtime = Runtime::builder().io_threads(1).delivery(Delivery::Inline).build()?;
        let echo: Arc<OnceLock<Chirp>> = Arc::new(OnceLock::new());
        let me = echo.clone();
        let node = Chirp::start(&runtime.handle(), &config(), move |msg| {
            if let Some(node) = me.get() {
                drop(node.send(msg.from(), msg.reply(msg.data.clone())));
            }
        })
        .context("starting the chirp echo node")?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, node.port()));
        let _ = echo.set(node);
        let client = Chirp::start(&runtime.handle(), &config(), |_| {}).context("starting the chirp client")?;
        Ok(ChirpDemo { echo, client, addr, _runtime: runtime })
    }

    /// `count` requests one after the other; a line with their round trips.
    pub fn round_trips(&self, count: usize) -> String {
        let mut times = Vec::with_capacity(count);
        let mut lost = 0;
        for i in 0..count {
            let start = Instant::now();
            let (_, answer) = self.client.request(self.addr, Outgoing::new(format!("demo {i}").into_bytes()));
            match answer.wait_timeout(Duration::from_secs(5)) {
                Ok(Ok(reply)) if reply.data == format!("demo {i}").as_bytes() => times.push(start.elapsed()),
                _ => lost += 1,
            }
        }
        times.sort();
        let us = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e6);
        format!(
            "chirp: {} of {count} requests answered by the echo on {}, round trip min {:.0} / median {:.0} / max {:.0} µs{}",
            times.len(),
            self.addr,
            us(times.first()),
            us(times.get(times.len() / 2)),
            us(times.last()),
            if lost > 0 { format!(", {lost} lost") } else { String::new() },
        )
    }

    pub fn close(&self) {
        self.client.stop();
        if let Some(echo) = self.echo.get() {
            echo.stop();
        }
    }
}
