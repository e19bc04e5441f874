//! Long string output (`lsoRecord`): a string of up to `SIZV` - 1 bytes; `DOL` in closed loop, `VAL` written to `OUT`.
//! Channels see `VAL` and `OVAL` as strings (as `DBR_STRING`, at most 39
//! bytes); a `.db` file can set at most 40 bytes of `VAL`.

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef, menus};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef = RecordTypeDef { name: "lso", fields: FIELDS, new: || Box::new(Lso::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": s(41), PP;
    "OVAL": s(41), RO;
    "SIZV": UShort, RO, "41";
    "LEN": ULong, RO;
    "OLEN": ULong, RO;
    "DOL": InLink;
    "IVOA": IVOA;
    "IVOV": s(40);
    "OMSL": OMSL;
    "OUT": OutLink;
    "MPST": FieldType::Menu(&menus::MENU_POST);
    "APST": FieldType::Menu(&menus::MENU_POST);
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SIOL": OutLink;
    "OLDSIMM": SIMM, RO;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

/// The state of an lso record.
#[derive(Debug, Clone, PartialEq)]
pub struct Lso {
    /// `VAL`, `OVAL`, `MPST`, `APST`.
    pub text: Text,
    /// Capacity of `VAL` in bytes, with the terminating nul (`SIZV`).
    pub sizv: u16,
}

impl Default for Lso {
    fn default() -> Self {
        Lso { text: Text::default(), sizv: 41 }
    }
}

impl Lso {
    fn set_value(&mut self, text: &str) {
        self.text.val = truncate_to(text, usize::from(self.sizv).saturating_sub(1)).to_string();
    }

    /// Posts `VAL` by `MPST`/`APST`; `LEN` and `OLEN` follow.
    fn post(&mut self, ctx: &mut Process<'_>) -> u16 {
        let mask = process_text(&mut self.text, ctx);
        ctx.set("LEN", FieldValue::Int(self.text.val.len() as i64 + 1));
        ctx.set("OLEN", FieldValue::Int(self.text.oval.len() as i64 + 1));
        mask
    }
}

impl RecordSupport for Lso {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        match name {
            "SIZV" => Some(FieldValue::Int(self.sizv.into())),
            _ => get_text(&self.text, name),
        }
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        match name {
            // lsi's init_record: SIZV is at most 32767 and at least 1.
            "SIZV" => self.sizv = (value.as_f64().unwrap_or(41.0) as u16).clamp(1, 0x7fff),
            "VAL" => self.set_value(&value.to_text()),
            _ => return Ok(set_text(&mut self.text, name, value)),
        }
        Ok(true)
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if ctx.index("OMSL") == 1
            && let Some(v) = ctx.input("DOL")
        {
            self.set_value(&v.to_text());
        }
        let mask = self.post(ctx);
        write_output(ctx, FieldValue::String(self.text.val.clone()));
        mask
    }

    fn field_type(&self, name: &str) -> Option<FieldType> {
        matches!(name, "VAL" | "OVAL").then_some(FieldType::String { size: self.sizv })
    }

    fn loads_read_only(&self, name: &str) -> bool {
        name == "SIZV"
    }

    fn value_loaded(&mut self) {
        self.text.oval = self.text.val.clone();
    }

    fn input_links(&self) -> &'static [&'static str] {
        &["DOL"]
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::server::db::FieldType;
    use crate::server::db::FieldValue::{Int, String as Text};

    #[test]
    fn long_strings_are_bounded_by_sizv() {
        let mut db = db(r#"
            record(lsi, in) { field(SIZV, 8) field(INP, "out") }
            record(lso, out) { field(SIZV, 100) field(OUT, "in PP") }
        "#);
        let in_id = db.find("in").unwrap();
        assert_eq!(db.record(in_id).field_type("VAL"), Some(FieldType::String { size: 8 }));
        put(&mut db, "out", Text("hello, world".into()));
        assert_eq!(get(&db, "out"), Text("hello, world".into()));
        assert_eq!(get(&db, "out.LEN"), Int(13), "with the nul");
        assert_eq!(get(&db, "in"), Text("hello, ".into()), "SIZV 8 holds 7 bytes");
        assert_eq!(get(&db, "in.OVAL"), Text("hello, ".into()));
    }
}
