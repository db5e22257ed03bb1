//! Score (evaluation): classification metrics that match scikit-learn, and seeded bootstrap intervals.
//!
//! Every function here is pinned against scikit-learn 1.9.1 / NumPy 2.4 by
//! `tests/fixtures/eval/make_metrics_reference.py` and `tests/it/metrics.rs` (agreement to 1e-9).
//! Length mismatches panic: sklearn raises on them, and they are always a bug.

use std::cmp::Ordering;

/// Fraction of exact matches (`sklearn.metrics.accuracy_score`). NaN when empty
/// (sklearn raises on empty input).
pub fn accuracy(truth: &[usize], pred: &[usize]) -> f64 {
    assert_eq!(truth.len(), pred.len(), "truth/pred length mismatch");
    let hits = truth.iter().zip(pred).filter(|(t, p)| t == p).count();
    hits as f64 / truth.len() as f64
}

/// `sklearn.metrics.balanced_accuracy_score(adjusted=False)`: the mean recall
/// over the classes that occur in `truth`. sklearn builds the confusion matrix
/// over the union of labels; a class seen only in `pred` has a 0/0 recall, which
/// it drops with the warning "y_pred contains classes not in y_true". Such
/// predictions still count against the true class's recall. NaN when empty.
pub fn balanced_accuracy(truth: &[usize], pred: &[usize]) -> f64 {
    assert_eq!(truth.len(), pred.len(), "truth/pred length mismatch");
    let k = truth.iter().chain(pred).max().map_or(0, |m| m + 1);
    let (mut support, mut hits) = (vec![0u64; k], vec![0u64; k]);
    for (&t, &p) in truth.iter().zip(pred) {
        support[t] += 1;
        hits[t] += u64::from(t == p);
    }
    let recalls: Vec<f64> = support
        .iter()
        .zip(&hits)
        .filter(|(&s, _)| s > 0)
        .map(|(&s, &h)| h as f64 / s as f64)
        .collect();
    recalls.iter().sum::<f64>() / recalls.len() as f64
}

/// Confusion matrix, `m[truth][pred]` (sklearn's `confusion_matrix` with
/// `labels=range(n_classes)`). Panics on a label `>= n_classes`, where sklearn
/// would silently drop the sample.
pub fn confusion(truth: &[usize], pred: &[usize], n_classes: usize) -> Vec<Vec<u64>> {
    assert_eq!(truth.len(), pred.len(), "truth/pred length mismatch");
    let mut m = vec![vec![0u64; n_classes]; n_classes];
    for (&t, &p) in truth.iter().zip(pred) {
        m[t][p] += 1;
    }
    m
}

/// Binary ROC AUC (`sklearn.metrics.roc_auc_score`), exact under ties.
///
/// Computed as the Mann–Whitney U statistic, P(score_pos > score_neg) with tied
/// pairs counting 1/2, in O(n log n): sort once and walk groups of equal score.
/// This is the same number as sklearn's trapezoid over the ROC curve, because a
/// tied group is one diagonal segment whose trapezoid area is exactly the 1/2.
/// None when only one class is present (sklearn 1.9 warns and returns NaN) or
/// when a score is not finite (sklearn raises).
pub fn auroc(positive: &[bool], scores: &[f64]) -> Option<f64> {
    assert_eq!(
        positive.len(),
        scores.len(),
        "labels/scores length mismatch"
    );
    if scores.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum over positives of (#negatives strictly below + half the tied negatives),
    // doubled so everything stays an exact integer until the final division.
    let (mut twice_u, mut neg_below) = (0u128, 0u128);
    for group in order.chunk_by(|&a, &b| scores[a] == scores[b]) {
        let pos = group.iter().filter(|&&i| positive[i]).count() as u128;
        let neg = group.len() as u128 - pos;
        twice_u += pos * (2 * neg_below + neg);
        neg_below += neg;
    }
    Some(twice_u as f64 / (2.0 * n_pos as f64 * n_neg as f64))
}

/// Mean of the defined per-class one-vs-rest AUROCs; None if none is defined.
///
/// With every class present in the truth, this equals
/// `roc_auc_score(y, probs, multi_class="ovr", average="macro")` (sklearn
/// averages the binary AUROC of each probability column against `y == k`).
/// Where a class is absent, sklearn raises (or returns NaN when given
/// `labels=`); we average the classes that are defined instead.
pub fn macro_auroc(per_class: &[Option<f64>]) -> Option<f64> {
    let defined: Vec<f64> = per_class.iter().flatten().copied().collect();
    (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)
}

/// Deterministic PRNG: plain SplitMix64 (Steele, Lea & Flood 2014).
///
/// `next_u64`: `state = state + 0x9E3779B97F4A7C15 (mod 2^64); z = state;
/// z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
/// return z ^ (z >> 31)` (all mod 2^64). `new(seed)` sets `state = seed`.
/// Statistically ample for bootstrap resampling and trivial to port bit for bit.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` without modulo bias: Lemire's multiply-shift with
    /// rejection (arXiv:1805.10941). `m = x * n` as 128 bits; if `m mod 2^64 < n`,
    /// compute `t = (2^64 - n) mod n` and while `m mod 2^64 < t` redraw `x`;
    /// return `m >> 64`. Panics when `n == 0`.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        let n = n as u64;
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let t = n.wrapping_neg() % n;
            while (m as u64) < t {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as usize
    }
}

/// A 95% bootstrap percentile interval, and how many replicates defined it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    pub reps_used: usize,
}

/// Seeded percentile bootstrap. Each replicate draws `idx[i] = rng.below(n)` for
/// `i in 0..n` in order from one `Rng::new(seed)` stream, and calls `stat(&idx)`.
/// Replicates where `stat` is None (e.g. a resample with one class, so AUROC is
/// undefined) are skipped, but their draws are still consumed, so the stream does
/// not depend on the statistic. The interval is `np.percentile(values, [2.5, 97.5])`
/// (linear). None when `n == 0` or no replicate was defined.
pub fn bootstrap(
    n: usize,
    reps: usize,
    seed: u64,
    stat: impl Fn(&[usize]) -> Option<f64>,
) -> Option<Interval> {
    Interval::of(&bootstrap_values(n, reps, seed, stat))
}

/// The replicates of [`bootstrap`] in draw order, `None` where `stat` was undefined (empty
/// when `n == 0`): what an interval is made of, and what a statistic of several bootstraps
/// (the gap between groups, replicate by replicate) is made of.
pub fn bootstrap_values(
    n: usize,
    reps: usize,
    seed: u64,
    stat: impl Fn(&[usize]) -> Option<f64>,
) -> Vec<Option<f64>> {
    if n == 0 {
        return Vec::new();
    }
    let mut rng = Rng::new(seed);
    let mut idx = vec![0usize; n];
    (0..reps)
        .map(|_| {
            idx.iter_mut().for_each(|i| *i = rng.below(n));
            stat(&idx)
        })
        .collect()
}

impl Interval {
    /// The 2.5th and 97.5th percentiles of the defined replicates; None if there are none.
    pub fn of(replicates: &[Option<f64>]) -> Option<Interval> {
        let mut values: Vec<f64> = replicates.iter().flatten().copied().collect();
        if values.is_empty() {
            return None;
        }
        values.sort_unstable_by(f64::total_cmp);
        Some(Interval {
            low: percentile_sorted(&values, 2.5),
            high: percentile_sorted(&values, 97.5),
            reps_used: values.len(),
        })
    }
}

/// NumPy's default ("linear") percentile of sorted, non-empty data, with its exact
/// float steps: `h = (q / 100) * (n - 1)`, and NumPy's `_lerp`, which
/// interpolates from the upper neighbour when the fraction is >= 0.5.
fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (q / 100.0) * (sorted.len() - 1) as f64;
    let lo = h.floor();
    let i = lo as usize;
    if i + 1 >= sorted.len() {
        return sorted[sorted.len() - 1];
    }
    let (a, b, t) = (sorted[i], sorted[i + 1], h - lo);
    let d = b - a;
    match t.partial_cmp(&0.5) {
        Some(Ordering::Less) => a + d * t,
        _ => b - d * (1.0 - t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_confusion() {
        let (t, p) = ([0, 1, 2, 2, 1], [0, 2, 2, 2, 1]);
        assert_eq!(accuracy(&t, &p), 0.8);
        assert_eq!(
            confusion(&t, &p, 3),
            vec![vec![1, 0, 0], vec![0, 1, 1], vec![0, 0, 2]]
        );
    }

    #[test]
    fn balanced_accuracy_matches_sklearn_edges() {
        // sklearn docstring example.
        assert_eq!(
            balanced_accuracy(&[0, 1, 0, 0, 1, 0], &[0, 1, 0, 0, 0, 1]),
            0.625
        );
        // Class 2 only predicted: dropped from the mean; recalls 1/2 and 0 -> 0.25.
        assert_eq!(balanced_accuracy(&[0, 0, 1], &[0, 2, 2]), 0.25);
        assert!(balanced_accuracy(&[], &[]).is_nan());
    }

    #[test]
    fn auroc_ties_and_undefined() {
        // Pairs (pos, neg): (.8,.1)=1 (.8,.4)=1 (.4,.1)=1 (.4,.4)=1/2 -> 3.5/4.
        let pos = [false, true, false, true];
        assert_eq!(auroc(&pos, &[0.1, 0.4, 0.4, 0.8]), Some(0.875));
        assert_eq!(auroc(&pos, &[0.5; 4]), Some(0.5));
        assert_eq!(auroc(&[true, true], &[0.1, 0.2]), None);
        assert_eq!(auroc(&pos, &[0.1, f64::NAN, 0.4, 0.8]), None);
        assert_eq!(macro_auroc(&[Some(0.5), None, Some(1.0)]), Some(0.75));
        assert_eq!(macro_auroc(&[None]), None);
    }

    #[test]
    fn splitmix_known_values_and_below_range() {
        // Reference SplitMix64 output for seed 0 (Vigna's splitmix64.c).
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut r = Rng::new(7);
        assert!((0..1000).all(|_| r.below(3) < 3));
        assert_eq!(Rng::new(1).below(1), 0);
    }

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile([1, 2, 3, 4], [2.5, 97.5]) == [1.075, 3.925]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile_sorted(&v, 2.5) - 1.075).abs() < 1e-12);
        assert!((percentile_sorted(&v, 97.5) - 3.925).abs() < 1e-12);
        assert_eq!(percentile_sorted(&[5.0], 97.5), 5.0);
    }

    #[test]
    fn bootstrap_is_seeded_and_skips_undefined() {
        let mean = |idx: &[usize]| Some(idx.iter().sum::<usize>() as f64 / idx.len() as f64);
        let a = bootstrap(50, 100, 42, mean).unwrap();
        assert_eq!(Some(a), bootstrap(50, 100, 42, mean));
        assert!(a.low <= a.high && a.reps_used == 100);
        assert_eq!(bootstrap(10, 20, 1, |_| None), None);
        assert_eq!(bootstrap(0, 20, 1, mean), None);
    }
}
