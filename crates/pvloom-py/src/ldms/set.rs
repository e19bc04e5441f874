//! `ldms.Set`: a looked-up remote set (update, push) or a set this process serves
//! (schema, transactions, writes, publish); `update_all`, many updates in one call.
//!
//! A remote set's values are read from the snapshot of its last update or push, kept
//! as Rust values: an update allocates no Python object; `set[i]` converts one value
//! when it is read. An update callback sees the snapshot of its own update.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use pvloom_core::Completer;
use pvloom_ldms::client::{self, SetSnapshot};
use pvloom_ldms::server::SetHandle;
use pvloom_ldms::set::{LocalSet, MetricSpec, MetricValue, Schema, SetError, SetInfo, SetMeta, Timestamp, ValueType};
use pyo3::exceptions::{PyIndexError, PyKeyError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PySlice, PyString, PyTuple};

use super::values::{self, to_py};
use super::{connection_error, env, may_block, wait_for};

/// A push (or update) result handed to a set's callback.
type PushResult = Result<Arc<SetSnapshot>, client::OpError>;

/// The last snapshot a remote set received, shared with the callbacks that replace it.
type View = Arc<Mutex<Option<Arc<SetSnapshot>>>>;

/// A set this process produces: unpublished (owned here) or published (in the registry).
struct Local {
    schema: Schema,
    /// The set's metric descriptions as made (they never change, a producer rename
    /// included): what converting values needs, without the set's lock.
    layout: Arc<SetMeta>,
    info: SetInfo,
    owned: Option<LocalSet>,
    handle: Option<SetHandle>,
}

enum Kind {
    Remote { set: client::Set, view: View },
    Local(Box<Mutex<Local>>),
}

/// An LDMS metric set (`ovis_ldms.ldms.Set`): a remote set from `Xprt.lookup()`, or
/// `Set(name, schema, uid=0, gid=0, perm=0o777, producer=None)` made here and served
/// to peers once `publish()`ed.
#[pyclass(name = "Set", module = "pvloom.ldms", frozen)]
pub struct PySet {
    kind: Kind,
}

fn set_err(e: SetError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn now() -> Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp { sec: d.as_secs() as u32, usec: d.subsec_micros() }
}

/// The Python module `pvloom.ldms` (for its enums and `MetricTemplate`).
fn ldms_module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("pvloom.ldms")
}

fn parse_type(code: u8) -> PyResult<ValueType> {
    ValueType::from_code(code).ok_or_else(|| PyValueError::new_err(format!("bad metric type {code}")))
}

/// One metric of a schema as `pvloom.ldms.Schema._specs` lists it:
/// `(name, type, count, meta, units, members, record_type)`.
type SpecTuple = (String, u8, u32, bool, Option<String>, Vec<(String, u8, u32, Option<String>)>, Option<u32>);

fn schema_from_py(schema: &Bound<'_, PyAny>) -> PyResult<Schema> {
    let name: String = schema.getattr("name")?.extract()?;
    let specs: Vec<SpecTuple> = schema.call_method0("_specs")?.extract()?;
    let mut metrics = Vec::with_capacity(specs.len());
    for (mname, code, count, meta, units, members, record_type) in specs {
        let mut m = MetricSpec::new(&mname, parse_type(code)?, count, meta);
        m.unit = Some(units.unwrap_or_default());
        m.record_type = record_type;
        for (n, c, k, u) in members {
            let mut member = MetricSpec::new(&n, parse_type(c)?, k, false);
            member.unit = Some(u.unwrap_or_default());
            m.members.push(member);
        }
        metrics.push(m);
    }
    Ok(Schema { name, metrics, digest: None, meta_sz: None, heap_sz: None })
}

impl PySet {
    /// A remote set found by a lookup.
    pub(crate) fn remote(set: client::Set) -> PySet {
        PySet { kind: Kind::Remote { set, view: Arc::new(Mutex::new(None)) } }
    }

    fn remote_parts(&self) -> PyResult<(&client::Set, &View)> {
        match &self.kind {
            Kind::Remote { set, view } => Ok((set, view)),
            Kind::Local(_) => Err(PyTypeError::new_err("only a looked-up set is updated from a peer")),
        }
    }

    fn local(&self) -> PyResult<&Mutex<Local>> {
        match &self.kind {
            Kind::Local(l) => Ok(l),
            Kind::Remote { .. } => Err(PyTypeError::new_err("a looked-up set is read-only")),
        }
    }

    /// Run `f` on a local set's current image.
    fn read_local<R>(local: &Local, f: impl FnOnce(&LocalSet) -> R) -> R {
        match (&local.handle, &local.owned) {
            (Some(h), _) => h.read(f),
            (None, Some(s)) => f(s),
            (None, None) => unreachable!("a local set is owned or published"),
        }
    }

    /// Change a local set (published: under its lock, pushing on a transaction's end).
    fn write_local<R>(local: &mut Local, f: impl FnOnce(&mut LocalSet) -> R) -> R {
        match (&local.handle, &mut local.owned) {
            (Some(h), _) => h.update(f),
            (None, Some(s)) => f(s),
            (None, None) => unreachable!("a local set is owned or published"),
        }
    }

    /// Run `f` on the metadata (remote: the last snapshot's, or the lookup's).
    fn with_meta<R>(&self, f: impl FnOnce(&SetMeta) -> R) -> R {
        match &self.kind {
            Kind::Remote { set, view } => match view.lock().as_ref() {
                Some(s) => f(&s.meta),
                None => f(&set.meta()),
            },
            Kind::Local(l) => Self::read_local(&l.lock(), |s| f(s.meta())),
        }
    }

    fn index(&self, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        if let Ok(i) = key.extract::<isize>() {
            let card = self.with_meta(SetMeta::card) as isize;
            let j = if i < 0 { i + card } else { i };
            if !(0..card).contains(&j) {
                return Err(PyIndexError::new_err(format!("metric index {i} out of range (card {card})")));
            }
            return Ok(j as usize);
        }
        let name: String = key.extract().map_err(|_| PyTypeError::new_err("a metric key is an int or a str"))?;
        self.with_meta(|m| m.index_of(&name)).ok_or_else(|| PyKeyError::new_err(format!("metric '{name}' not found")))
    }

    /// The Python value of metric `i`.
    fn value_py(&self, py: Python<'_>, i: usize) -> PyResult<Py<PyAny>> {
        let none = || Ok(py.None());
        match &self.kind {
            Kind::Remote { set, view } => {
                let snap = view.lock().clone();
                match snap {
                    Some(s) => s.value(i).map_or_else(none, |v| Ok(to_py(py, v, &s.meta)?.unbind())),
                    None => {
                        let meta = set.meta();
                        meta.values
                            .get(i)
                            .and_then(Option::as_ref)
                            .map_or_else(none, |v| Ok(to_py(py, v, &meta)?.unbind()))
                    }
                }
            }
            Kind::Local(l) => {
                // Copied under the lock, made Python after: building lists and dicts can
                // run a collection, and its finalizers can give the GIL to a thread that
                // then waits for this lock.
                let (value, layout) = {
                    let local = l.lock();
                    (Self::read_local(&local, |s| Self::local_value(s, i)), local.layout.clone())
                };
                value.map_or_else(none, |v| Ok(to_py(py, &v, &layout)?.unbind()))
            }
        }
    }

    fn local_value(s: &LocalSet, i: usize) -> Option<MetricValue> {
        let ty = s.meta().metrics.get(i)?.ty;
        match ty {
            ValueType::List | ValueType::RecordArray => s.data().ok()?.values.get(i).cloned().flatten(),
            ValueType::RecordType => None,
            _ => s.get(i).ok(),
        }
    }

    fn set_value(&self, i: usize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let local = self.local()?;
        // What converting needs, copied under the lock; the conversion runs Python code
        // (`__index__`, iterators), which may hand the GIL to a thread that then waits for
        // this lock: it is taken again to store.
        let (current, layout) = {
            let local = local.lock();
            let current = Self::read_local(&local, |s| match s.meta().metrics[i].ty {
                t if t.is_array() || t == ValueType::RecordArray => Self::local_value(s, i),
                _ => None,
            });
            (current, local.layout.clone())
        };
        let v = values::from_py(value, i, &layout, current.as_ref())?;
        let ty = layout.metrics[i].ty;
        Self::write_local(&mut local.lock(), |s| {
            match ty {
                ValueType::List | ValueType::RecordArray => s.update_values(|vals| vals[i] = Some(v)),
                _ => s.set(i, &v),
            }
            .map_err(set_err)
        })
    }

    fn store(view: &View, snap: Arc<SetSnapshot>) {
        *view.lock() = Some(snap);
    }

    pub(crate) fn name_of(&self) -> String {
        match &self.kind {
            Kind::Remote { set, .. } => set.name().to_owned(),
            Kind::Local(l) => l.lock().info.instance.clone(),
        }
    }

    fn push_callback(
        slf: &Bound<'_, Self>,
        cb: Option<Py<PyAny>>,
        cb_arg: Option<Py<PyAny>>,
    ) -> PyResult<impl FnMut(&client::Set, PushResult, u32) + Send + 'static> {
        let env = env()?;
        let view = slf.get().remote_parts()?.1.clone();
        let me: Py<PySet> = slf.clone().unbind();
        Ok(move |_: &client::Set, r: PushResult, flags: u32| {
            if let Ok(s) = r {
                Self::store(&view, s);
            }
            if let Some(cb) = &cb {
                crate::gil::attach(|py| {
                    let arg = cb_arg.as_ref().map_or_else(|| py.None(), |a| a.clone_ref(py));
                    env.call(py, "ldms.push", cb, (me.clone_ref(py), flags, arg));
                });
            }
        })
    }
}

#[pymethods]
impl PySet {
    #[new]
    #[pyo3(signature = (name, schema, uid=0, gid=0, perm=0o777, producer=None))]
    fn new(
        py: Python<'_>,
        name: String,
        schema: &Bound<'_, PyAny>,
        uid: u32,
        gid: u32,
        perm: u32,
        producer: Option<String>,
    ) -> PyResult<Self> {
        let schema = schema_from_py(schema)?;
        let os = py.import("os")?;
        let uid = if uid != 0 { uid } else { os.call_method0("geteuid")?.extract()? };
        let gid = if gid != 0 { gid } else { os.call_method0("getegid")?.extract()? };
        let info = SetInfo { producer: producer.unwrap_or_default(), instance: name, uid, gid, perm, meta_gn: 1 };
        let set = LocalSet::new(&schema, &info).map_err(set_err)?;
        Ok(PySet {
            kind: Kind::Local(Box::new(Mutex::new(Local {
                schema,
                layout: Arc::new(set.meta().clone()),
                info,
                owned: Some(set),
                handle: None,
            }))),
        })
    }

    /// Update the set from its peer. Blocking without `cb` (raises `ConnectionError`
    /// on failure, `pvloom.WouldDeadlock` inside a callback); with `cb`, returns at
    /// once and `cb(set, flags, cb_arg)` follows (`LDMS_UPD_ERROR(flags)`: the errno).
    #[pyo3(signature = (cb=None, cb_arg=None))]
    fn update(slf: &Bound<'_, Self>, cb: Option<Py<PyAny>>, cb_arg: Option<Py<PyAny>>) -> PyResult<()> {
        let me = slf.get();
        let (set, view) = me.remote_parts()?;
        let Some(cb) = cb else {
            may_block()?;
            return match wait_for(slf.py(), set.update_async(), None, "update")? {
                Ok(snap) => {
                    Self::store(view, snap);
                    Ok(())
                }
                Err(e) => Err(connection_error(e.errno(), "update error")),
            };
        };
        let env = env()?;
        let view = view.clone();
        let pyset: Py<PySet> = slf.clone().unbind();
        set.update_cb(move |_, r, flags| {
            if let Ok(s) = r {
                Self::store(&view, s);
            }
            crate::gil::attach(|py| {
                let arg = cb_arg.unwrap_or_else(|| py.None());
                env.call(py, "ldms.update", &cb, (pyset, flags, arg));
            });
        });
        Ok(())
    }

    /// Ask the peer to push the set (`flag`: `LDMS_XPRT_PUSH_F_CHANGE`, on every
    /// transaction end); `cb(set, flags, cb_arg)` per push, with `UPD_F_PUSH`, the last
    /// (after `cancel_push`) with `UPD_F_PUSH_LAST`. Without `cb` pushes only refresh
    /// the values.
    #[pyo3(signature = (flag=1, cb=None, cb_arg=None))]
    fn register_push(
        slf: &Bound<'_, Self>,
        flag: u32,
        cb: Option<Py<PyAny>>,
        cb_arg: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let callback = Self::push_callback(slf, cb, cb_arg)?;
        slf.get().remote_parts()?.0.register_push(flag, callback);
        Ok(())
    }

    /// `register_push` with the callback first (the threading-model document's name).
    #[pyo3(signature = (cb=None, cb_arg=None, flags=1))]
    fn subscribe_push(
        slf: &Bound<'_, Self>,
        cb: Option<Py<PyAny>>,
        cb_arg: Option<Py<PyAny>>,
        flags: u32,
    ) -> PyResult<()> {
        Self::register_push(slf, flags, cb, cb_arg)
    }

    /// Stop pushes; the push callback gets one last call with `UPD_F_PUSH_LAST`.
    fn cancel_push(&self) -> PyResult<()> {
        self.remote_parts()?.0.cancel_push();
        Ok(())
    }

    /// Make the set available to peers (served by every `Xprt.listen`).
    fn publish(&self) -> PyResult<()> {
        let mut local = self.local()?.lock();
        let Some(set) = local.owned.take() else { return Ok(()) };
        match env()?.registry.publish(set.clone()) {
            Ok(handle) => {
                local.handle = Some(handle);
                Ok(())
            }
            Err(e) => {
                local.owned = Some(set);
                Err(PyOSError::new_err((17, format!("ldms_set_publish() failed: {e}"))))
            }
        }
    }

    /// Withdraw the set: peers that looked it up get SET_DELETE.
    fn unpublish(&self) -> PyResult<()> {
        let mut local = self.local()?.lock();
        if let Some(h) = local.handle.take() {
            local.owned = Some(h.read(LocalSet::clone));
            h.unpublish();
        }
        Ok(())
    }

    /// Delete the set (unpublishing it first).
    fn delete(&self) -> PyResult<()> {
        if matches!(self.kind, Kind::Local(_)) {
            self.unpublish()?;
        }
        Ok(())
    }

    /// Begin a data transaction (readers see the set inconsistent until it ends).
    fn transaction_begin(&self) -> PyResult<()> {
        let mut local = self.local()?.lock();
        Self::write_local(&mut local, |s| s.transaction_begin(now()));
        Ok(())
    }

    /// End the transaction: timestamp, duration, data generation + 1; peers registered
    /// for push get the new values.
    fn transaction_end(&self) -> PyResult<()> {
        let mut local = self.local()?.lock();
        Self::write_local(&mut local, |s| s.transaction_end(now()));
        Ok(())
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if let Ok(slice) = key.cast::<PySlice>() {
            let card = self.with_meta(SetMeta::card);
            let ix = slice.indices(card as isize)?;
            let mut out = Vec::with_capacity(ix.slicelength);
            let mut i = ix.start;
            for _ in 0..ix.slicelength {
                out.push(self.value_py(py, i as usize)?);
                i += ix.step;
            }
            return Ok(PyTuple::new(py, out)?.into_any().unbind());
        }
        let i = self.index(key)?;
        self.value_py(py, i)
    }

    fn __setitem__(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(slice) = key.cast::<PySlice>() {
            let card = self.with_meta(SetMeta::card);
            let ix = slice.indices(card as isize)?;
            let items: Vec<Bound<'_, PyAny>> = value.try_iter()?.collect::<PyResult<_>>()?;
            if items.len() != ix.slicelength {
                return Err(PyValueError::new_err("Mismatch number of assign elements"));
            }
            let mut i = ix.start;
            for item in &items {
                self.set_value(i as usize, item)?;
                i += ix.step;
            }
            return Ok(());
        }
        let i = self.index(key)?;
        self.set_value(i, value)
    }

    /// `S[i] = v`, or `S[i][j] = v` with `sub_idx=j` for an array metric.
    #[pyo3(signature = (metric_id, val, sub_idx=None))]
    fn set_metric(&self, metric_id: usize, val: &Bound<'_, PyAny>, sub_idx: Option<usize>) -> PyResult<()> {
        let Some(j) = sub_idx else { return self.set_value(metric_id, val) };
        let local = self.local()?;
        let ty = Self::read_local(&local.lock(), |s| s.meta().metrics.get(metric_id).map(|d| d.ty));
        let ty = ty.ok_or_else(|| PyIndexError::new_err(metric_id))?;
        // Converted outside the lock, as in `set_value`.
        let elem = values::primitive(val, ty.element(), None, None)?;
        Self::write_local(&mut local.lock(), |s| s.set_elem(metric_id, j, &elem).map_err(set_err))
    }

    /// `S[name] = v`.
    fn set_metric_by_name(&self, key: &Bound<'_, PyString>, val: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.index(key.as_any())?;
        self.set_value(i, val)
    }

    /// `S[i]`.
    fn get_metric(&self, py: Python<'_>, idx: usize) -> PyResult<Py<PyAny>> {
        let i = self.index(&idx.into_pyobject(py)?.into_any())?;
        self.value_py(py, i)
    }

    /// `S[name]`.
    fn get_metric_by_name(&self, py: Python<'_>, key: &Bound<'_, PyString>) -> PyResult<Py<PyAny>> {
        let i = self.index(key.as_any())?;
        self.value_py(py, i)
    }

    /// The index of the metric called `name` (-1 if none), as `ldms_metric_by_name`.
    fn metric_by_name(&self, name: &str) -> i64 {
        self.with_meta(|m| m.index_of(name)).map_or(-1, |i| i as i64)
    }

    /// The type (`ldms.V_*`) of metric `key` (index or name, or a list of them).
    fn get_metric_type<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if !key.is_instance_of::<PyString>() && key.extract::<isize>().is_err() {
            let out = key.try_iter()?.map(|k| self.get_metric_type(py, &k?)).collect::<PyResult<Vec<_>>>()?;
            return Ok(PyList::new(py, out)?.into_any());
        }
        let i = self.index(key)?;
        let code = self.with_meta(|m| m.metrics[i].ty.code());
        ldms_module(py)?.getattr("ldms_value_type")?.call1((code,))
    }

    /// The name of metric `key`.
    fn get_metric_name(&self, key: &Bound<'_, PyAny>) -> PyResult<String> {
        let i = self.index(key)?;
        Ok(self.with_meta(|m| m.metrics[i].name.clone()))
    }

    /// The unit of metric `key` (`None` if it has none).
    fn get_metric_unit(&self, key: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        let i = self.index(key)?;
        Ok(self.with_meta(|m| m.metrics[i].unit.clone().filter(|u| !u.is_empty())))
    }

    /// `MetricTemplate(name, type, count, flags, units, rec_def)` of metric `key`.
    fn get_metric_info<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let i = self.index(key)?;
        let (name, code, count, flags, unit) = self.with_meta(|m| {
            let d = &m.metrics[i];
            (d.name.clone(), d.ty.code(), d.count, d.flags, d.unit.clone().filter(|u| !u.is_empty()))
        });
        let count = match self.value_py(py, i)?.bind(py) {
            v if code == ValueType::List.code() || code == ValueType::RecordArray.code() => v.len().unwrap_or(0),
            _ if ValueType::from_code(code).is_some_and(ValueType::is_array) => count as usize,
            _ => 1,
        };
        let module = ldms_module(py)?;
        let ty = module.getattr("ldms_value_type")?.call1((code,))?;
        module.getattr("MetricTemplate")?.call1((name, ty, count, flags, unit, py.None()))
    }

    /// The metric names, in index order.
    fn keys(&self) -> Vec<String> {
        self.with_meta(|m| m.metrics.iter().map(|d| d.name.clone()).collect())
    }

    /// The metric values, in index order.
    fn values(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        (0..self.with_meta(SetMeta::card)).map(|i| self.value_py(py, i)).collect()
    }

    /// `(name, value)` pairs, in index order.
    fn items(&self, py: Python<'_>) -> PyResult<Vec<(String, Py<PyAny>)>> {
        self.keys().into_iter().enumerate().map(|(i, k)| Ok((k, self.value_py(py, i)?))).collect()
    }

    /// `{name: value}`.
    fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.items(py)? {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// `[value]`, in index order.
    fn as_list(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self.values(py)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PyList::new(py, self.keys())?.try_iter().map(Bound::into_any)
    }

    fn __len__(&self) -> usize {
        self.with_meta(SetMeta::card)
    }

    /// The number of metrics.
    #[getter]
    fn card(&self) -> usize {
        self.with_meta(SetMeta::card)
    }

    /// The instance name.
    #[getter]
    fn name(&self) -> String {
        self.name_of()
    }

    /// The instance name.
    #[getter]
    fn instance_name(&self) -> String {
        self.name_of()
    }

    /// The schema name.
    #[getter]
    fn schema_name(&self) -> String {
        self.with_meta(|m| m.schema_name.clone())
    }

    /// The producer name; settable on a set made here before it is published.
    #[getter]
    fn producer_name(&self) -> String {
        self.with_meta(|m| m.producer.clone())
    }

    #[setter]
    fn set_producer_name(&self, val: String) -> PyResult<()> {
        let mut local = self.local()?.lock();
        let Some(old) = local.owned.as_ref() else {
            return Err(PyValueError::new_err("the producer name of a published set cannot change"));
        };
        let info = SetInfo { producer: val, ..local.info.clone() };
        let mut set = LocalSet::new(&local.schema, &info).map_err(set_err)?;
        set.replace_data(old.data_bytes()).map_err(set_err)?;
        local.info = info;
        local.owned = Some(set);
        Ok(())
    }

    /// Owner uid.
    #[getter]
    fn uid(&self) -> u32 {
        self.with_meta(|m| m.uid)
    }

    /// Owner gid.
    #[getter]
    fn gid(&self) -> u32 {
        self.with_meta(|m| m.gid)
    }

    /// Permission bits.
    #[getter]
    fn perm(&self) -> u32 {
        self.with_meta(|m| m.perm)
    }

    /// Size of the metadata part.
    #[getter]
    fn meta_sz(&self) -> u32 {
        self.with_meta(|m| m.meta_sz)
    }

    /// Size of the data part.
    #[getter]
    fn data_sz(&self) -> u32 {
        self.with_meta(|m| m.data_sz)
    }

    /// Metadata generation number.
    #[getter]
    fn meta_gn(&self) -> u64 {
        match &self.kind {
            Kind::Local(l) => Self::read_local(&l.lock(), LocalSet::meta_gn),
            Kind::Remote { .. } => self.with_meta(|m| m.meta_gn),
        }
    }

    /// Data generation number (remote: of the last update; 0 before any).
    #[getter]
    fn data_gn(&self) -> u64 {
        match &self.kind {
            Kind::Local(l) => Self::read_local(&l.lock(), LocalSet::data_gn),
            Kind::Remote { view, .. } => view.lock().as_ref().map_or(0, |s| s.data_gn()),
        }
    }

    /// True if the last transaction had ended (remote: at the last update).
    #[getter]
    fn is_consistent(&self) -> bool {
        match &self.kind {
            Kind::Local(l) => Self::read_local(&l.lock(), LocalSet::is_consistent),
            Kind::Remote { view, .. } => view.lock().as_ref().is_some_and(|s| s.is_consistent()),
        }
    }

    /// `{"sec": ..., "usec": ...}` of the last transaction's end.
    #[getter]
    fn transaction_timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = self.transaction().ts;
        ts_dict(py, t)
    }

    /// `{"sec": ..., "usec": ...}` of the last transaction's duration.
    #[getter]
    fn transaction_duration<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = self.transaction().dur;
        ts_dict(py, t)
    }

    /// The value of set_info `key` (`None` if unset).
    fn info_get(&self, key: &str) -> Option<String> {
        match &self.kind {
            Kind::Remote { set, .. } => set.info_get(key).map(str::to_owned),
            Kind::Local(l) => {
                Self::read_local(&l.lock(), |s| s.info().iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
            }
        }
    }

    fn __repr__(&self) -> String {
        format!("<pvloom.ldms.Set {:?}>", self.name_of())
    }
}

impl PySet {
    fn transaction(&self) -> pvloom_ldms::set::Transaction {
        match &self.kind {
            Kind::Local(l) => Self::read_local(&l.lock(), LocalSet::transaction),
            Kind::Remote { view, .. } => view.lock().as_ref().map(|s| s.header.trans).unwrap_or_default(),
        }
    }
}

fn ts_dict(py: Python<'_>, t: Timestamp) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("sec", t.sec)?;
    d.set_item("usec", t.usec)?;
    Ok(d)
}

/// Counts the updates of one `update_all` down; the last one completes the wait.
struct Countdown {
    left: AtomicUsize,
    ok: AtomicUsize,
    done: Mutex<Option<Completer<()>>>,
}

impl Countdown {
    fn finish(&self, ok: bool) {
        if ok {
            self.ok.fetch_add(1, Ordering::Relaxed);
        }
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(done) = self.done.lock().take()
        {
            done.succeed(());
        }
    }
}

/// `ldms.update_all(sets, timeout=None) -> int`: update every looked-up set of `sets`
/// in one native call (the requests go out together, with the GIL released) and wait
/// for all; returns how many succeeded. Each set's values are those of its update.
#[pyfunction(name = "ldms_update_all")]
#[pyo3(signature = (sets, timeout=None))]
pub fn ldms_update_all(py: Python<'_>, sets: Vec<PyRef<'_, PySet>>, timeout: Option<f64>) -> PyResult<usize> {
    may_block()?;
    let targets: Vec<(client::Set, View)> =
        sets.iter().map(|s| s.remote_parts().map(|(s, v)| (s.clone(), v.clone()))).collect::<PyResult<_>>()?;
    drop(sets);
    if targets.is_empty() {
        return Ok(0);
    }
    let (done, wait) = pvloom_core::completion();
    let count = Arc::new(Countdown {
        left: AtomicUsize::new(targets.len()),
        ok: AtomicUsize::new(0),
        done: Mutex::new(Some(done)),
    });
    let issued = count.clone();
    py.detach(move || {
        for (set, view) in targets {
            let count = issued.clone();
            set.update_cb(move |_, r, _| {
                let ok = match r {
                    Ok(s) => {
                        PySet::store(&view, s);
                        true
                    }
                    Err(_) => false,
                };
                count.finish(ok);
            });
        }
    });
    wait_for(py, wait, timeout, "update_all")?;
    Ok(count.ok.load(Ordering::Relaxed))
}
