//! Alarm state and the EPICS alarm rules (`recGbl.c`, each record's `checkAlarms`).

use crate::proto::constants::{DBE_ALARM, alarm_status, severity};

/// A record's alarm state: the committed `STAT`/`SEVR`, the pending
/// `NSTA`/`NSEV` raised during processing, and acknowledgement fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmState {
    /// Committed alarm status (`STAT`, an [`alarm_status`] value).
    pub stat: u16,
    /// Committed severity (`SEVR`, a [`severity`] value).
    pub sevr: u16,
    /// Pending status raised during the current processing (`NSTA`).
    pub nsta: u16,
    /// Pending severity raised during the current processing (`NSEV`).
    pub nsev: u16,
    /// Highest unacknowledged severity (`ACKS`).
    pub acks: u16,
    /// Whether transient alarms must be acknowledged (`ACKT`, default yes).
    pub ackt: bool,
}

impl Default for AlarmState {
    /// The state of a record before it is first processed: `STAT` = UDF.
    fn default() -> Self {
        AlarmState { stat: alarm_status::UDF, sevr: severity::NO_ALARM, nsta: 0, nsev: 0, acks: 0, ackt: true }
    }
}

impl AlarmState {
    /// Raises a pending alarm if it is more severe than the one already
    /// pending (`recGblSetSevr`); true when it was taken.
    pub fn raise(&mut self, stat: u16, sevr: u16) -> bool {
        if self.nsev < sevr {
            self.nsta = stat;
            self.nsev = sevr;
            true
        } else {
            false
        }
    }

    /// Commits the pending alarm at the end of processing (`recGblResetAlarms`).
    /// Returns [`DBE_ALARM`] when status or severity changed, else 0.
    pub fn commit(&mut self) -> u16 {
        let new_sevr = self.nsev.min(severity::INVALID);
        let new_stat = self.nsta;
        let changed = new_sevr != self.sevr || new_stat != self.stat;
        self.stat = new_stat;
        self.sevr = new_sevr;
        self.nsta = 0;
        self.nsev = 0;
        if changed && (!self.ackt || new_sevr >= self.acks) {
            self.acks = new_sevr;
        }
        if changed { DBE_ALARM } else { 0 }
    }

    /// The alarm as carried in DBR metadata.
    pub fn dbr(&self) -> crate::proto::dbr::Alarm {
        crate::proto::dbr::Alarm { status: self.stat, severity: self.sevr }
    }
}

/// Limit alarm configuration and state of analog and long records:
/// `HIHI`/`HIGH`/`LOW`/`LOLO`, their severities, `HYST` and the last alarm level `LALM`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LimitAlarms {
    /// Upper alarm limit.
    pub hihi: f64,
    /// Upper warning limit.
    pub high: f64,
    /// Lower warning limit.
    pub low: f64,
    /// Lower alarm limit.
    pub lolo: f64,
    /// Severity above `HIHI`.
    pub hhsv: u16,
    /// Severity above `HIGH`.
    pub hsv: u16,
    /// Severity below `LOW`.
    pub lsv: u16,
    /// Severity below `LOLO`.
    pub llsv: u16,
    /// Alarm deadband: a limit alarm clears only once the value is this far inside it.
    pub hyst: f64,
    /// The limit of the last alarm raised, or the last value when none was (`LALM`).
    pub lalm: f64,
}

impl LimitAlarms {
    /// Checks `val` against the limits with hysteresis, as aiRecord's
    /// `checkAlarms` does (without the AFTC filter), raising on `alarm`.
    pub fn check(&mut self, val: f64, alarm: &mut AlarmState) {
        let lalm = self.lalm;
        let hyst = self.hyst;
        let candidates = [
            (self.hhsv, self.hihi, alarm_status::HIHI, true),
            (self.llsv, self.lolo, alarm_status::LOLO, false),
            (self.hsv, self.high, alarm_status::HIGH, true),
            (self.lsv, self.low, alarm_status::LOW, false),
        ];
        for (sevr, level, stat, upper) in candidates {
            if sevr == 0 {
                continue;
            }
            let hit = if upper {
                val >= level || (lalm == level && val >= level - hyst)
            } else {
                val <= level || (lalm == level && val <= level + hyst)
            };
            if hit {
                if alarm.raise(stat, sevr) {
                    self.lalm = level;
                }
                return;
            }
        }
        self.lalm = val;
    }

    /// The limits as DBR graphic alarm limits: a limit whose severity is
    /// NO_ALARM is reported as NaN (as EPICS' `get_alarm_double` does).
    pub fn reported(&self) -> [f64; 4] {
        let pick = |sevr: u16, v: f64| if sevr != 0 { v } else { f64::NAN };
        [pick(self.hhsv, self.hihi), pick(self.hsv, self.high), pick(self.lsv, self.low), pick(self.llsv, self.lolo)]
    }
}

/// The `recGblCheckDeadband` rule: true (and `old` updated) when `new`
/// moved more than `deadband` from `old`, or into/out of NaN/infinity.
pub fn check_deadband(old: &mut f64, new: f64, deadband: f64) -> bool {
    let delta = if new.is_finite() && old.is_finite() {
        (*old - new).abs()
    } else if new.is_nan() != old.is_nan()
        || new.is_infinite() != old.is_infinite()
        || (new.is_infinite() && new != *old)
    {
        f64::INFINITY
    } else {
        0.0
    };
    if delta > deadband {
        *old = new;
        true
    } else {
        false
    }
}

/// The state alarm of a two-state record (biRecord/boRecord `checkAlarms`):
/// `ZSV`/`OSV` for the state, `COSV` on change of state.
pub fn check_binary(val: u16, zsv: u16, osv: u16, cosv: u16, lalm: &mut u16, alarm: &mut AlarmState) {
    if val > 1 {
        return;
    }
    alarm.raise(alarm_status::STATE, if val == 0 { zsv } else { osv });
    if val != *lalm {
        alarm.raise(alarm_status::COS, cosv);
        *lalm = val;
    }
}

/// The state alarm of a multi-bit record (mbbi/mbbo `checkAlarms`):
/// the state's severity, `UNSV` for states above 15, `COSV` on change.
pub fn check_multi(val: u16, severities: &[u16; 16], unsv: u16, cosv: u16, lalm: &mut u16, alarm: &mut AlarmState) {
    let sevr = severities.get(usize::from(val)).copied().unwrap_or(unsv);
    alarm.raise(alarm_status::STATE, sevr);
    if val == *lalm || alarm.raise(alarm_status::COS, cosv) {
        return;
    }
    *lalm = val;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::constants::alarm_status::{COS, HIGH, HIHI, LOLO, LOW, NO_ALARM, STATE};
    use crate::proto::constants::severity::{INVALID, MAJOR, MINOR};

    fn limits() -> LimitAlarms {
        LimitAlarms {
            hihi: 90.0,
            high: 70.0,
            low: 20.0,
            lolo: 10.0,
            hhsv: MAJOR,
            hsv: MINOR,
            lsv: MINOR,
            llsv: MAJOR,
            hyst: 5.0,
            lalm: 0.0,
        }
    }

    fn run(l: &mut LimitAlarms, a: &mut AlarmState, v: f64) -> (u16, u16) {
        l.check(v, a);
        a.commit();
        (a.stat, a.sevr)
    }

    #[test]
    fn limits_with_hysteresis() {
        let mut l = limits();
        let mut a = AlarmState::default();
        assert_eq!(run(&mut l, &mut a, 50.0), (NO_ALARM, 0));
        assert_eq!(run(&mut l, &mut a, 75.0), (HIGH, MINOR));
        assert_eq!(run(&mut l, &mut a, 68.0), (HIGH, MINOR), "within HYST of HIGH");
        assert_eq!(run(&mut l, &mut a, 64.0), (NO_ALARM, 0));
        assert_eq!(run(&mut l, &mut a, 95.0), (HIHI, MAJOR));
        assert_eq!(run(&mut l, &mut a, 87.0), (HIHI, MAJOR));
        assert_eq!(run(&mut l, &mut a, 84.0), (HIGH, MINOR));
        assert_eq!(run(&mut l, &mut a, 5.0), (LOLO, MAJOR));
        assert_eq!(run(&mut l, &mut a, 14.0), (LOLO, MAJOR));
        assert_eq!(run(&mut l, &mut a, 16.0), (LOW, MINOR));
    }

    #[test]
    fn disabled_limits_do_not_alarm_and_report_nan() {
        let mut l = LimitAlarms { hihi: 1.0, ..LimitAlarms::default() };
        let mut a = AlarmState::default();
        assert_eq!(run(&mut l, &mut a, 100.0), (NO_ALARM, 0));
        assert!(l.reported()[0].is_nan());
        assert_eq!(limits().reported(), [90.0, 70.0, 20.0, 10.0]);
    }

    #[test]
    fn commit_reports_changes_once() {
        let mut a = AlarmState::default();
        assert_eq!(a.commit(), DBE_ALARM, "UDF → NO_ALARM");
        assert_eq!(a.commit(), 0);
        a.raise(HIGH, MINOR);
        a.raise(LOW, MINOR); // not more severe: ignored
        assert_eq!(a.commit(), DBE_ALARM);
        assert_eq!((a.stat, a.sevr), (HIGH, MINOR));
    }

    #[test]
    fn deadband() {
        let mut old = 1.0;
        assert!(!check_deadband(&mut old, 1.0, 0.0));
        assert!(check_deadband(&mut old, 1.5, 0.0));
        assert!(!check_deadband(&mut old, 1.9, 0.5));
        assert!(check_deadband(&mut old, f64::NAN, 10.0));
        assert!(!check_deadband(&mut old, f64::NAN, 10.0));
        assert!(check_deadband(&mut old, 2.0, 10.0));
        assert!(check_deadband(&mut old, 2.0, -1.0), "negative deadband posts always");
    }

    #[test]
    fn binary_and_multi_states() {
        let mut a = AlarmState::default();
        let mut lalm = 0;
        check_binary(1, NO_ALARM, MAJOR, MINOR, &mut lalm, &mut a);
        a.commit();
        assert_eq!((a.stat, a.sevr), (STATE, MAJOR));
        check_binary(0, NO_ALARM, NO_ALARM, MINOR, &mut lalm, &mut a);
        a.commit();
        assert_eq!((a.stat, a.sevr), (COS, MINOR));
        let mut sev = [0; 16];
        sev[2] = MINOR;
        let mut lalm = 2;
        check_multi(2, &sev, INVALID, 0, &mut lalm, &mut a);
        a.commit();
        assert_eq!((a.stat, a.sevr), (STATE, MINOR));
        check_multi(20, &sev, INVALID, 0, &mut lalm, &mut a);
        a.commit();
        assert_eq!((a.stat, a.sevr), (STATE, INVALID));
    }
}
