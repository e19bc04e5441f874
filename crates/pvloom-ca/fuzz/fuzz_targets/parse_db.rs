//! Arbitrary text into the `.db` parser, the macro expander and the calc compiler:
//! errors are fine, panics and hangs are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvloom_ca::server::db::{CalcExpr, Macros, parse_db};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let macros = Macros::parse("P=X:,R=$(P)1").unwrap_or_default();
    let _ = parse_db(&text, "fuzz.db", &macros);
    if let Ok(expr) = CalcExpr::compile(&text) {
        let _ = expr.eval(&[1.0; 12], 0.0);
    }
    let _ = Macros::parse(&text);
});
