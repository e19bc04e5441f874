//! Where each stream goes in the NXentry, and which plots the entry gets — decided from
//! the scan's metadata alone, before anything is written.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::model::{Encoding, ScanMeta};

/// How a stream's points are stored.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// Fixed shape (`[]` for scalars).
    Fixed(Vec<usize>),
    /// Variable shape of this rank, padded (see [`super::points`]).
    Variable(usize),
    Json,
}

/// One stream's place in the file.
#[derive(Clone, Debug)]
pub struct StreamPlace {
    /// `instrument/<device>`.
    pub group: String,
    /// The dataset's name within the group.
    pub dataset: String,
    /// Whether the group is an NXpositioner (a motor) rather than an NXdetector.
    pub motor: bool,
    /// The link's name in `measurement` (and in NXdata plots).
    pub measurement: String,
    pub kind: Kind,
}

impl StreamPlace {
    /// The dataset's path inside the entry.
    pub fn path(&self) -> String {
        format!("{}/{}", self.group, self.dataset)
    }
}

/// An NXdata group.
#[derive(Clone, Debug, PartialEq)]
pub struct Plot {
    pub name: String,
    /// Stream indices: the first is `signal`, the others `auxiliary_signals`.
    pub signals: Vec<usize>,
    /// Stream indices of the axes (point axis first).
    pub axes: Vec<usize>,
    /// `image` for 2-D points, else none.
    pub interpretation: Option<&'static str>,
}

/// The whole plan.
#[derive(Clone, Debug)]
pub struct Layout {
    pub streams: Vec<StreamPlace>,
    pub plots: Vec<Plot>,
}

fn split(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((device, channel)) => (device, channel),
        None => (name, name),
    }
}

/// A name usable as one HDF5 link name.
pub fn clean(name: &str) -> String {
    let s = name.replace('/', "_");
    if s.is_empty() || s == "." || s == ".." { "_".into() } else { s }
}

/// Motor names the info knows: positioner names and acquisition-chain master axes.
fn known_motors(info: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(map) = info.pointer("/positioners/positioners_start").and_then(Value::as_object) {
        out.extend(map.keys().cloned());
    }
    if let Some(chain) = info.get("acquisition_chain").and_then(Value::as_object) {
        for top in chain.values() {
            for key in ["master", "top_master"] {
                if let Some(axes) = top.pointer(&format!("/{key}/scalars")).and_then(Value::as_array) {
                    for a in axes.iter().filter_map(Value::as_str) {
                        if let Some(m) = a.strip_prefix("axis:") {
                            out.insert(m.to_owned());
                        }
                    }
                }
            }
        }
    }
    out
}

/// Plans the entry for `meta`.
pub fn plan(meta: &ScanMeta) -> Layout {
    let motors = known_motors(&meta.info);
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    let mut streams = Vec::with_capacity(meta.streams.len());
    for desc in &meta.streams {
        let (device, channel) = split(&desc.name);
        let axis_info = desc.info.get("device_type").and_then(Value::as_str) == Some("axis");
        let motor = device == "axis" || axis_info || (channel == device && motors.contains(device));
        let (group_name, dataset) = if device == "axis" {
            (clean(channel), "value".to_owned())
        } else if motor {
            (clean(device), "value".to_owned())
        } else if channel == device {
            (clean(device), "data".to_owned())
        } else {
            (clean(device), clean(channel))
        };
        let mut measurement = clean(channel);
        if used.contains_key(&measurement) {
            measurement = clean(&desc.name.replace(':', "_"));
        }
        *used.entry(measurement.clone()).or_default() += 1;
        let kind = match &desc.encoding {
            Encoding::Json => Kind::Json,
            e @ Encoding::Numeric { shape, .. } if e.is_variable() => Kind::Variable(shape.len()),
            Encoding::Numeric { shape, .. } => Kind::Fixed(shape.iter().map(|&d| d as usize).collect()),
        };
        streams.push(StreamPlace { group: format!("instrument/{group_name}"), dataset, motor, measurement, kind });
    }
    let plots = plots(meta, &streams);
    Layout { streams, plots }
}

fn index_of(meta: &ScanMeta, name: &str) -> Option<usize> {
    meta.streams.iter().position(|s| &*s.name == name || split(&s.name).1 == name)
}

fn plots(meta: &ScanMeta, places: &[StreamPlace]) -> Vec<Plot> {
    let scalar = |i: usize| places[i].kind == Kind::Fixed(vec![]);
    let mut out = Vec::new();
    // Curve plots the scan's info asks for (BLISS `plots`: kind curve-plot, items x/y).
    if let Some(plots) = meta.info.get("plots").and_then(Value::as_array) {
        for (n, p) in plots.iter().enumerate() {
            let Some(items) = p.get("items").and_then(Value::as_array) else { continue };
            let mut signals = Vec::new();
            let mut axes = Vec::new();
            for item in items {
                if let Some(y) = item.get("y").and_then(Value::as_str).and_then(|y| index_of(meta, y))
                    && !signals.contains(&y)
                {
                    signals.push(y);
                }
                if let Some(x) = item.get("x").and_then(Value::as_str).and_then(|x| index_of(meta, x))
                    && axes.is_empty()
                {
                    axes.push(x);
                }
            }
            signals.retain(|&i| scalar(i));
            axes.retain(|&i| scalar(i));
            if signals.is_empty() {
                continue;
            }
            let name = p.get("name").and_then(Value::as_str).map(clean).unwrap_or_else(|| format!("plot{n}"));
            out.push(Plot { name, signals, axes, interpretation: None });
        }
    }
    // Otherwise every scalar against the first motor (or the timer).
    if out.is_empty() {
        let axis = (0..places.len())
            .find(|&i| places[i].motor && scalar(i))
            .or_else(|| (0..places.len()).find(|&i| meta.streams[i].name.starts_with("timer:") && scalar(i)));
        let signals: Vec<usize> =
            (0..places.len()).filter(|&i| scalar(i) && Some(i) != axis && !places[i].motor).collect();
        if !signals.is_empty() {
            out.push(Plot {
                name: "plotselect".into(),
                signals,
                axes: axis.into_iter().collect(),
                interpretation: None,
            });
        }
    }
    // Each non-scalar numeric stream in its own NXdata.
    for (i, p) in places.iter().enumerate() {
        let rank = match &p.kind {
            Kind::Fixed(s) if !s.is_empty() => s.len(),
            Kind::Variable(r) => *r,
            _ => continue,
        };
        let mut name = format!("{}_{}", p.group.trim_start_matches("instrument/"), p.dataset);
        while out.iter().any(|q| q.name == name) {
            name.push('_');
        }
        out.push(Plot {
            name,
            signals: vec![i],
            axes: vec![],
            interpretation: (rank == 2).then_some("image").or((rank == 1).then_some("spectrum")),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dtype, ScanIdentity, StreamDesc};
    use serde_json::json;

    fn desc(name: &str, shape: Vec<i64>, info: Value) -> StreamDesc {
        StreamDesc {
            name: name.into(),
            encoding: Encoding::Numeric { dtype: Dtype::parse("<f8").unwrap(), shape },
            info: info.as_object().cloned().unwrap_or_default(),
        }
    }

    fn meta(streams: Vec<StreamDesc>, info: Value) -> ScanMeta {
        ScanMeta { key: "k".into(), identity: ScanIdentity::default(), info, streams }
    }

    #[test]
    fn streams_go_to_device_groups_and_motors_to_positioners() {
        let m = meta(
            vec![
                desc("axis:sy", vec![], json!({})),
                desc("diode:diode", vec![], json!({})),
                desc("simu1:deadtime_det0", vec![], json!({})),
                desc("sz", vec![], json!({})),
                desc("robz:position", vec![], json!({"device_type": "axis"})),
                desc("other:diode", vec![], json!({})),
            ],
            json!({"positioners": {"positioners_start": {"sz": 1.0}}}),
        );
        let l = plan(&m);
        let paths: Vec<(String, bool, String)> =
            l.streams.iter().map(|s| (s.path(), s.motor, s.measurement.clone())).collect();
        assert_eq!(
            paths,
            vec![
                ("instrument/sy/value".into(), true, "sy".into()),
                ("instrument/diode/data".into(), false, "diode".into()),
                ("instrument/simu1/deadtime_det0".into(), false, "deadtime_det0".into()),
                ("instrument/sz/value".into(), true, "sz".into()),
                ("instrument/robz/value".into(), true, "position".into()),
                ("instrument/other/diode".into(), false, "other_diode".into()),
            ]
        );
        // No plots in the info: scalars against the first motor.
        assert_eq!(l.plots.len(), 1);
        assert_eq!(l.plots[0].axes, vec![0]);
        assert_eq!(l.plots[0].signals, vec![1, 2, 5]);
    }

    #[test]
    fn info_plots_and_image_plots() {
        let m = meta(
            vec![
                desc("timer:elapsed_time", vec![], json!({})),
                desc("d:a", vec![], json!({})),
                desc("cam:image", vec![3, 4], json!({})),
            ],
            json!({"plots": [{"kind": "curve-plot", "name": "my plot/1", "items": [{"x": "elapsed_time", "y": "d:a"}, {"x": "elapsed_time", "y": "cam:image"}]}]}),
        );
        let l = plan(&m);
        assert_eq!(
            l.plots[0],
            Plot { name: "my plot_1".into(), signals: vec![1], axes: vec![0], interpretation: None }
        );
        assert_eq!(
            l.plots[1],
            Plot { name: "cam_image".into(), signals: vec![2], axes: vec![], interpretation: Some("image") }
        );
    }
}
