//! When to try again after a transient failure: exponential backoff with
//! ±20% jitter, so that many clients knocked offline together do not all
//! come back in the same second.

/// The retry schedule: `initial`, 2×, 4× … up to `max`, each ±`jitter`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay, in ms.
    pub initial: f64,
    /// The longest delay, in ms (before jitter).
    pub max: f64,
    /// The relative spread: 0.2 draws each delay from ±20% around its step.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: 1_000.0, max: 5.0 * 60_000.0, jitter: 0.2 }
    }
}

impl Backoff {
    /// The delay before retry number `failures` (1 after the first failure).
    /// `random` is uniform in [0, 1); `retry_after` (ms), when the server sent
    /// one, is a floor: a server asking for patience gets at least that.
    pub fn delay(&self, failures: u32, random: f64, retry_after: Option<f64>) -> f64 {
        let exponent = failures.saturating_sub(1).min(52) as i32;
        let step = (self.initial * 2f64.powi(exponent)).min(self.max);
        let spread = 1.0 + self.jitter * (2.0 * random.clamp(0.0, 1.0) - 1.0);
        let delay = step * spread;
        retry_after.map_or(delay, |floor| delay.max(floor))
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_from_one_second_up_to_the_cap() {
        let backoff = Backoff::default();
        let steps: Vec<f64> = (1..=10).map(|n| backoff.delay(n, 0.5, None)).collect();
        assert_eq!(steps[..5], [1_000.0, 2_000.0, 4_000.0, 8_000.0, 16_000.0]);
        assert_eq!(backoff.delay(30, 0.5, None), 300_000.0);
        assert_eq!(backoff.delay(u32::MAX, 0.5, None), 300_000.0);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay(1, 0.5, Some(30_000.0)), 30_000.0);
        assert_eq!(backoff.delay(6, 0.5, Some(1.0)), 32_000.0);
    }

    /// Over many draws the delays cover the whole ±20% band around each step,
    /// evenly: with no jitter (every client back in the same second) they
    /// would all be equal.
    #[test]
    fn jitter_spreads_delays_over_the_whole_band() {
        let backoff = Backoff::default();
        // A fixed-seed xorshift: the same draws on every run.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for failures in [1, 4, 12] {
            let step = backoff.delay(failures, 0.5, None);
            let mut bands = [0u32; 10];
            for _ in 0..2_000 {
                let relative = backoff.delay(failures, random(), None) / step;
                bands[(((relative - 0.8) / 0.04) as usize).min(9)] += 1;
            }
            // Each tenth of the band holds about 200 of the 2000 delays.
            assert!(bands.iter().all(|&count| (120..=280).contains(&count)), "failures {failures}: {bands:?}");
        }
    }

    proptest! {
        #[test]
        fn jitter_stays_within_twenty_percent(failures in 1u32..40, random in 0.0f64..1.0) {
            let backoff = Backoff::default();
            let step = backoff.delay(failures, 0.5, None);
            let delay = backoff.delay(failures, random, None);
            prop_assert!(delay >= step * 0.8 && delay <= step * 1.2, "{delay} vs {step}");
        }
    }
}
