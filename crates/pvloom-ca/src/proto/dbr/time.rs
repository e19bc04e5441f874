//! EPICS timestamps (seconds and nanoseconds since 1990-01-01 UTC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::proto::constants::EPICS_EPOCH_UNIX_OFFSET_SECS;

/// An `epicsTimeStamp`: what DBR_TIME_* metadata carries.
///
/// Kept as the raw pair so that values (including non-normalised
/// nanosecond fields some IOCs use as tags) survive a round trip unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct EpicsTime {
    /// Seconds past the EPICS epoch (1990-01-01T00:00:00Z).
    pub secs: u32,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

/// Why a [`SystemTime`] cannot be represented as an [`EpicsTime`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeRangeError {
    /// The instant lies before 1990-01-01 UTC.
    #[error("time is before the EPICS epoch (1990-01-01 UTC)")]
    BeforeEpicsEpoch,
    /// The instant lies beyond the 32-bit seconds range (year 2126).
    #[error("time is beyond the 32-bit EPICS seconds range")]
    AfterRange,
}

impl EpicsTime {
    /// The EPICS epoch itself.
    pub const EPOCH: EpicsTime = EpicsTime { secs: 0, nanos: 0 };

    /// A timestamp from its raw parts.
    pub const fn new(secs: u32, nanos: u32) -> Self {
        EpicsTime { secs, nanos }
    }

    /// The wall-clock instant this timestamp denotes.
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH
            + Duration::from_secs(EPICS_EPOCH_UNIX_OFFSET_SECS)
            + Duration::from_secs(u64::from(self.secs))
            + Duration::from_nanos(u64::from(self.nanos))
    }

    /// Converts a wall-clock instant, refusing instants the wire cannot carry.
    pub fn from_system_time(time: SystemTime) -> Result<Self, TimeRangeError> {
        let epics_epoch = UNIX_EPOCH + Duration::from_secs(EPICS_EPOCH_UNIX_OFFSET_SECS);
        let since = time.duration_since(epics_epoch).map_err(|_| TimeRangeError::BeforeEpicsEpoch)?;
        let secs = u32::try_from(since.as_secs()).map_err(|_| TimeRangeError::AfterRange)?;
        Ok(EpicsTime { secs, nanos: since.subsec_nanos() })
    }
}

impl TryFrom<SystemTime> for EpicsTime {
    type Error = TimeRangeError;

    fn try_from(time: SystemTime) -> Result<Self, Self::Error> {
        Self::from_system_time(time)
    }
}

impl From<EpicsTime> for SystemTime {
    fn from(time: EpicsTime) -> SystemTime {
        time.to_system_time()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epics_epoch_is_1990() {
        let unix = EpicsTime::EPOCH.to_system_time().duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(unix.as_secs(), 631_152_000);
    }

    #[test]
    fn converts_both_ways() {
        let time = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let epics = EpicsTime::from_system_time(time).unwrap();
        assert_eq!(epics.secs, 1_700_000_000 - 631_152_000);
        assert_eq!(epics.nanos, 123_456_789);
        assert_eq!(epics.to_system_time(), time);
    }

    #[test]
    fn refuses_times_before_1990() {
        assert_eq!(EpicsTime::from_system_time(UNIX_EPOCH), Err(TimeRangeError::BeforeEpicsEpoch));
        let far = UNIX_EPOCH + Duration::from_secs(631_152_000 + (1 << 32));
        assert_eq!(EpicsTime::from_system_time(far), Err(TimeRangeError::AfterRange));
    }
}
