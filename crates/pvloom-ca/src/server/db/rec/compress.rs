//! Compression (`compressRecord`): each processing reads `INP` (a scalar or
//! an array) and puts `N`-to-1 low/high/average/median values, element-wise
//! averages over `N` arrays, or the samples themselves (circular buffer) into
//! a FIFO or LIFO buffer of `NSAM` values. Writing `RES`, `ALG`, `BALG`,
//! `PBUF`, `N` or `NSAM` empties it. Scalar inputs take the median as an
//! average, as base does.

use crate::proto::constants::{DBE_LOG, DBE_VALUE, alarm_status, severity};
use crate::proto::dbr::Value;

use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef, menus};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "compress", fields: &[FIELDS], new: || Box::new(Compress::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D, RO;
    "INP": InLink;
    "RES": S;
    "ALG": FieldType::Menu(&menus::MENU_COMPRESS_ALG);
    "PBUF": YESNO, 0, "NO";
    "BALG": FieldType::Menu(&menus::MENU_BUFFERING_ALG);
    "NSAM": ULong, RO, "1";
    "N": ULong, 0, "1";
    "IHIL": D;
    "ILIL": D;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "PREC": S, PROP;
    "EGU": s(16), PROP;
    "OFF": ULong, RO;
    "NUSE": ULong, RO;
    "OUSE": ULong, RO;
    "INPN": L, RO;
    "CVB": D, RO;
    "INX": ULong, RO;
};

const LOW: u16 = 0;
const HIGH: u16 = 1;
const AVERAGE: u16 = 3;
const CIRCULAR: u16 = 4;
const MEDIAN: u16 = 5;

/// The state of a compress record.
#[derive(Debug, Clone, PartialEq)]
pub struct Compress {
    /// The ring of `NSAM` values.
    pub buffer: Vec<f64>,
    /// Next slot written (`OFF`).
    pub off: usize,
    /// Values in use (`NUSE`).
    pub nuse: usize,
    /// `NUSE` as last posted (`OUSE`).
    pub ouse: usize,
    /// Inputs combined so far (`INX`).
    pub inx: u32,
    /// The value being combined from scalars (`CVB`).
    pub cvb: f64,
    /// Element-wise sums for `Average`.
    sums: Vec<f64>,
    /// Elements the input link had last time (`INPN`).
    inpn: usize,
    fifo: bool,
}

impl Default for Compress {
    fn default() -> Self {
        Compress {
            buffer: vec![0.0],
            off: 0,
            nuse: 0,
            ouse: 0,
            inx: 0,
            cvb: 0.0,
            sums: Vec::new(),
            inpn: 0,
            fifo: true,
        }
    }
}

impl Compress {
    fn reset(&mut self) {
        self.off = 0;
        self.nuse = 0;
        self.inx = 0;
        self.cvb = 0.0;
        self.buffer.iter_mut().for_each(|v| *v = 0.0);
        self.sums.clear();
    }

    /// `put_value`: FIFO writes forward from `OFF`, LIFO backward.
    fn put_values(&mut self, values: &[f64]) {
        let nsam = self.buffer.len();
        self.nuse = (self.nuse + values.len()).min(nsam);
        for &v in values {
            if !self.fifo {
                self.off = (self.off + nsam - 1) % nsam;
            }
            self.buffer[self.off] = v;
            if self.fifo {
                self.off = (self.off + 1) % nsam;
            }
        }
    }

    /// The values in use, oldest first (FIFO) or newest first (LIFO).
    fn ordered(&self) -> Vec<f64> {
        let nsam = self.buffer.len();
        let start = if self.fifo { (self.off + nsam - self.nuse) % nsam } else { self.off };
        (0..self.nuse).map(|i| self.buffer[(start + i) % nsam]).collect()
    }

    /// `compress_scalar`: combines one value; a result every `N` (or each time with `PBUF`).
    fn scalar(&mut self, value: f64, alg: u16, n: u32, partial: bool) {
        let first = self.inx == 0;
        match alg {
            LOW if first || value < self.cvb => self.cvb = value,
            HIGH if first || value > self.cvb => self.cvb = value,
            LOW | HIGH => {}
            _ => self.cvb = (f64::from(self.inx) * self.cvb + value) / f64::from(self.inx + 1),
        }
        self.inx += 1;
        if self.inx >= n || partial {
            self.put_values(&[self.cvb]);
            if self.inx >= n {
                self.inx = 0;
            }
        }
    }

    /// `compress_array`: one value from each `N` input elements within `ILIL`..`IHIL`.
    fn array(&mut self, mut values: Vec<f64>, alg: u16, n: usize, partial: bool, limits: (f64, f64)) {
        let (ilil, ihil) = limits;
        if ilil < ihil {
            let skip = values.iter().take_while(|v| **v < ilil || **v > ihil).count();
            values.drain(..skip);
        }
        let taken = values.len().min(self.buffer.len() * n);
        for chunk in values[..taken].chunks_mut(n) {
            if chunk.len() < n && !partial {
                break;
            }
            let value = match alg {
                LOW => chunk.iter().copied().fold(f64::INFINITY, f64::min),
                HIGH => chunk.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                MEDIAN => {
                    chunk.sort_by(f64::total_cmp);
                    chunk[chunk.len() / 2]
                }
                _ => chunk.iter().sum::<f64>() / chunk.len() as f64,
            };
            self.put_values(&[value]);
        }
    }

    /// `array_average`: element-wise mean of `N` successive input arrays.
    fn average(&mut self, values: &[f64], n: u32) {
        let count = values.len().min(self.buffer.len());
        if self.inx == 0 {
            self.sums = values[..count].to_vec();
        } else {
            self.sums.iter_mut().zip(values).for_each(|(s, v)| *s += v);
        }
        self.inx += 1;
        if self.inx < n {
            return;
        }
        let means: Vec<f64> = self.sums.iter().map(|s| s / f64::from(n)).collect();
        self.put_values(&means);
        self.inx = 0;
    }
}

impl RecordSupport for Compress {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        Some(match name {
            "VAL" => FieldValue::Array(Value::Double(self.ordered())),
            "NSAM" => FieldValue::Int(self.buffer.len() as i64),
            "OFF" => FieldValue::Int(self.off as i64),
            "NUSE" => FieldValue::Int(self.nuse as i64),
            "OUSE" => FieldValue::Int(self.ouse as i64),
            "INX" => FieldValue::Int(self.inx.into()),
            "CVB" => FieldValue::Double(self.cvb),
            "INPN" => FieldValue::Int(self.inpn as i64),
            _ => return None,
        })
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        match name {
            "NSAM" => {
                self.buffer = vec![0.0; (value.as_f64().unwrap_or(1.0) as usize).max(1)];
                self.reset();
                Ok(true)
            }
            "BALG" => {
                self.fifo = value.as_f64() == Some(0.0);
                self.reset();
                Ok(false)
            }
            // SPC_RESET fields: the value is kept, the buffer emptied.
            "RES" | "ALG" | "PBUF" | "N" => {
                self.reset();
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        let values: Option<Vec<f64>> = ctx.input("INP").map(|v| match v {
            FieldValue::Array(a) => match a.convert(crate::proto::dbr::NativeType::Double) {
                Ok(Value::Double(d)) => d,
                _ => Vec::new(),
            },
            other => other.as_f64().into_iter().collect(),
        });
        let Some(values) = values.filter(|v| !v.is_empty()) else {
            // No input link to a record, or nothing read: LINK/INVALID as base.
            ctx.raise(alarm_status::LINK, severity::INVALID);
            return DBE_VALUE | DBE_LOG;
        };
        if values.len() != self.inpn {
            if self.inpn != 0 {
                self.reset();
            }
            self.inpn = values.len();
        }
        let (alg, n) = (ctx.index("ALG"), (ctx.number("N") as u32).max(1));
        let partial = ctx.index("PBUF") == 1;
        match alg {
            AVERAGE => self.average(&values, n),
            CIRCULAR => self.put_values(&values),
            _ if values.len() > 1 => {
                let limits = (ctx.number("ILIL"), ctx.number("IHIL"));
                self.array(values, alg, n as usize, partial, limits);
            }
            _ => self.scalar(values[0], alg, n, partial),
        }
        *ctx.udf = false;
        if self.nuse != self.ouse {
            ctx.changes.post("NUSE", DBE_VALUE | DBE_LOG);
            self.ouse = self.nuse;
        }
        DBE_VALUE | DBE_LOG
    }

    fn field_type(&self, name: &str) -> Option<FieldType> {
        (name == "VAL").then_some(FieldType::Double)
    }

    fn element_count(&self, name: &str) -> u32 {
        if name == "VAL" { self.buffer.len() as u32 } else { 1 }
    }

    fn is_array(&self, name: &str) -> bool {
        name == "VAL"
    }

    fn loads_read_only(&self, name: &str) -> bool {
        name == "NSAM"
    }

    fn input_links(&self) -> &'static [&'static str] {
        &["INP"]
    }

    fn device_time_link(&self) -> Option<&'static str> {
        // compress has no device support: TSE -2 leaves its time stamp as it was.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::proto::constants::{alarm_status, severity};
    use crate::proto::dbr::Value;
    use crate::server::db::FieldValue::{Array, Double, Int};

    #[test]
    fn buffers_and_compression() {
        let mut db = db(r#"
            record(ao, x) { }
            record(waveform, wf) { field(FTVL, DOUBLE) field(NELM, 6) }
            record(compress, ring) { field(ALG, "Circular Buffer") field(NSAM, 3) field(INP, "x") }
            record(compress, lifo) { field(ALG, "Circular Buffer") field(BALG, "LIFO Buffer") field(NSAM, 3) field(INP, "x") }
            record(compress, high) { field(ALG, "N to 1 High Value") field(N, 2) field(NSAM, 4) field(INP, "wf") }
            record(compress, mean) { field(ALG, "N to 1 Average") field(N, 2) field(NSAM, 4) field(INP, "x") }
            record(compress, none) { field(NSAM, 2) }
        "#);
        for v in [1.0, 2.0, 3.0, 4.0] {
            put(&mut db, "x", Double(v));
            for name in ["ring", "lifo", "mean"] {
                process(&mut db, name);
            }
        }
        assert_eq!(get(&db, "ring"), Array(Value::Double(vec![2.0, 3.0, 4.0])), "oldest first");
        assert_eq!(get(&db, "lifo"), Array(Value::Double(vec![4.0, 3.0, 2.0])), "newest first");
        assert_eq!(get(&db, "mean"), Array(Value::Double(vec![1.5, 3.5])), "pairs averaged");
        assert_eq!(get(&db, "mean.NUSE"), Int(2));
        put(&mut db, "wf", Array(Value::Double(vec![1.0, 5.0, 2.0, 3.0, 9.0])));
        process(&mut db, "high");
        assert_eq!(get(&db, "high"), Array(Value::Double(vec![5.0, 3.0])), "the odd one out waits for PBUF");
        put(&mut db, "ring.RES", Int(1));
        assert_eq!(get(&db, "ring.NUSE"), Int(0));
        process(&mut db, "none");
        assert_eq!(alarm(&db, "none"), (alarm_status::LINK, severity::INVALID));
    }
}
