//! The calc record's expression language (EPICS `postfix.c` / `calcPerform.c`).
//!
//! An expression is compiled once to a postfix program with resolved jumps
//! for `?:`; evaluation runs it on a fixed-size stack and never allocates.
//!
//! Operators, loosest binding first (all binary ones left-associative, as in EPICS):
//!
//! | priority | operators |
//! |---|---|
//! | 0 | `c ? a : b` (right-associative) |
//! | 1 | `\|\|` `\|` `OR` `XOR` |
//! | 2 | `&&` `&` `AND` `<<` `>>` `>>>` |
//! | 3 | `<` `<=` `>` `>=` `==` `=` `!=` `#` |
//! | 4 | `+` `-` |
//! | 5 | `*` `/` `%` |
//! | 6 | `^` `**` (power; `2^3^2` is `(2^3)^2`) |
//! | 7 | unary `-` `!` `~` `NOT`, functions (so `-2^2` is 4) |
//!
//! Operands: numbers (decimal, `0x` hex, `INF`, `NAN`), `A`..`L`, `VAL`
//! (the previous result), `PI`, `D2R`, `R2D`, `RNDM`. Functions: `ABS SQRT SQR
//! EXP LN LOGE LOG SIN COS TAN ASIN ACOS ATAN SINH COSH TANH CEIL FLOOR NINT
//! ISINF`, two-argument `ATAN2 FMOD`, variadic `MIN MAX FINITE ISNAN`.
//! Names are case-insensitive. Assignments (`:=`) and `;` sequences are not supported.

use std::sync::atomic::{AtomicU64, Ordering};

/// Deepest evaluation stack an expression may need (EPICS' `CALCPERFORM_STACK`).
pub const MAX_STACK: usize = 80;
/// Longest expression accepted, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 1000;
/// Deepest nesting of parentheses, conditionals and unary operators.
pub const MAX_NESTING: usize = 200;
/// Number of inputs `A`..`L`.
pub const NUM_ARGS: usize = 12;

/// An expression that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {reason}")]
pub struct CalcError {
    /// 1-based column (byte offset + 1) of the problem in the expression.
    pub column: usize,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Lit(f64),
    Arg(u8),
    Val,
    Random,
    Neg,
    Not,
    BitNot,
    Fn1(Func),
    Bin(Bin),
    Max(u8),
    Min(u8),
    Finite(u8),
    IsNan(u8),
    /// Pop; jump to the target when it is zero.
    JumpIfZero(u32),
    /// Unconditional jump.
    Jump(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Abs,
    Sqrt,
    Exp,
    Ln,
    Log10,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Ceil,
    Floor,
    Nint,
    IsInf,
}

impl Func {
    fn apply(self, x: f64) -> f64 {
        match self {
            Func::Abs => x.abs(),
            Func::Sqrt => x.sqrt(),
            Func::Exp => x.exp(),
            Func::Ln => x.ln(),
            Func::Log10 => x.log10(),
            Func::Sin => x.sin(),
            Func::Cos => x.cos(),
            Func::Tan => x.tan(),
            Func::Asin => x.asin(),
            Func::Acos => x.acos(),
            Func::Atan => x.atan(),
            Func::Sinh => x.sinh(),
            Func::Cosh => x.cosh(),
            Func::Tanh => x.tanh(),
            Func::Ceil => x.ceil(),
            Func::Floor => x.floor(),
            Func::Nint => nint(x),
            Func::IsInf => bool_f(x.is_infinite()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
    ShrLogic,
    Atan2,
    Fmod,
}

/// A compiled calc expression.
#[derive(Debug, Clone, PartialEq)]
pub struct CalcExpr {
    source: String,
    ops: Vec<Op>,
    max_depth: usize,
    uses: u16,
}

impl CalcExpr {
    /// Compiles `source`; errors name the column.
    pub fn compile(source: &str) -> Result<Self, CalcError> {
        if source.len() > MAX_EXPRESSION_LEN {
            return Err(CalcError { column: MAX_EXPRESSION_LEN + 1, reason: "expression too long".into() });
        }
        let mut parser = Parser { src: source.as_bytes(), pos: 0, ops: Vec::new(), depth: 0, max_depth: 0, nesting: 0 };
        parser.skip_ws();
        if parser.pos == parser.src.len() {
            return Err(parser.error("empty expression"));
        }
        parser.expression()?;
        parser.skip_ws();
        if parser.pos != parser.src.len() {
            return Err(parser.error("unexpected text after the expression"));
        }
        let uses = parser.ops.iter().fold(0u16, |acc, op| if let Op::Arg(i) = op { acc | (1 << i) } else { acc });
        Ok(CalcExpr { source: source.to_string(), ops: parser.ops, max_depth: parser.max_depth, uses })
    }

    /// The constant expression `0`: a new calc record's `CALC`.
    pub fn zero() -> Self {
        CalcExpr { source: "0".to_string(), ops: vec![Op::Lit(0.0)], max_depth: 1, uses: 0 }
    }

    /// The expression text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the expression reads input `index` (0 = `A` .. 11 = `L`).
    pub fn uses_arg(&self, index: usize) -> bool {
        index < NUM_ARGS && self.uses & (1 << index) != 0
    }

    /// Evaluates with inputs `A`..`L` and `VAL` = `val`. Never fails: as in
    /// EPICS, domain errors give NaN or infinity.
    pub fn eval(&self, args: &[f64; NUM_ARGS], val: f64) -> f64 {
        let mut stack = [0.0f64; MAX_STACK];
        let mut top = 0usize; // number of items
        let mut pc = 0usize;
        macro_rules! push {
            ($v:expr) => {{
                stack[top] = $v;
                top += 1;
            }};
        }
        while let Some(op) = self.ops.get(pc) {
            pc += 1;
            match *op {
                Op::Lit(v) => push!(v),
                Op::Arg(i) => push!(args[usize::from(i)]),
                Op::Val => push!(val),
                Op::Random => push!(random()),
                Op::Neg => stack[top - 1] = -stack[top - 1],
                Op::Not => stack[top - 1] = bool_f(stack[top - 1] == 0.0),
                Op::BitNot => stack[top - 1] = f64::from(!d2i(stack[top - 1])),
                Op::Fn1(f) => stack[top - 1] = f.apply(stack[top - 1]),
                Op::Bin(b) => {
                    top -= 1;
                    let rhs = stack[top];
                    let lhs = stack[top - 1];
                    stack[top - 1] = binary(b, lhs, rhs);
                }
                Op::Max(n) | Op::Min(n) => {
                    let is_max = matches!(op, Op::Max(_));
                    for _ in 1..n {
                        top -= 1;
                        let v = stack[top];
                        let acc = &mut stack[top - 1];
                        if (is_max && *acc < v) || (!is_max && *acc > v) || v.is_nan() {
                            *acc = v;
                        }
                    }
                }
                Op::Finite(n) | Op::IsNan(n) => {
                    let finite = matches!(op, Op::Finite(_));
                    let mut result = if finite { stack[top - 1].is_finite() } else { stack[top - 1].is_nan() };
                    for _ in 1..n {
                        top -= 1;
                        let v = stack[top - 1];
                        result = if finite { result && v.is_finite() } else { result || v.is_nan() };
                    }
                    stack[top - 1] = bool_f(result);
                }
                Op::JumpIfZero(target) => {
                    top -= 1;
                    if stack[top] == 0.0 {
                        pc = target as usize;
                    }
                }
                Op::Jump(target) => pc = target as usize,
            }
        }
        debug_assert_eq!(top, 1);
        stack[0]
    }
}

impl std::fmt::Display for CalcExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

fn bool_f(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// EPICS' `d2i`: negative doubles via signed, positive via unsigned 32-bit.
fn d2i(x: f64) -> i32 {
    if x < 0.0 { x as i32 } else { x as u32 as i32 }
}

fn d2ui(x: f64) -> u32 {
    if x < 0.0 { x as i32 as u32 } else { x as u32 }
}

fn binary(op: Bin, a: f64, b: f64) -> f64 {
    match op {
        Bin::Add => a + b,
        Bin::Sub => a - b,
        Bin::Mul => a * b,
        Bin::Div => a / b,
        Bin::Mod => {
            let divisor = a_to_i32(b);
            if divisor == 0 { f64::NAN } else { f64::from(a_to_i32(a).wrapping_rem(divisor)) }
        }
        Bin::Pow => a.powf(b),
        Bin::Lt => bool_f(a < b),
        Bin::Le => bool_f(a <= b),
        Bin::Gt => bool_f(a > b),
        Bin::Ge => bool_f(a >= b),
        Bin::Eq => bool_f(a == b),
        Bin::Ne => bool_f(a != b),
        Bin::And => bool_f(a != 0.0 && b != 0.0),
        Bin::Or => bool_f(a != 0.0 || b != 0.0),
        Bin::BitAnd => f64::from(d2i(a) & d2i(b)),
        Bin::BitOr => f64::from(d2i(a) | d2i(b)),
        Bin::BitXor => f64::from(d2i(a) ^ d2i(b)),
        Bin::Shl => f64::from(d2i(a).wrapping_shl((d2i(b) & 31) as u32)),
        Bin::Shr => f64::from(d2i(a).wrapping_shr((d2i(b) & 31) as u32)),
        Bin::ShrLogic => f64::from(d2ui(a) >> (d2ui(b) & 31)),
        // EPICS evaluates ATAN2(a, b) as C's atan2(b, a).
        Bin::Atan2 => b.atan2(a),
        Bin::Fmod => a % b,
    }
}

/// C's `(epicsInt32) x` for the `%` operator (saturating in Rust).
fn a_to_i32(x: f64) -> i32 {
    x as i32
}

fn nint(x: f64) -> f64 {
    f64::from(if x >= 0.0 { (x + 0.5) as i32 } else { (x - 0.5) as i32 })
}

static RANDOM_STATE: AtomicU64 = AtomicU64::new(0);

/// A uniformly distributed number in [0, 1) (xorshift64*, lock-free).
fn random() -> f64 {
    let mut state = RANDOM_STATE.load(Ordering::Relaxed);
    if state == 0 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        state = nanos | 1;
    }
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    RANDOM_STATE.store(state, Ordering::Relaxed);
    let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
    bits as f64 / (1u64 << 53) as f64
}

enum Name {
    Operand(Op),
    Fn1(Func),
    Fn2(Bin),
    Vararg(fn(u8) -> Op),
}

fn lookup_name(upper: &str) -> Option<Name> {
    let fn1 = |f: Func| Some(Name::Fn1(f));
    match upper {
        "VAL" => Some(Name::Operand(Op::Val)),
        "PI" => Some(Name::Operand(Op::Lit(std::f64::consts::PI))),
        "D2R" => Some(Name::Operand(Op::Lit(std::f64::consts::PI / 180.0))),
        "R2D" => Some(Name::Operand(Op::Lit(180.0 / std::f64::consts::PI))),
        "RNDM" => Some(Name::Operand(Op::Random)),
        "INF" => Some(Name::Operand(Op::Lit(f64::INFINITY))),
        "NAN" => Some(Name::Operand(Op::Lit(f64::NAN))),
        "ABS" => fn1(Func::Abs),
        "SQRT" | "SQR" => fn1(Func::Sqrt),
        "EXP" => fn1(Func::Exp),
        "LN" | "LOGE" => fn1(Func::Ln),
        "LOG" => fn1(Func::Log10),
        "SIN" => fn1(Func::Sin),
        "COS" => fn1(Func::Cos),
        "TAN" => fn1(Func::Tan),
        "ASIN" => fn1(Func::Asin),
        "ACOS" => fn1(Func::Acos),
        "ATAN" => fn1(Func::Atan),
        "SINH" => fn1(Func::Sinh),
        "COSH" => fn1(Func::Cosh),
        "TANH" => fn1(Func::Tanh),
        "CEIL" => fn1(Func::Ceil),
        "FLOOR" => fn1(Func::Floor),
        "NINT" => fn1(Func::Nint),
        "ISINF" => fn1(Func::IsInf),
        "ATAN2" => Some(Name::Fn2(Bin::Atan2)),
        "FMOD" => Some(Name::Fn2(Bin::Fmod)),
        "MAX" => Some(Name::Vararg(Op::Max)),
        "MIN" => Some(Name::Vararg(Op::Min)),
        "FINITE" => Some(Name::Vararg(Op::Finite)),
        "ISNAN" => Some(Name::Vararg(Op::IsNan)),
        "NOT" => None, // handled as a unary operator
        _ => {
            let b = upper.as_bytes();
            if b.len() == 1 && (b'A'..=b'L').contains(&b[0]) { Some(Name::Operand(Op::Arg(b[0] - b'A'))) } else { None }
        }
    }
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    ops: Vec<Op>,
    depth: usize,
    max_depth: usize,
    nesting: usize,
}

/// Binary operator table: (text, priority, op); longer texts first.
const BINARY: &[(&str, u8, Bin)] = &[
    (">>>", 2, Bin::ShrLogic),
    ("**", 6, Bin::Pow),
    ("&&", 2, Bin::And),
    ("||", 1, Bin::Or),
    ("<<", 2, Bin::Shl),
    (">>", 2, Bin::Shr),
    ("<=", 3, Bin::Le),
    (">=", 3, Bin::Ge),
    ("==", 3, Bin::Eq),
    ("!=", 3, Bin::Ne),
    ("+", 4, Bin::Add),
    ("-", 4, Bin::Sub),
    ("*", 5, Bin::Mul),
    ("/", 5, Bin::Div),
    ("%", 5, Bin::Mod),
    ("^", 6, Bin::Pow),
    ("<", 3, Bin::Lt),
    (">", 3, Bin::Gt),
    ("=", 3, Bin::Eq),
    ("#", 3, Bin::Ne),
    ("&", 2, Bin::BitAnd),
    ("|", 1, Bin::BitOr),
];

impl Parser<'_> {
    fn error(&self, reason: &str) -> CalcError {
        CalcError { column: self.pos + 1, reason: reason.to_string() }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.src.len() && self.src[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.src.get(self.pos).copied()
    }

    fn emit(&mut self, op: Op, effect: isize) -> Result<(), CalcError> {
        self.ops.push(op);
        self.depth = self.depth.checked_add_signed(effect).ok_or_else(|| self.error("operand expected"))?;
        self.max_depth = self.max_depth.max(self.depth);
        if self.max_depth > MAX_STACK {
            return Err(self.error("expression needs too deep a stack"));
        }
        Ok(())
    }

    fn enter(&mut self) -> Result<(), CalcError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING { Err(self.error("expression nested too deeply")) } else { Ok(()) }
    }

    /// Reads an identifier (letters then letters/digits) without consuming it.
    fn word_at(&self, at: usize) -> &str {
        let mut end = at;
        while end < self.src.len()
            && (self.src[end].is_ascii_alphabetic() || (end > at && self.src[end].is_ascii_digit()))
        {
            end += 1;
        }
        std::str::from_utf8(&self.src[at..end]).unwrap_or("")
    }

    fn expression(&mut self) -> Result<(), CalcError> {
        self.enter()?;
        self.binary(1)?;
        if self.peek() == Some(b'?') {
            self.pos += 1;
            let jz = self.ops.len();
            self.emit(Op::JumpIfZero(0), -1)?;
            let base = self.depth;
            self.expression()?;
            if self.peek() != Some(b':') || self.src.get(self.pos + 1) == Some(&b'=') {
                return Err(self.error("'?' without matching ':'"));
            }
            self.pos += 1;
            let jump = self.ops.len();
            self.emit(Op::Jump(0), 0)?;
            self.depth = base;
            let else_start = self.ops.len() as u32;
            self.expression()?;
            let end = self.ops.len() as u32;
            self.ops[jz] = Op::JumpIfZero(else_start);
            self.ops[jump] = Op::Jump(end);
        }
        self.nesting -= 1;
        Ok(())
    }

    fn binary_op(&mut self) -> Option<(usize, u8, Bin)> {
        self.skip_ws();
        let rest = &self.src[self.pos..];
        for &(text, prio, op) in BINARY {
            if rest.starts_with(text.as_bytes()) {
                // ':=' is assignment, not supported; '=' after '<' etc. is covered by order.
                return Some((text.len(), prio, op));
            }
        }
        let word = self.word_at(self.pos).to_ascii_uppercase();
        match word.as_str() {
            "AND" => Some((3, 2, Bin::BitAnd)),
            "OR" => Some((2, 1, Bin::BitOr)),
            "XOR" => Some((3, 1, Bin::BitXor)),
            _ => None,
        }
    }

    fn binary(&mut self, min_prio: u8) -> Result<(), CalcError> {
        self.unary()?;
        while let Some((len, prio, op)) = self.binary_op() {
            if prio < min_prio {
                break;
            }
            self.pos += len;
            self.binary(prio + 1)?;
            self.emit(Op::Bin(op), -1)?;
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<(), CalcError> {
        self.enter()?;
        let result = self.unary_inner();
        self.nesting -= 1;
        result
    }

    fn unary_inner(&mut self) -> Result<(), CalcError> {
        let Some(c) = self.peek() else {
            return Err(self.error("operand expected at end of expression"));
        };
        match c {
            b'-' => {
                self.pos += 1;
                self.unary()?;
                self.emit(Op::Neg, 0)
            }
            b'+' => Err(self.error("unary '+' is not supported")),
            b'!' => {
                self.pos += 1;
                self.unary()?;
                self.emit(Op::Not, 0)
            }
            b'~' => {
                self.pos += 1;
                self.unary()?;
                self.emit(Op::BitNot, 0)
            }
            b'(' => {
                self.pos += 1;
                self.expression()?;
                self.expect_close()
            }
            b'0'..=b'9' | b'.' => self.number(),
            c if c.is_ascii_alphabetic() => self.name(),
            _ => Err(self.error("operand expected")),
        }
    }

    fn expect_close(&mut self) -> Result<(), CalcError> {
        if self.peek() == Some(b')') {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error("')' expected"))
        }
    }

    fn number(&mut self) -> Result<(), CalcError> {
        let start = self.pos;
        let s = self.src;
        if s[start..].len() > 2 && s[start] == b'0' && (s[start + 1] | 0x20) == b'x' {
            let mut end = start + 2;
            while end < s.len() && s[end].is_ascii_hexdigit() {
                end += 1;
            }
            let text = std::str::from_utf8(&s[start + 2..end]).unwrap_or("");
            let v = u32::from_str_radix(text, 16).map_err(|_| self.error("bad hexadecimal literal"))?;
            self.pos = end;
            // EPICS stores hex literals as 32-bit integers: bit 31 makes them negative.
            return self.emit(Op::Lit(f64::from(v as i32)), 1);
        }
        let mut end = start;
        while end < s.len() && s[end].is_ascii_digit() {
            end += 1;
        }
        if end < s.len() && s[end] == b'.' {
            end += 1;
            while end < s.len() && s[end].is_ascii_digit() {
                end += 1;
            }
        }
        if end < s.len() && (s[end] | 0x20) == b'e' {
            let mut e = end + 1;
            if e < s.len() && (s[e] == b'+' || s[e] == b'-') {
                e += 1;
            }
            if e < s.len() && s[e].is_ascii_digit() {
                while e < s.len() && s[e].is_ascii_digit() {
                    e += 1;
                }
                end = e;
            }
        }
        let text = std::str::from_utf8(&s[start..end]).unwrap_or("");
        let v: f64 = text.parse().map_err(|_| self.error("bad numeric literal"))?;
        self.pos = end;
        self.emit(Op::Lit(v), 1)
    }

    fn name(&mut self) -> Result<(), CalcError> {
        let start = self.pos;
        let upper = self.word_at(start).to_ascii_uppercase();
        if upper == "NOT" {
            self.pos += 3;
            self.unary()?;
            return self.emit(Op::BitNot, 0);
        }
        let Some(name) = lookup_name(&upper) else {
            return Err(self.error(&format!("unknown name '{}'", self.word_at(start))));
        };
        self.pos += upper.len();
        match name {
            Name::Operand(op) => self.emit(op, 1),
            Name::Fn1(f) => {
                if self.peek() == Some(b'(') {
                    self.pos += 1;
                    self.expression()?;
                    self.expect_close()?;
                } else {
                    self.unary()?;
                }
                self.emit(Op::Fn1(f), 0)
            }
            Name::Fn2(op) => {
                let n = self.arguments(&upper)?;
                if n != 2 {
                    self.pos = start;
                    return Err(self.error(&format!("{upper} takes 2 arguments, not {n}")));
                }
                self.emit(Op::Bin(op), -1)
            }
            Name::Vararg(make) => {
                let n = self.arguments(&upper)?;
                let n = u8::try_from(n).map_err(|_| self.error("too many arguments"))?;
                self.emit(make(n), 1 - isize::from(n))
            }
        }
    }

    /// Parses `( expr, expr, ... )`, returning how many arguments there were.
    fn arguments(&mut self, name: &str) -> Result<usize, CalcError> {
        if self.peek() != Some(b'(') {
            return Err(self.error(&format!("'(' expected after {name}")));
        }
        self.pos += 1;
        let mut n = 0;
        loop {
            self.expression()?;
            n += 1;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    return Ok(n);
                }
                _ => return Err(self.error("',' or ')' expected")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(expr: &str, args: &[f64]) -> f64 {
        let mut a = [0.0; NUM_ARGS];
        a[..args.len()].copy_from_slice(args);
        CalcExpr::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}")).eval(&a, 0.0)
    }

    #[test]
    fn table() {
        let cases: &[(&str, &[f64], f64)] = &[
            ("A+B*2", &[1.0, 3.0], 7.0),
            ("(A+B)*2", &[1.0, 3.0], 8.0),
            ("A>B?A:B", &[5.0, 3.0], 5.0),
            ("A>B?A:B", &[2.0, 3.0], 3.0),
            ("ABS(-3)+MAX(1,2,3)", &[], 6.0),
            ("MIN(4,2,8,3)", &[], 2.0),
            ("MAX(7)", &[], 7.0),
            ("2^3", &[], 8.0),
            ("2**3", &[], 8.0),
            ("2^3^2", &[], 64.0),
            ("-2^2", &[], 4.0),
            ("7%3", &[], 1.0),
            ("-7%3", &[], -1.0),
            ("A=1", &[1.0], 1.0),
            ("A#1", &[1.0], 0.0),
            ("A==1 && B!=2", &[1.0, 3.0], 1.0),
            ("A<1 || B<=3", &[1.0, 3.0], 1.0),
            ("!A", &[0.0], 1.0),
            ("!A", &[2.0], 0.0),
            ("SQRT(16)+FLOOR(2.7)+CEIL(2.1)", &[], 9.0),
            ("NINT(2.5)+NINT(-2.5)", &[], 0.0),
            ("NINT(2.4)", &[], 2.0),
            ("LOG(1000)", &[], 3.0),
            ("LN(EXP(2))", &[], 2.0),
            ("ATAN2(1,0)", &[], 0.0),
            ("ATAN2(0,1)", &[], std::f64::consts::FRAC_PI_2),
            ("sin(0)+cos(0)", &[], 1.0),
            ("PI", &[], std::f64::consts::PI),
            ("0x10 | 1", &[], 17.0),
            ("6 & 3", &[], 2.0),
            ("6 XOR 3", &[], 5.0),
            ("1 << 4", &[], 16.0),
            ("-16 >> 2", &[], -4.0),
            ("~0", &[], -1.0),
            ("A?B?1:2:3", &[1.0, 0.0], 2.0),
            ("A?1:B?2:3", &[0.0, 1.0], 2.0),
            ("A?1:B?2:3", &[0.0, 0.0], 3.0),
            ("L+K", &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 3.0], 5.0),
            ("1.5e1 + .5", &[], 15.5),
            ("FMOD(7.5,2)", &[], 1.5),
            ("ISNAN(1,NAN)", &[], 1.0),
            ("FINITE(1,INF)", &[], 0.0),
            ("ABS -3", &[], 3.0),
            ("1 - -1", &[], 2.0),
            ("3 > 2 > 0", &[], 1.0),
        ];
        for (expr, args, expected) in cases {
            let got = eval(expr, args);
            assert!((got - expected).abs() < 1e-12, "{expr} = {got}, expected {expected}");
        }
    }

    #[test]
    fn special_results() {
        assert!(eval("1%0", &[]).is_nan());
        assert_eq!(eval("1/0", &[]), f64::INFINITY);
        assert!(eval("SQRT(-1)", &[]).is_nan());
        let r = eval("RNDM", &[]);
        assert!((0.0..1.0).contains(&r));
        let expr = CalcExpr::compile("VAL+1").unwrap();
        assert_eq!(expr.eval(&[0.0; 12], 41.0), 42.0);
        assert!(!expr.uses_arg(0));
        assert!(CalcExpr::compile("A+C").unwrap().uses_arg(2));
    }

    #[test]
    fn errors_name_the_column() {
        let cases = [
            ("", 1),
            ("A+", 3),
            ("A+*B", 3),
            ("(A", 3),
            ("A)", 2),
            ("FOO+1", 1),
            ("A?B", 4),
            ("ATAN2(1)", 1),
            ("MAX()", 5),
            ("A B", 3),
            ("A:=1", 2),
            ("1;2", 2),
        ];
        for (expr, column) in cases {
            let err = CalcExpr::compile(expr).unwrap_err();
            assert_eq!(err.column, column, "{expr}: {err}");
        }
    }

    #[test]
    fn bounded() {
        let deep = "(".repeat(200) + "1" + &")".repeat(200);
        assert!(CalcExpr::compile(&deep).unwrap_err().reason.contains("nested"));
        let wide = vec!["1"; 90].join("+(") + &")".repeat(89);
        assert!(CalcExpr::compile(&wide).is_err());
        let long = "A+".repeat(600) + "A";
        assert!(CalcExpr::compile(&long).unwrap_err().reason.contains("too long"));
        // A long flat sum needs only two stack slots.
        let flat = "A+".repeat(400) + "A";
        assert!(CalcExpr::compile(&flat).is_ok());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn expr_strategy() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            (-1e6f64..1e6).prop_map(|v| format!("{v}")),
            (0u8..12).prop_map(|i| ((b'A' + i) as char).to_string()),
            Just("VAL".to_string()),
            Just("PI".to_string()),
            Just("RNDM".to_string()),
            Just("NAN".to_string()),
            Just("INF".to_string()),
        ];
        leaf.prop_recursive(6, 64, 4, |inner| {
            let bin = prop_oneof![
                Just("+"),
                Just("-"),
                Just("*"),
                Just("/"),
                Just("%"),
                Just("^"),
                Just("**"),
                Just("<"),
                Just("<="),
                Just(">"),
                Just(">="),
                Just("=="),
                Just("!="),
                Just("#"),
                Just("="),
                Just("&&"),
                Just("||"),
                Just("&"),
                Just("|"),
                Just(" XOR "),
                Just("<<"),
                Just(">>"),
                Just(">>>"),
            ];
            let f1 = prop_oneof![
                Just("ABS"),
                Just("SQRT"),
                Just("EXP"),
                Just("LN"),
                Just("LOG"),
                Just("SIN"),
                Just("COS"),
                Just("TAN"),
                Just("ASIN"),
                Just("ACOS"),
                Just("ATAN"),
                Just("FLOOR"),
                Just("CEIL"),
                Just("NINT"),
            ];
            prop_oneof![
                (inner.clone(), bin, inner.clone()).prop_map(|(a, op, b)| format!("{a}{op}{b}")),
                inner.clone().prop_map(|a| format!("-({a})")),
                inner.clone().prop_map(|a| format!("!{a}")),
                (f1, inner.clone()).prop_map(|(f, a)| format!("{f}({a})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("ATAN2({a},{b})")),
                prop::collection::vec(inner.clone(), 1..5).prop_map(|v| format!("MAX({})", v.join(","))),
                prop::collection::vec(inner.clone(), 1..5).prop_map(|v| format!("MIN({})", v.join(","))),
                (inner.clone(), inner.clone(), inner).prop_map(|(c, a, b)| format!("({c})?({a}):({b})")),
            ]
        })
    }

    proptest! {
        #[test]
        fn random_text_never_panics(text in ".{0,200}") {
            let _ = CalcExpr::compile(&text);
        }

        #[test]
        fn random_operator_soup_never_panics(text in "[A-L0-9()?:+*/%^<>=!#&|~,. -]{0,120}") {
            if let Ok(expr) = CalcExpr::compile(&text) {
                let _ = expr.eval(&[1.0; 12], 0.0);
            }
        }

        #[test]
        fn valid_expressions_compile_and_evaluate(expr in expr_strategy(), args in prop::array::uniform12(-1e3f64..1e3)) {
            let compiled = CalcExpr::compile(&expr);
            // Generated expressions are valid unless they are too large.
            if let Ok(compiled) = compiled {
                let _ = compiled.eval(&args, 1.0);
            } else {
                let err = compiled.unwrap_err();
                prop_assert!(err.reason.contains("too") || err.reason.contains("nested"), "{expr}: {err}");
            }
        }
    }
}
