//! The NeXus half of `pvloom demo`: the demo's CA PVs (random walk, ramp) and its LDMS
//! mirror set recorded into a NeXus file as one scan while the demo runs, as
//! `pvloom record` does.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use pvloom_ca::client::{ClientConfig, Context};
use pvloom_nexus::nexus::WriterConfig;
use pvloom_nexus::record::{LdmsSource, RecordSpec};
use pvloom_nexus::service::NexusRecording;

use crate::demo_ldms::MIRROR;

/// Start recording `pvs` (through a CA client configured as the demo's) and the mirror set.
pub fn start(
    ctx: &Context,
    config: &ClientConfig,
    pvs: &[String],
    ldms: SocketAddr,
    out: &Path,
) -> anyhow::Result<NexusRecording> {
    // A fresh file each run (the writer would otherwise append the next entry).
    let _ = std::fs::remove_file(out);
    let spec = RecordSpec {
        ca: pvs.to_vec(),
        ldms: vec![LdmsSource { host: ldms.ip().to_string(), port: ldms.port(), set: MIRROR.into() }],
        ldms_interval: Duration::from_millis(100),
        filename: out.display().to_string(),
        title: "pvloom demo".into(),
        number: 1,
        session: "pvloom-demo".into(),
        connect_timeout: Duration::from_secs(5),
        ca_config: Some(config.clone()),
    };
    let writer = WriterConfig {
        default_dir: out.parent().map(Path::to_path_buf).unwrap_or_else(|| ".".into()),
        creator: format!("pvloom {} demo", env!("CARGO_PKG_VERSION")),
        ..WriterConfig::default()
    };
    NexusRecording::start(ctx.runtime(), &spec, writer, None).context("starting the NeXus recording")
}

/// Stop the recording; the summary line.
pub fn finish(recording: NexusRecording) -> anyhow::Result<String> {
    recording.stop(Some(Duration::from_secs(10))).context("closing the NeXus recording")?;
    if let Some(err) = recording.error() {
        anyhow::bail!("the NeXus recording failed: {err}");
    }
    let p = recording.progress();
    Ok(format!(
        "NeXus: {} points ({} updates, {} dropped) in {}::/{}",
        p.points_written,
        p.updates,
        p.dropped,
        p.file.map(|f| f.display().to_string()).unwrap_or_default(),
        p.entry.unwrap_or_default()
    ))
}
