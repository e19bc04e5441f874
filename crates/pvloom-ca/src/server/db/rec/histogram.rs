//! Histogram (`histogramRecord`): counts of the signal `SGNL` (read from
//! `SVL`) in `NELM` buckets between `LLIM` and `ULIM`. `CMD` clears, starts
//! and stops collection; writing `SGNL` counts it at once. Every `SDEL` seconds (when
//! above 0) counts since the last monitor are posted; `MDEL` posts them sooner. The
//! display limits of `VAL` are zero rather than `HOPR`/`LOPR`, and clients
//! cannot write `VAL`.

use crate::proto::constants::{DBE_LOG, DBE_VALUE, alarm_status, severity};
use crate::proto::dbr::Value;

use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef, menus};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "histogram", fields: &[FIELDS], new: || Box::new(Histogram::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": ULong, RO;
    "NELM": UShort, RO, "1";
    "CSTA": S, RO, "1";
    "CMD": FieldType::Menu(&menus::MENU_HISTOGRAM_CMD);
    "ULIM": D, PROP;
    "LLIM": D, PROP;
    "WDTH": D, RO;
    "SGNL": D;
    "PREC": S, PROP;
    "SVL": InLink;
    "MDEL": S;
    "MCNT": S, RO;
    "SDEL": D;
    "SIOL": InLink;
    "SVAL": D;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "OLDSIMM": SIMM, RO;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "HOPR": ULong, PROP;
    "LOPR": ULong, PROP;
};

/// The state of a histogram record.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// The bucket counts (`VAL`, `NELM` of them).
    pub counts: Vec<u32>,
    /// Collecting (`CSTA`).
    pub csta: bool,
    /// Upper limit (`ULIM`, exclusive).
    pub ulim: f64,
    /// Lower limit (`LLIM`).
    pub llim: f64,
    /// The signal (`SGNL`).
    pub sgnl: f64,
    /// Counts since the last monitor (`MCNT`).
    pub mcnt: i16,
    /// Counts between monitors (`MDEL`).
    pub mdel: i16,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0], csta: true, ulim: 0.0, llim: 0.0, sgnl: 0.0, mcnt: 0, mdel: 0 }
    }
}

impl Histogram {
    fn width(&self) -> f64 {
        (self.ulim - self.llim) / self.counts.len() as f64
    }

    /// `clear_histogram`: zero counts; the next processing posts them.
    fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.mcnt = self.mdel.saturating_add(1);
    }

    /// `add_count`: counts `SGNL` in its bucket while collecting; false when
    /// the limits are unusable (`LLIM` >= `ULIM`).
    fn add_count(&mut self) -> bool {
        if !self.csta {
            return true;
        }
        if self.llim >= self.ulim {
            return false;
        }
        if self.sgnl < self.llim || self.sgnl >= self.ulim {
            return true;
        }
        let offset = self.sgnl - self.llim;
        let width = self.width();
        let nelm = self.counts.len();
        let bucket = (1..=nelm).find(|&i| offset <= i as f64 * width).unwrap_or(nelm + 1) - 1;
        if let Some(count) = self.counts.get_mut(bucket) {
            // base wraps a full bucket to 0 before counting.
            *count = if *count == u32::MAX { 1 } else { *count + 1 };
            self.mcnt = self.mcnt.saturating_add(1);
        }
        true
    }
}

impl RecordSupport for Histogram {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        Some(match name {
            "VAL" => FieldValue::Array(Value::Double(self.counts.iter().map(|&c| f64::from(c)).collect())),
            "NELM" => FieldValue::Int(self.counts.len() as i64),
            "CSTA" => FieldValue::Int(self.csta.into()),
            "ULIM" => FieldValue::Double(self.ulim),
            "LLIM" => FieldValue::Double(self.llim),
            "WDTH" => FieldValue::Double(self.width()),
            "SGNL" => FieldValue::Double(self.sgnl),
            "MCNT" => FieldValue::Int(self.mcnt.into()),
            "MDEL" => FieldValue::Int(self.mdel.into()),
            // CMD reads back 0 ("Read") after acting, as its special() resets it.
            "CMD" => FieldValue::Enum(0),
            _ => return None,
        })
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        let f = value.as_f64().unwrap_or(0.0);
        match name {
            "NELM" => {
                self.counts = vec![0; (f as usize).clamp(1, usize::from(u16::MAX))];
            }
            "CSTA" => self.csta = f != 0.0,
            "ULIM" | "LLIM" => {
                if name == "ULIM" {
                    self.ulim = f;
                } else {
                    self.llim = f;
                }
                self.clear();
            }
            "SGNL" => {
                self.sgnl = f;
                self.add_count();
            }
            "MDEL" => self.mdel = f as i16,
            "CMD" => match f as u16 {
                0 | 1 => self.clear(),
                2 => self.csta = true,
                _ => self.csta = false,
            },
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if let Some(v) = ctx.input("SVL").and_then(FieldValue::as_f64) {
            self.sgnl = v;
        }
        *ctx.udf = false;
        if !self.add_count() && ctx.alarm.nsev < severity::INVALID {
            ctx.raise(alarm_status::SOFT, severity::INVALID);
        }
        if self.mcnt > self.mdel {
            self.mcnt = 0;
            return DBE_VALUE | DBE_LOG;
        }
        0
    }

    fn field_type(&self, name: &str) -> Option<FieldType> {
        (name == "VAL").then_some(FieldType::ULong)
    }

    fn element_count(&self, name: &str) -> u32 {
        if name == "VAL" { self.counts.len() as u32 } else { 1 }
    }

    fn is_array(&self, name: &str) -> bool {
        name == "VAL"
    }

    fn loads_read_only(&self, name: &str) -> bool {
        matches!(name, "NELM" | "CSTA")
    }

    fn watchdog(&mut self) -> bool {
        // wdogCallback: counts since the last monitor are posted, whatever MDEL says.
        let changed = self.mcnt > 0;
        self.mcnt = 0;
        changed
    }

    fn input_links(&self) -> &'static [&'static str] {
        &["SVL"]
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::proto::constants::{alarm_status, severity};
    use crate::proto::dbr::Value;
    use crate::server::db::FieldValue::{Array, Double, Enum};

    #[test]
    fn signals_are_counted_in_buckets() {
        let mut db = db(r#"
            record(ao, sig) { }
            record(histogram, h) { field(NELM, 4) field(LLIM, 0) field(ULIM, 8) field(SVL, "sig") }
            record(histogram, bad) { field(LLIM, 1) field(ULIM, 1) }
        "#);
        for v in [0.5, 1.0, 3.0, 7.9, 8.0, -1.0] {
            put(&mut db, "sig", Double(v));
            process(&mut db, "h");
        }
        assert_eq!(get(&db, "h"), Array(Value::Double(vec![2.0, 1.0, 0.0, 1.0])), "8 and -1 are outside");
        assert_eq!(number(&db, "h.WDTH"), 2.0);
        put(&mut db, "h.CMD", Enum(3));
        put(&mut db, "h.SGNL", Double(5.0));
        assert_eq!(get(&db, "h"), Array(Value::Double(vec![2.0, 1.0, 0.0, 1.0])), "stopped");
        put(&mut db, "h.CMD", Enum(2));
        put(&mut db, "h.SGNL", Double(5.0));
        assert_eq!(get(&db, "h"), Array(Value::Double(vec![2.0, 1.0, 1.0, 1.0])), "writing SGNL counts it");
        put(&mut db, "h.CMD", Enum(1));
        assert_eq!(get(&db, "h"), Array(Value::Double(vec![0.0; 4])));
        process(&mut db, "bad");
        assert_eq!(alarm(&db, "bad"), (alarm_status::SOFT, severity::INVALID));
    }

    #[test]
    fn sdel_posts_counts_every_period_whatever_mdel() {
        use crate::proto::constants::DBE_VALUE;
        let mut db = db(
            r#"record(histogram, h) { field(NELM, 2) field(LLIM, 0) field(ULIM, 2) field(MDEL, 100) field(SDEL, 1) }"#,
        );
        let h = db.find("h").unwrap();
        assert_eq!(db.next_deadline(), Some(at(1.0)), "armed at init");
        put_at(&mut db, "h.SGNL", Double(0.5), at(0.2));
        assert!(db.run_due(at(0.9)).is_empty());
        let posted = db.run_due(at(1.0));
        assert!(posted.iter().any(|(id, c)| *id == h && c.mask_for("VAL") & DBE_VALUE != 0), "{posted:?}");
        assert_eq!(db.next_deadline(), Some(at(2.0)), "re-armed");
        assert!(db.run_due(at(2.0)).iter().all(|(id, _)| *id != h), "nothing counted since: nothing posted");
        put_at(&mut db, "h.SDEL", Double(0.0), at(2.5));
        db.run_due(at(3.0));
        assert_eq!(db.next_deadline(), None, "SDEL 0 stops it");
    }
}
