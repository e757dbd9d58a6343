//! Mean, standard deviation and Welch's 95% interval of a difference of means.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean and sample standard deviation (n − 1); sd is NaN for fewer than 2 values.
pub fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    if x.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = x.iter().sum::<f64>() / n;
    if x.len() < 2 {
        return (m, f64::NAN);
    }
    let v = x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0);
    (m, v.sqrt())
}

/// The difference of means `mean(a) − mean(b)` with a 95% interval from Welch's t (unequal
/// variances, Welch–Satterthwaite degrees of freedom). `None` when either side has fewer than
/// two values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Diff {
    pub diff: f64,
    pub low: f64,
    pub high: f64,
}

impl Diff {
    /// The interval excludes zero.
    pub fn significant(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

pub fn welch_diff(a: &[f64], b: &[f64]) -> Option<Diff> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (ma, sa) = mean_sd(a);
    let (mb, sb) = mean_sd(b);
    let (va, vb) = (sa * sa / a.len() as f64, sb * sb / b.len() as f64);
    let se = (va + vb).sqrt();
    let diff = ma - mb;
    if se == 0.0 {
        return Some(Diff {
            diff,
            low: diff,
            high: diff,
        });
    }
    let df =
        (va + vb).powi(2) / (va * va / (a.len() as f64 - 1.0) + vb * vb / (b.len() as f64 - 1.0));
    let t = StudentsT::new(0.0, 1.0, df).ok()?.inverse_cdf(0.975);
    Some(Diff {
        diff,
        low: diff - t * se,
        high: diff + t * se,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sd_by_hand() {
        let (m, s) = mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((m - 5.0).abs() < 1e-12);
        // sample variance 32/7
        assert!((s - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert!(mean_sd(&[1.0]).1.is_nan());
    }

    #[test]
    fn welch_interval_matches_a_hand_computation() {
        // a: mean 2, var 1; b: mean 0, var 1; n = 3 each → se = sqrt(2/3), df = 4,
        // t(0.975, 4) = 2.776445105
        let d = welch_diff(&[1.0, 2.0, 3.0], &[-1.0, 0.0, 1.0]).unwrap();
        let half = 2.776_445_105 * (2.0f64 / 3.0).sqrt();
        assert!((d.diff - 2.0).abs() < 1e-12);
        assert!((d.high - (2.0 + half)).abs() < 1e-6, "{d:?}");
        assert!((d.low - (2.0 - half)).abs() < 1e-6, "{d:?}");
        // half-width 2.27 > 2: the interval covers zero
        assert!(!d.significant());
        let far = welch_diff(&[4.0, 5.0, 6.0], &[-1.0, 0.0, 1.0]).unwrap();
        assert!(far.significant() && far.low > 0.0, "{far:?}");
        let z = welch_diff(&[1.0, 2.0, 3.0], &[1.5, 2.0, 2.5]).unwrap();
        assert!(!z.significant());
    }
}
