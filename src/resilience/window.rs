//! A rolling window of two counters (calls and failures, or calls and retries), kept in a
//! fixed ring of buckets so memory and work per update are constant.

use std::time::Duration;

use crate::clock::to_nanos;

/// Buckets per window: the window slides in steps of a tenth of its length.
const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// `now / bucket + 1`; 0 = never used.
    epoch: u64,
    total: u64,
    marked: u64,
}

/// Counts of `total` events and of `marked` ones among them (failures, retries) over the
/// last `window`, in steps of `window / 10`.
#[derive(Debug, Clone)]
pub struct RollingCounts {
    bucket: u64,
    slots: [Slot; BUCKETS],
}

impl RollingCounts {
    pub fn new(window: Duration) -> Self {
        RollingCounts {
            bucket: (to_nanos(window) / BUCKETS as u64).max(1),
            slots: [Slot::default(); BUCKETS],
        }
    }

    fn epoch(&self, now: Duration) -> u64 {
        to_nanos(now) / self.bucket + 1
    }

    pub fn add(&mut self, now: Duration, total: u64, marked: u64) {
        let epoch = self.epoch(now);
        let slot = &mut self.slots[(epoch % BUCKETS as u64) as usize];
        if slot.epoch != epoch {
            *slot = Slot {
                epoch,
                total: 0,
                marked: 0,
            };
        }
        slot.total += total;
        slot.marked += marked;
    }

    /// `(total, marked)` over the window ending at `now`.
    pub fn sums(&self, now: Duration) -> (u64, u64) {
        let epoch = self.epoch(now);
        let oldest = epoch.saturating_sub(BUCKETS as u64 - 1);
        self.slots
            .iter()
            .filter(|s| s.epoch != 0 && s.epoch >= oldest && s.epoch <= epoch)
            .fold((0, 0), |(t, m), s| (t + s.total, m + s.marked))
    }

    pub fn clear(&mut self) {
        self.slots = [Slot::default(); BUCKETS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fall_out_of_the_window() {
        let mut w = RollingCounts::new(Duration::from_secs(10));
        let t0 = Duration::from_secs(100);
        w.add(t0, 3, 1);
        w.add(t0 + Duration::from_secs(5), 2, 2);
        assert_eq!(w.sums(t0 + Duration::from_secs(5)), (5, 3));
        // 9.x s later the first bucket is still inside, at 10 s it has left.
        assert_eq!(w.sums(t0 + Duration::from_millis(9_900)), (5, 3));
        assert_eq!(w.sums(t0 + Duration::from_secs(10)), (2, 2));
        assert_eq!(w.sums(t0 + Duration::from_secs(15)), (0, 0));
    }

    #[test]
    fn a_reused_slot_starts_from_zero() {
        let mut w = RollingCounts::new(Duration::from_secs(1));
        w.add(Duration::from_millis(50), 7, 7);
        // Same ring position one window later.
        w.add(Duration::from_millis(1_050), 1, 0);
        assert_eq!(w.sums(Duration::from_millis(1_050)), (1, 0));
        w.clear();
        assert_eq!(w.sums(Duration::from_millis(1_050)), (0, 0));
    }
}
