//! When a sampler runs: ldmsd schedules each sampler as an `OVIS_EVENT_PERIODIC` event with
//! `period_us = interval` and `phase_us = offset` (`ldmsd_sampler_start`, `ldmsd.c`); the
//! next time is computed by `set_next_periodic_time` (`ovis_event.c`): `now` rounded **up**
//! to a multiple of the period, plus the phase; if that is not after `now` one period is
//! added, and a wait of more than one period is cut to its remainder.

/// The next sample time (µs since the epoch) after `now_us`, for `interval_us > 0` and an
/// offset with `|offset| <= interval / 2` (what `start` accepts).
pub fn next_sample_us(now_us: u64, interval_us: u64, offset_us: i64) -> u64 {
    let p = interval_us.max(1) as i128;
    let now = now_us as i128;
    let t = (now + p - 1) / p * p + offset_us as i128;
    let mut diff = t - now;
    if diff <= 0 {
        diff += p;
    } else if diff > p {
        diff %= p;
    }
    (now + diff) as u64
}

#[cfg(test)]
mod tests {
    use super::next_sample_us;

    #[test]
    fn aligned_to_the_wall_clock() {
        // 1 s interval, no offset: the next whole second; exactly on a second, the one after.
        assert_eq!(next_sample_us(1_795_436_485_001_551, 1_000_000, 0), 1_795_436_486_000_000);
        assert_eq!(next_sample_us(1_795_436_486_000_000, 1_000_000, 0), 1_795_436_487_000_000);
        // Positive offset: 100 ms past each second (the aggregator's updtr offset).
        // (10.05 s rounds up to 11 s, + 0.1 s is more than a period away, cut to 10.1 s.)
        assert_eq!(next_sample_us(10_050_000, 1_000_000, 100_000), 10_100_000);
        assert_eq!(next_sample_us(10_000_000, 1_000_000, 100_000), 10_100_000);
        assert_eq!(next_sample_us(10_100_000, 1_000_000, 100_000), 11_100_000);
        // Negative offset: 200 ms before each second.
        assert_eq!(next_sample_us(10_500_000, 1_000_000, -200_000), 10_800_000);
        assert_eq!(next_sample_us(10_900_000, 1_000_000, -200_000), 11_800_000);
        // Intervals that do not divide a second align to multiples of the interval since the epoch.
        assert_eq!(next_sample_us(1_000, 300, 0), 1_200);
    }
}
