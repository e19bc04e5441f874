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

/// How points of this encoding are stored.
pub fn kind_of(encoding: &Encoding) -> Kind {
    match encoding {
        Encoding::Json => Kind::Json,
        e @ Encoding::Numeric { shape, .. } if e.is_variable() => Kind::Variable(shape.len()),
        Encoding::Numeric { shape, .. } => Kind::Fixed(shape.iter().map(|&d| d as usize).collect()),
    }
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

/// One NXentry of a scan: a top master of the acquisition chain and the streams of its
/// subtree (BLISS writes a scan with several top masters as subscans `N.1`, `N.2`, …).
#[derive(Clone, Debug, PartialEq)]
pub struct Subscan {
    /// The top master's key in `acquisition_chain` (empty when the info has no chain).
    pub name: String,
    /// Indices into the scan's streams, in stream order.
    pub streams: Vec<usize>,
    /// The top master's own scalar channels: the subscan's plot axes when it has no motor
    /// (a timer top master's `elapsed_time`). Empty for a scan written as one entry.
    pub master_scalars: Vec<String>,
}

fn names_at<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a str> {
    v.pointer(pointer).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
}

/// Splits the scan into its subscans, as BLISS's writer does: one per key of
/// `info.acquisition_chain`, numbered in the keys' sorted order; a subscan's streams are the
/// channels of the devices it lists (`devices[d].channels`) and of its `master` and
/// `scalars`/`spectra`/`images` lists. A stream no top master claims goes to the first
/// subscan (logged), so no data is ever dropped. Without a chain, or with one top master,
/// the whole scan is one subscan.
pub fn subscans(meta: &ScanMeta) -> Vec<Subscan> {
    let all =
        || vec![Subscan { name: String::new(), streams: (0..meta.streams.len()).collect(), master_scalars: vec![] }];
    let Some(chain) = meta.info.get("acquisition_chain").and_then(Value::as_object) else { return all() };
    if chain.len() <= 1 {
        let mut one = all();
        one[0].name = chain.keys().next().cloned().unwrap_or_default();
        return one;
    }
    let mut names: Vec<&String> = chain.keys().collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    let mut claimed: Vec<Option<usize>> = vec![None; meta.streams.len()];
    for (k, name) in names.iter().enumerate() {
        let top = &chain[name.as_str()];
        let mut channels: BTreeSet<&str> = BTreeSet::new();
        for device in names_at(top, "/devices") {
            let path = format!("/devices/{}/channels", device.replace('~', "~0").replace('/', "~1"));
            channels.extend(names_at(&meta.info, &path));
        }
        let mut master_scalars: Vec<String> = names_at(top, "/master/scalars").map(str::to_owned).collect();
        for list in ["scalars", "spectra", "images"] {
            channels.extend(names_at(top, &format!("/master/{list}")));
            channels.extend(names_at(top, &format!("/{list}")));
        }
        if master_scalars.is_empty() {
            // No `master` lists: the top master device's own channels.
            let device = top.get("top_master").and_then(Value::as_str).unwrap_or(name.as_str());
            let path = format!("/devices/{}/channels", device.replace('~', "~0").replace('/', "~1"));
            master_scalars = names_at(&meta.info, &path).map(str::to_owned).collect();
        }
        for (i, desc) in meta.streams.iter().enumerate() {
            if claimed[i].is_none() && channels.contains(&*desc.name) {
                claimed[i] = Some(k);
            }
        }
        out.push(Subscan { name: (*name).clone(), streams: Vec::new(), master_scalars });
    }
    let mut orphans = Vec::new();
    for (i, owner) in claimed.iter().enumerate() {
        let k = owner.unwrap_or_else(|| {
            orphans.push(&*meta.streams[i].name);
            0
        });
        out[k].streams.push(i);
    }
    if !orphans.is_empty() {
        tracing::warn!(scan = %meta.key, streams = ?orphans, "streams of no top master in acquisition_chain: written to the first subscan");
    }
    out
}

/// The part of `meta` one subscan writes: the same identity and info, its streams only
/// (in `sub.streams` order, so local index `j` is global index `sub.streams[j]`).
pub fn subscan_meta(meta: &ScanMeta, sub: &Subscan) -> ScanMeta {
    ScanMeta {
        key: meta.key.clone(),
        identity: meta.identity.clone(),
        info: meta.info.clone(),
        streams: sub.streams.iter().map(|&i| meta.streams[i].clone()).collect(),
    }
}

/// Plans the entry of one subscan; `sub_meta` is [`subscan_meta`]'s result.
pub fn plan_subscan(sub_meta: &ScanMeta, sub: &Subscan) -> Layout {
    plan_with(sub_meta, &sub.master_scalars)
}

/// Plans the entry for `meta`.
pub fn plan(meta: &ScanMeta) -> Layout {
    plan_with(meta, &[])
}

fn plan_with(meta: &ScanMeta, master_scalars: &[String]) -> Layout {
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
        let kind = kind_of(&desc.encoding);
        streams.push(StreamPlace { group: format!("instrument/{group_name}"), dataset, motor, measurement, kind });
    }
    let plots = plots(meta, &streams, master_scalars);
    Layout { streams, plots }
}

fn index_of(meta: &ScanMeta, name: &str) -> Option<usize> {
    meta.streams.iter().position(|s| &*s.name == name || split(&s.name).1 == name)
}

fn plots(meta: &ScanMeta, places: &[StreamPlace], master_scalars: &[String]) -> Vec<Plot> {
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
    // Otherwise every scalar against the first motor (or the timer; in a subscan, its top
    // master's first scalar, whose other scalars are axes as well, not signals).
    if out.is_empty() {
        let master = |i: usize| master_scalars.iter().any(|m| *m == *meta.streams[i].name);
        let axis = (0..places.len())
            .find(|&i| places[i].motor && scalar(i))
            .or_else(|| (0..places.len()).find(|&i| meta.streams[i].name.starts_with("timer:") && scalar(i)))
            .or_else(|| {
                master_scalars
                    .iter()
                    .find_map(|m| (0..places.len()).find(|&i| *meta.streams[i].name == *m && scalar(i)))
            });
        let signals: Vec<usize> =
            (0..places.len()).filter(|&i| scalar(i) && Some(i) != axis && !places[i].motor && !master(i)).collect();
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
    fn one_top_master_is_one_subscan_of_every_stream() {
        let m = meta(
            vec![desc("axis:sy", vec![], json!({})), desc("diode:diode", vec![], json!({}))],
            json!({"acquisition_chain": {"axis": {"master": {"scalars": ["axis:sy"]}, "scalars": ["diode:diode"]}}}),
        );
        assert_eq!(subscans(&m), vec![Subscan { name: "axis".into(), streams: vec![0, 1], master_scalars: vec![] }]);
        let none = meta(vec![desc("a:b", vec![], json!({}))], json!({}));
        assert_eq!(subscans(&none)[0].streams, vec![0]);
    }

    #[test]
    fn top_masters_split_streams_in_sorted_order() {
        // blissdata 2.x info: chain devices -> devices[d].channels; the older lists too.
        let m = meta(
            vec![
                desc("axis:robx", vec![], json!({})),
                desc("lima:image", vec![2, 3], json!({})),
                desc("stray:x", vec![], json!({})),
                desc("t1:elapsed_time", vec![], json!({})),
                desc("t2:elapsed_time", vec![], json!({})),
                desc("t2:epoch", vec![], json!({})),
                desc("mca:realtime", vec![], json!({})),
            ],
            json!({
                "acquisition_chain": {
                    "zz_timer": {"top_master": "t2", "devices": ["t2", "mca"], "master": {"scalars": ["t2:elapsed_time", "t2:epoch"]}},
                    "ax": {"top_master": "ax", "devices": ["ax", "t1"], "images": ["lima:image"]},
                },
                "devices": {
                    "ax": {"channels": ["axis:robx"]},
                    "t1": {"channels": ["t1:elapsed_time"]},
                    "t2": {"channels": ["t2:elapsed_time", "t2:epoch"]},
                    "mca": {"channels": ["mca:realtime"]},
                },
            }),
        );
        let subs = subscans(&m);
        assert_eq!(subs.len(), 2);
        assert_eq!((subs[0].name.as_str(), &subs[0].streams), ("ax", &vec![0, 1, 2, 3]), "stray:x goes to the first");
        assert_eq!(subs[0].master_scalars, vec!["axis:robx".to_string()], "the top master device's channels");
        assert_eq!((subs[1].name.as_str(), &subs[1].streams), ("zz_timer", &vec![4, 5, 6]));

        // The timer subscan: no motor, so its master's first scalar is the axis and its
        // other master scalar is no signal.
        let sub_meta = subscan_meta(&m, &subs[1]);
        let l = plan_subscan(&sub_meta, &subs[1]);
        assert_eq!(
            l.plots,
            vec![Plot { name: "plotselect".into(), signals: vec![2], axes: vec![0], interpretation: None }]
        );
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
