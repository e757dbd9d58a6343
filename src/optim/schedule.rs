//! Learning-rate schedules.

use crate::error::{invalid, Result};

/// BERT's schedule: the learning rate decays linearly from `peak` at step 0 to 0 at
/// `total_steps`, and while `step < warmup_steps` it is instead `peak·step/warmup_steps`
/// (so the decay is computed from step 0, as `optimization.py` does).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinearWarmupDecay {
    /// The learning rate the schedule starts its decay from (and warms up to).
    pub peak: f32,
    /// Steps of linear warm-up from 0.
    pub warmup_steps: u64,
    /// The step at which the learning rate reaches 0.
    pub total_steps: u64,
}

impl LinearWarmupDecay {
    /// The schedule; errors unless `peak` is finite and positive and 0 ≤ `warmup_steps` ≤
    /// `total_steps` > 0.
    pub fn new(peak: f32, warmup_steps: u64, total_steps: u64) -> Result<LinearWarmupDecay> {
        if !(peak.is_finite() && peak > 0.0) || total_steps == 0 || warmup_steps > total_steps {
            return invalid(
                "LinearWarmupDecay",
                format!("peak {peak}, warm-up {warmup_steps}, total {total_steps}: need peak > 0 and 0 ≤ warm-up ≤ total > 0"),
            );
        }
        Ok(LinearWarmupDecay {
            peak,
            warmup_steps,
            total_steps,
        })
    }

    /// The learning rate for the update numbered `step` (0-based).
    pub fn lr(&self, step: u64) -> f32 {
        if step < self.warmup_steps {
            return self.peak * step as f32 / self.warmup_steps as f32;
        }
        let left = self.total_steps.saturating_sub(step) as f32;
        self.peak * left / self.total_steps as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_linear_decay_from_step_zero() {
        let s = LinearWarmupDecay::new(1e-4, 10, 100).unwrap();
        assert_eq!(s.lr(0), 0.0);
        // f32 values: compare within a relative 1e-6 (a few ulp)
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-6 * b.abs();
        assert!(close(s.lr(5), 5e-5));
        // after warm-up the decay line is the one that started at step 0
        assert!(close(s.lr(10), 0.9e-4));
        assert!(close(s.lr(50), 0.5e-4));
        assert_eq!(s.lr(100), 0.0);
        assert_eq!(s.lr(1000), 0.0);
        assert!(LinearWarmupDecay::new(1e-4, 200, 100).is_err());
    }
}
