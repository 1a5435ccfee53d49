//! Pacing: transactions start on a fixed schedule so that rows go out at the target rate on
//! average. A writer that fell behind (a slow server, a reconnect) catches up by at most one
//! second's worth of rows, never by a burst as long as the stall.

use std::time::Duration;

/// The schedule of a run at `rows_per_s`.
#[derive(Debug, Clone)]
pub struct Pacer {
    rows_per_s: f64,
    /// Rows issued since `origin`.
    rows: u64,
    /// Where the schedule starts, relative to the run's start.
    origin: Duration,
}

/// How far behind the schedule may fall before it is moved: one second of rows.
const MAX_BACKLOG: Duration = Duration::from_secs(1);

impl Pacer {
    /// A schedule starting at the run's start (`rows_per_s` above zero).
    pub fn new(rows_per_s: f64) -> Pacer {
        Pacer {
            rows_per_s,
            rows: 0,
            origin: Duration::ZERO,
        }
    }

    /// How long to wait, at `elapsed` into the run, before the next transaction starts.
    pub fn wait(&mut self, elapsed: Duration) -> Duration {
        let due = self.origin + Duration::from_secs_f64(self.rows as f64 / self.rows_per_s);
        if due + MAX_BACKLOG < elapsed {
            self.origin = elapsed.saturating_sub(MAX_BACKLOG);
            self.rows = 0;
            return Duration::ZERO;
        }
        due.saturating_sub(elapsed)
    }

    /// Records that a transaction of `rows` changes went out.
    pub fn issued(&mut self, rows: u64) {
        self.rows += rows;
    }
}

/// Rows per second over `elapsed` (zero for no time).
pub fn rate(rows: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        rows as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn transactions_are_spaced_by_their_rows_over_the_rate() {
        let mut pacer = Pacer::new(100.0);
        assert_eq!(pacer.wait(MS(0)), MS(0));
        pacer.issued(10);
        assert_eq!(pacer.wait(MS(20)), MS(80), "10 rows at 100/s take 100 ms");
        pacer.issued(10);
        assert_eq!(pacer.wait(MS(250)), MS(0), "behind: go at once");
    }

    #[test]
    fn a_long_stall_is_caught_up_by_at_most_one_second_of_rows() {
        let mut pacer = Pacer::new(100.0);
        pacer.issued(10);
        assert_eq!(pacer.wait(MS(10_000)), MS(0));
        let mut sent = 0;
        let mut now = MS(10_000);
        while pacer.wait(now).is_zero() {
            pacer.issued(10);
            sent += 10;
            now += MS(1);
        }
        assert!(sent <= 110, "caught up with {sent} rows at once");
    }

    #[test]
    fn the_average_rate_is_the_target() {
        let mut pacer = Pacer::new(500.0);
        let mut now = Duration::ZERO;
        let mut rows = 0;
        while now < Duration::from_secs(10) {
            now += pacer.wait(now) + MS(2);
            pacer.issued(10);
            rows += 10;
        }
        let achieved = rate(rows, now);
        assert!((480.0..=510.0).contains(&achieved), "{achieved}");
        assert_eq!(rate(5, Duration::ZERO), 0.0);
    }
}
