//! Order statistics of a sample of durations (milliseconds).

use serde::{Deserialize, Serialize};

/// Summary of one contender's samples, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

/// The `p`-th percentile (0..=100) of sorted data, interpolating linearly
/// between the two closest ranks (numpy's default, Hyndman-Fan type 7).
/// `None` for an empty sample.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let pos = p / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Sort a copy (NaNs last) for the percentile functions.
pub fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    percentile_sorted(&sorted(samples), p)
}

pub fn median(samples: &[f64]) -> Option<f64> {
    percentile(samples, 50.0)
}

impl Stats {
    /// `None` for an empty sample.
    pub fn of(samples: &[f64]) -> Option<Stats> {
        let s = sorted(samples);
        let n = s.len();
        Some(Stats {
            n,
            median: percentile_sorted(&s, 50.0)?,
            p90: percentile_sorted(&s, 90.0)?,
            p99: percentile_sorted(&s, 99.0)?,
            min: s[0],
            max: s[n - 1],
            mean: s.iter().sum::<f64>() / n as f64,
        })
    }

    /// Lower and upper quartile (for the chart's boxes).
    pub fn quartiles(samples: &[f64]) -> Option<(f64, f64)> {
        let s = sorted(samples);
        Some((percentile_sorted(&s, 25.0)?, percentile_sorted(&s, 75.0)?))
    }
}

/// `a / b`, or `None` when `b` is not a positive number.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}
