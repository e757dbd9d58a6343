//! Mean, standard deviation, Welch's 95% interval of a difference of means, Student t quantiles
//! and the minimum detectable difference of a two-sample comparison.

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

/// The smallest and largest value ((+∞, −∞) for none).
pub fn min_max(x: &[f64]) -> (f64, f64) {
    x.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
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

/// The `p` quantile of Student's t with `df` degrees of freedom (NaN when `df` ≤ 0).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |t| t.inverse_cdf(p))
}

/// Pooled standard deviation of several groups: √(Σ (nᵢ−1) sᵢ² / Σ (nᵢ−1)) over the groups
/// with at least two values; NaN when there are none.
pub fn pooled_sd(groups: &[Vec<f64>]) -> f64 {
    let (mut ss, mut df) = (0.0, 0.0);
    for g in groups.iter().filter(|g| g.len() >= 2) {
        let (_, s) = mean_sd(g);
        ss += (g.len() as f64 - 1.0) * s * s;
        df += g.len() as f64 - 1.0;
    }
    if df == 0.0 {
        f64::NAN
    } else {
        (ss / df).sqrt()
    }
}

/// Minimum detectable difference of a two-sided two-sample t test at α = 0.05 with 80% power,
/// `n` values per group and standard deviation `sd`: (t₀.₉₇₅,df + t₀.₈₀,df)·sd·√(2/n) with
/// df = 2n − 2 (Student; Welch's df equals it when the two sds are equal). NaN for n < 2.
pub fn min_detectable_difference(sd: f64, n: usize) -> f64 {
    if n < 2 {
        return f64::NAN;
    }
    let df = 2.0 * n as f64 - 2.0;
    (t_quantile(0.975, df) + t_quantile(0.80, df)) * sd * (2.0 / n as f64).sqrt()
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

    #[test]
    fn t_quantiles_match_the_printed_table() {
        // two-sided 95% and one-sided 80% columns of a standard t table
        for (p, df, want) in [
            (0.975, 1.0, 12.706),
            (0.975, 2.0, 4.303),
            (0.975, 4.0, 2.776),
            (0.975, 10.0, 2.228),
            (0.975, 30.0, 2.042),
            (0.80, 2.0, 1.061),
            (0.80, 4.0, 0.941),
            (0.80, 10.0, 0.879),
            (0.80, 30.0, 0.854),
        ] {
            let t = t_quantile(p, df);
            assert!((t - want).abs() < 5e-4, "t({p}, {df}) = {t}, table {want}");
        }
        assert!(t_quantile(0.975, 0.0).is_nan());
    }

    #[test]
    fn pooled_sd_by_hand() {
        // variances 1 (n=3) and 4 (n=3): pooled variance (2·1 + 2·4)/4 = 2.5
        let s = pooled_sd(&[vec![1.0, 2.0, 3.0], vec![0.0, 2.0, 4.0], vec![7.0]]);
        assert!((s - 2.5f64.sqrt()).abs() < 1e-12, "{s}");
        assert!(pooled_sd(&[vec![1.0]]).is_nan());
    }

    #[test]
    fn minimum_detectable_difference_by_hand() {
        // n = 3 seeds, sd 1: df 4, (2.776445 + 0.940965)·√(2/3) = 3.035275
        let m = min_detectable_difference(1.0, 3);
        assert!((m - 3.035_275).abs() < 1e-4, "{m}");
        // linear in sd
        assert!((min_detectable_difference(2.5, 3) - 2.5 * m).abs() < 1e-9);
        assert!(min_detectable_difference(1.0, 1).is_nan());
    }
}
