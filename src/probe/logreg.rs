//! Probe: multinomial logistic regression (scikit-learn's objectives) and its cross-validated C search.
//!
//! Reproduces scikit-learn 1.9 `LogisticRegression(solver="lbfgs")` with the default L2
//! penalty and `fit_intercept=True`, and `LogisticRegressionCV(Cs=10, cv=5)` with
//! accuracy scoring and `refit=True`. The minimised objective (sklearn's
//! `LinearModelLoss.loss_gradient` with `l2_reg_strength = 1 / (C * n_samples)`) is
//!
//! ```text
//! f(W, b) = (1/n) * sum_i loss_i + (1 / (2 * C * n)) * ||W||_F^2      (b is not penalised)
//! L1:       (1/n) * sum_i loss_i + (1 / (C * n)) * sum |W_kj|          (l1_ratio = 1, saga's)
//! multinomial (classes >= 3): loss_i = logsumexp_k(z_ik) - z_i,y_i,  z_i = W x_i + b,  W: classes x dim
//! binary      (classes == 2): loss_i = log(1 + exp(z_i)) - [y_i == 1] * z_i,  W: 1 x dim
//! ```
//!
//! which is the classic `C * sum_i loss_i + ||W||^2 / 2` divided by `C * n`, so the optimum is
//! the same. It is strictly convex in `W`; the intercepts are only fixed up to a common shift
//! in the multinomial case, and like sklearn (which starts from zero) the solution keeps
//! `sum_k b_k = 0`. Inputs are used as given: L2-normalising the embeddings is the caller's
//! job. Rows may be `f32` or `f64`; all arithmetic is `f64`.

use super::solver::{lbfgs, owlqn};
use std::thread;

/// The penalty on the coefficients (never on the intercepts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Penalty {
    /// `||W||^2 / 2`: dense weights (sklearn's default).
    L2,
    /// `sum |W|`: a sparse, readable model (sklearn's `l1_ratio=1`).
    L1,
}

/// Element type of an embedding row (`f32` or `f64`).
pub trait Feature: Copy + Into<f64> + Sync {}
impl<T: Copy + Into<f64> + Sync> Feature for T {}

/// A fitted probe. `coef` is row-major `[k_rows, dim]` with `k_rows = 1` for binary problems
/// (the row scores class 1 against class 0, as sklearn's `coef_`) and `classes` otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub classes: usize,
    pub dim: usize,
    pub coef: Vec<f64>,
    pub intercept: Vec<f64>,
    pub c: f64,
}

/// L-BFGS settings. Stops once `max |gradient| <= tol` (sklearn's `tol` has the same meaning).
#[derive(Clone, Debug)]
pub struct FitOptions {
    pub tol: f64,
    pub max_iter: usize,
    /// Number of correction pairs kept by L-BFGS.
    pub memory: usize,
    /// Worker threads for the gradient; 0 = `available_parallelism`. Results do not depend on it.
    pub threads: usize,
    pub penalty: Penalty,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            tol: 1e-12,
            max_iter: 10_000,
            memory: 20,
            threads: 0,
            penalty: Penalty::L2,
        }
    }
}

/// What the solver did.
#[derive(Clone, Debug)]
pub struct FitReport {
    pub iterations: usize,
    pub evaluations: usize,
    pub converged: bool,
    pub max_abs_grad: f64,
    pub objective: f64,
}

/// Cross-validation outcome: `scores[c][fold]` is the held-out accuracy.
#[derive(Clone, Debug)]
pub struct CvResult {
    pub cs: Vec<f64>,
    pub folds: Vec<usize>,
    pub scores: Vec<Vec<f64>>,
    pub best_index: usize,
    pub best_c: f64,
    /// Every fold fit (and, from `fit_cv`, the refit) reached `tol` within `max_iter`.
    pub converged: bool,
}

/// sklearn's default grid, `np.logspace(-4, 4, 10)`.
pub fn default_cs() -> Vec<f64> {
    let step = 8.0 / 9.0;
    (0..10)
        .map(|i| 10f64.powf(if i == 9 { 4.0 } else { -4.0 + i as f64 * step }))
        .collect()
}

impl Model {
    /// `decision_function` for one row: `k_rows` raw scores.
    pub fn decision<T: Feature>(&self, x_row: &[T]) -> Vec<f64> {
        assert_eq!(x_row.len(), self.dim, "row length must equal dim");
        let d = self.dim;
        (0..kr(self.classes))
            .map(|r| dot(&self.coef[r * d..(r + 1) * d], x_row) + self.intercept[r])
            .collect()
    }

    /// Class probabilities (length `classes`), as sklearn's `predict_proba`.
    pub fn predict_proba<T: Feature>(&self, x_row: &[T]) -> Vec<f64> {
        let mut z = self.decision(x_row);
        if self.classes == 2 {
            let p = 1.0 / (1.0 + (-z[0]).exp());
            return vec![1.0 - p, p];
        }
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        z.iter_mut().for_each(|v| *v = (*v - m).exp());
        let s: f64 = z.iter().sum();
        z.iter_mut().for_each(|v| *v /= s);
        z
    }

    /// Predicted class, as sklearn's `predict` (binary: score > 0; else first argmax).
    pub fn predict<T: Feature>(&self, x_row: &[T]) -> usize {
        let z = self.decision(x_row);
        if self.classes == 2 {
            return usize::from(z[0] > 0.0);
        }
        let mut best = 0;
        for (k, v) in z.iter().enumerate() {
            if *v > z[best] {
                best = k;
            }
        }
        best
    }
}

/// Fit with default options, starting from zero. Panics if `x.len() != y.len() * dim`, if
/// `classes < 2`, or if some class in `0..classes` has no sample (its intercept would diverge).
pub fn fit<T: Feature>(x: &[T], dim: usize, y: &[usize], classes: usize, c: f64) -> Model {
    fit_with(x, dim, y, classes, c, &FitOptions::default(), None).0
}

/// Fit with explicit options and an optional warm start.
pub fn fit_with<T: Feature>(
    x: &[T],
    dim: usize,
    y: &[usize],
    classes: usize,
    c: f64,
    opts: &FitOptions,
    init: Option<&Model>,
) -> (Model, FitReport) {
    check_inputs(x, dim, y, classes, c);
    let mut counts = vec![0usize; classes];
    y.iter().for_each(|&l| counts[l] += 1);
    assert!(counts.iter().all(|&n| n > 0), "every class needs a sample");
    let w0 = init.map_or_else(|| vec![0.0; kr(classes) * (dim + 1)], |m| pack(m, dim));
    let rows: Vec<usize> = (0..y.len()).collect();
    let (w, rep) = Problem::new(x, dim, y, &rows, classes, c, opts.penalty).solve(w0, opts);
    (unpack(&w, classes, dim, c), rep)
}

/// sklearn's `StratifiedKFold(n_splits=k, shuffle=False)` test-fold id for every sample.
/// Labels are taken in order of first appearance, exactly as sklearn does.
pub fn stratified_folds(y: &[usize], classes: usize, k: usize) -> Vec<usize> {
    assert!(k >= 2 && k <= y.len(), "need 2 <= k <= n_samples");
    let mut enc = vec![usize::MAX; classes];
    let mut counts = Vec::new();
    for &l in y {
        if enc[l] == usize::MAX {
            enc[l] = counts.len();
            counts.push(0usize);
        }
        counts[enc[l]] += 1;
    }
    // Round-robin over the sorted encoded labels: position j of that order goes to fold j % k.
    let mut alloc = vec![vec![0usize; k]; counts.len()];
    let mut start = 0;
    for (e, &n) in counts.iter().enumerate() {
        for j in start..start + n {
            alloc[e][j % k] += 1;
        }
        start += n;
    }
    // Within a class, samples (in index order) fill fold 0 first, then fold 1, ...
    let mut next = vec![(0usize, 0usize); counts.len()]; // (fold, used in that fold)
    let mut out = Vec::with_capacity(y.len());
    for &l in y {
        let e = enc[l];
        let (mut f, mut used) = next[e];
        while used == alloc[e][f] {
            f += 1;
            used = 0;
        }
        out.push(f);
        next[e] = (f, used + 1);
    }
    out
}

/// Held-out accuracy for every C on every stratified fold (no refit).
pub fn cross_validate<T: Feature>(
    x: &[T],
    dim: usize,
    y: &[usize],
    classes: usize,
    cs: &[f64],
    k: usize,
    opts: &FitOptions,
) -> CvResult {
    cv_path(x, dim, y, classes, cs, k, opts).0
}

/// `LogisticRegressionCV(refit=True)`: cross-validate, pick the C with the highest summed
/// (= mean) fold accuracy (first one on ties), refit on all data warm-started from the mean of
/// the fold solutions at that C.
pub fn fit_cv<T: Feature>(
    x: &[T],
    dim: usize,
    y: &[usize],
    classes: usize,
    cs: &[f64],
    k: usize,
    opts: &FitOptions,
) -> (Model, CvResult) {
    let (cv, paths) = cv_path(x, dim, y, classes, cs, k, opts);
    let fold_ws = &paths[cv.best_index];
    let mut mean = vec![0.0; fold_ws[0].len()];
    for w in fold_ws {
        mean.iter_mut()
            .zip(w)
            .for_each(|(m, v)| *m += v / fold_ws.len() as f64);
    }
    let init = unpack(&mean, classes, dim, cv.best_c);
    let (model, rep) = fit_with(x, dim, y, classes, cv.best_c, opts, Some(&init));
    (
        model,
        CvResult {
            converged: cv.converged && rep.converged,
            ..cv
        },
    )
}

fn cv_path<T: Feature>(
    x: &[T],
    dim: usize,
    y: &[usize],
    classes: usize,
    cs: &[f64],
    k: usize,
    opts: &FitOptions,
) -> (CvResult, Vec<Vec<Vec<f64>>>) {
    assert!(!cs.is_empty(), "need at least one C");
    cs.iter().for_each(|&c| check_inputs(x, dim, y, classes, c));
    let folds = stratified_folds(y, classes, k);
    let mut scores = vec![Vec::with_capacity(k); cs.len()];
    let mut paths = vec![Vec::with_capacity(k); cs.len()];
    let mut converged = true;
    for f in 0..k {
        let train: Vec<usize> = (0..y.len()).filter(|&i| folds[i] != f).collect();
        let test: Vec<usize> = (0..y.len()).filter(|&i| folds[i] == f).collect();
        // Like sklearn's path: Cs in the given order, each warm-started from the previous one.
        let mut w = vec![0.0; kr(classes) * (dim + 1)];
        for (ci, &c) in cs.iter().enumerate() {
            let rep;
            (w, rep) = Problem::new(x, dim, y, &train, classes, c, opts.penalty).solve(w, opts);
            converged &= rep.converged;
            let m = unpack(&w, classes, dim, c);
            let hits = test
                .iter()
                .filter(|&&i| m.predict(&x[i * dim..(i + 1) * dim]) == y[i])
                .count();
            scores[ci].push(hits as f64 / test.len() as f64);
            paths[ci].push(w.clone());
        }
    }
    // sklearn: argmax of scores.sum(axis=0), summed fold by fold, first maximum wins.
    let sums: Vec<f64> = scores
        .iter()
        .map(|s| s.iter().fold(0.0, |a, v| a + v))
        .collect();
    let best_index = (0..cs.len()).fold(0, |b, i| if sums[i] > sums[b] { i } else { b });
    let cv = CvResult {
        cs: cs.to_vec(),
        folds,
        scores,
        best_index,
        best_c: cs[best_index],
        converged,
    };
    (cv, paths)
}

fn check_inputs<T>(x: &[T], dim: usize, y: &[usize], classes: usize, c: f64) {
    assert!(c > 0.0, "C must be positive (f64::INFINITY = no penalty)");
    assert!(classes >= 2, "need at least two classes");
    assert!(dim > 0 && !y.is_empty(), "empty input");
    assert_eq!(x.len(), y.len() * dim, "x must be row-major [n, dim]");
    assert!(y.iter().all(|&l| l < classes), "label out of range");
}

fn kr(classes: usize) -> usize {
    if classes == 2 {
        1
    } else {
        classes
    }
}

/// Parameters packed per row as `[coef_r (dim), intercept_r]`.
fn pack(m: &Model, dim: usize) -> Vec<f64> {
    assert_eq!(m.dim, dim, "warm start has the wrong dim");
    assert_eq!(
        m.coef.len(),
        m.intercept.len() * dim,
        "malformed warm start"
    );
    let mut w = Vec::with_capacity(m.intercept.len() * (dim + 1));
    for (r, b) in m.intercept.iter().enumerate() {
        w.extend_from_slice(&m.coef[r * dim..(r + 1) * dim]);
        w.push(*b);
    }
    w
}

fn unpack(w: &[f64], classes: usize, dim: usize, c: f64) -> Model {
    let (mut coef, mut intercept) = (Vec::new(), Vec::new());
    for row in w.chunks_exact(dim + 1) {
        coef.extend_from_slice(&row[..dim]);
        intercept.push(row[dim]);
    }
    Model {
        classes,
        dim,
        coef,
        intercept,
        c,
    }
}

#[inline]
fn dot<T: Feature>(a: &[f64], b: &[T]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(p, q)| p * (*q).into())
        .sum();
    for (p, q) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] += p[j] * q[j].into();
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Dot products of `a` with four rows in one pass over `a`.
#[inline]
fn dot4<T: Feature>(a: &[f64], xs: [&[T]; 4]) -> [f64; 4] {
    let xs = xs.map(|x| &x[..a.len()]);
    let mut acc = [[0.0f64; 4]; 4];
    let n4 = a.len() / 4 * 4;
    for j in (0..n4).step_by(4) {
        for (acc, x) in acc.iter_mut().zip(&xs) {
            for l in 0..4 {
                acc[l] += a[j + l] * x[j + l].into();
            }
        }
    }
    std::array::from_fn(|b| {
        let tail: f64 = (n4..a.len()).map(|j| a[j] * xs[b][j].into()).sum();
        (acc[b][0] + acc[b][2]) + (acc[b][1] + acc[b][3]) + tail
    })
}

const CHUNK: usize = 1024;

struct Problem<'a, T> {
    x: &'a [T],
    dim: usize,
    y: &'a [usize],
    rows: &'a [usize],
    classes: usize,
    l2: f64,
    l1: f64,
}

impl<'a, T: Feature> Problem<'a, T> {
    fn new(
        x: &'a [T],
        dim: usize,
        y: &'a [usize],
        rows: &'a [usize],
        classes: usize,
        c: f64,
        penalty: Penalty,
    ) -> Self {
        let strength = 1.0 / (c * rows.len() as f64);
        let (l2, l1) = match penalty {
            Penalty::L2 => (strength, 0.0),
            Penalty::L1 => (0.0, strength),
        };
        Problem {
            x,
            dim,
            y,
            rows,
            classes,
            l2,
            l1,
        }
    }

    fn solve(&self, w0: Vec<f64>, opts: &FitOptions) -> (Vec<f64>, FitReport) {
        let t = match opts.threads {
            0 => thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        if self.l1 > 0.0 {
            // Coefficients are penalised, each row's last entry (the intercept) is not.
            let s = self.dim + 1;
            let penalised: Vec<bool> = (0..w0.len()).map(|j| j % s != self.dim).collect();
            owlqn(|w, g| self.eval(w, g, t), w0, self.l1, &penalised, opts)
        } else {
            lbfgs(|w, g| self.eval(w, g, t), w0, opts)
        }
    }

    /// Summed loss and gradient over a block of rows, added into `g`. Rows go four at a time
    /// (a short group is padded with a repeated row whose gradient weight is zero), so each
    /// coefficient row and gradient row is streamed once per four samples.
    fn block(&self, w: &[f64], rows: &[usize], g: &mut [f64]) -> f64 {
        let (d, s, kr) = (self.dim, self.dim + 1, kr(self.classes));
        let mut z = vec![0.0; 4 * kr];
        let mut loss = 0.0;
        for group in rows.chunks(4) {
            let nb = group.len();
            let xs: [&[T]; 4] = std::array::from_fn(|b| {
                let i = group[b.min(nb - 1)];
                &self.x[i * d..(i + 1) * d]
            });
            for r in 0..kr {
                let zr = dot4(&w[r * s..r * s + d], xs);
                (0..4).for_each(|b| z[b * kr + r] = zr[b] + w[r * s + d]);
            }
            for (b, &i) in group.iter().enumerate() {
                loss += loss_grad(&mut z[b * kr..(b + 1) * kr], self.y[i]);
            }
            z[nb * kr..].iter_mut().for_each(|v| *v = 0.0);
            for (r, row) in g.chunks_exact_mut(s).enumerate() {
                let gz: [f64; 4] = std::array::from_fn(|b| z[b * kr + r]);
                let [x0, x1, x2, x3] = xs.map(|x| &x[..d]);
                for (j, a) in row[..d].iter_mut().enumerate() {
                    *a += (gz[0] * x0[j].into() + gz[1] * x1[j].into())
                        + (gz[2] * x2[j].into() + gz[3] * x3[j].into());
                }
                row[d] += (gz[0] + gz[1]) + (gz[2] + gz[3]);
            }
        }
        loss
    }

    /// sklearn's objective and gradient. Rows are processed in fixed chunks whose partial
    /// sums are added in chunk order, so the result does not depend on the thread count.
    fn eval(&self, w: &[f64], g: &mut [f64], threads: usize) -> f64 {
        let chunks: Vec<&[usize]> = self.rows.chunks(CHUNK).collect();
        let (nc, t) = (chunks.len(), threads.clamp(1, chunks.len()));
        let run = |i: usize| {
            let mut pg = vec![0.0; w.len()];
            (i, self.block(w, chunks[i], &mut pg), pg)
        };
        let mut parts: Vec<(usize, f64, Vec<f64>)> = if t == 1 {
            (0..nc).map(run).collect()
        } else {
            thread::scope(|sc| {
                let run = &run;
                let hs: Vec<_> = (0..t)
                    .map(|j| sc.spawn(move || (j..nc).step_by(t).map(run).collect::<Vec<_>>()))
                    .collect();
                hs.into_iter()
                    .flat_map(|h| h.join().expect("gradient worker panicked"))
                    .collect()
            })
        };
        parts.sort_by_key(|p| p.0);
        let n = self.rows.len() as f64;
        g.iter_mut().for_each(|v| *v = 0.0);
        let mut loss = 0.0;
        for (_, l, pg) in &parts {
            loss += l;
            g.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
        }
        let (d, s) = (self.dim, self.dim + 1);
        let mut norm2 = 0.0;
        for (r, gr) in g.chunks_exact_mut(s).enumerate() {
            for j in 0..s {
                gr[j] /= n;
                if j < d {
                    gr[j] += self.l2 * w[r * s + j];
                    norm2 += w[r * s + j] * w[r * s + j];
                }
            }
        }
        loss / n + 0.5 * self.l2 * norm2
    }
}

/// One sample: turns raw scores `z` into d loss / d z in place and returns the loss.
fn loss_grad(z: &mut [f64], y: usize) -> f64 {
    if z.len() == 1 {
        // log(1 + e^v) - t v and its derivative sigmoid(v) - t, without overflow.
        let (t, v) = (if y == 1 { 1.0 } else { 0.0 }, z[0]);
        let e = (-v.abs()).exp();
        z[0] = if v >= 0.0 {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        } - t;
        return v.max(0.0) + e.ln_1p() - t * v;
    }
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let zy = z[y];
    let mut sum = 0.0;
    z.iter_mut().for_each(|v| {
        *v = (*v - m).exp();
        sum += *v;
    });
    z.iter_mut().for_each(|v| *v /= sum);
    z[y] -= 1.0;
    m + sum.ln() - zy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(classes: usize) -> (Vec<f64>, Vec<usize>) {
        // deterministic, overlapping clusters on the unit sphere in 4-d
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let mut s = 12345u64;
        for i in 0..90 {
            let l = i % classes;
            let mut row = [0.3; 4];
            row[l % 4] += 1.0;
            for v in row.iter_mut() {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *v += ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 1.6;
            }
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            x.extend(row.iter().map(|v| v / norm));
            y.push(l);
        }
        (x, y)
    }

    #[test]
    fn folds_match_sklearn() {
        // StratifiedKFold(3)._make_test_folds(None, y) in scikit-learn 1.9.1
        let y = [2, 0, 1, 1, 0, 2, 2, 0, 1, 0, 0, 2, 1];
        assert_eq!(
            stratified_folds(&y, 3, 3),
            vec![0, 0, 0, 0, 1, 0, 1, 1, 1, 2, 2, 2, 2]
        );
    }

    #[test]
    fn default_grid() {
        let cs = default_cs();
        assert_eq!((cs.len(), cs[0], cs[9]), (10, 1e-4, 1e4));
        assert!((cs[4] - 0.3593813663804626).abs() < 1e-15);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for classes in [2, 3] {
            let (x, y) = toy(classes);
            let rows: Vec<usize> = (0..y.len()).collect();
            let p = Problem {
                x: &x,
                dim: 4,
                y: &y,
                rows: &rows,
                classes,
                l2: 0.05,
                l1: 0.0,
            };
            let w: Vec<f64> = (0..kr(classes) * 5)
                .map(|i| (i as f64 * 0.37).sin())
                .collect();
            let mut g = vec![0.0; w.len()];
            p.eval(&w, &mut g, 1);
            for j in 0..w.len() {
                let (mut wp, mut wm, mut tmp) = (w.clone(), w.clone(), g.clone());
                wp[j] += 1e-6;
                wm[j] -= 1e-6;
                let fd = (p.eval(&wp, &mut tmp, 1) - p.eval(&wm, &mut tmp, 1)) / 2e-6;
                assert!(
                    (fd - g[j]).abs() < 1e-7,
                    "classes {classes} coord {j}: {fd} vs {}",
                    g[j]
                );
            }
        }
    }

    #[test]
    fn gradient_is_thread_independent() {
        let (x, y) = toy(3);
        let rows: Vec<usize> = (0..3000).map(|i| (i * 7) % 90).collect();
        let p = Problem {
            x: &x,
            dim: 4,
            y: &y,
            rows: &rows,
            classes: 3,
            l2: 0.01,
            l1: 0.0,
        };
        let w: Vec<f64> = (0..15).map(|i| (i as f64).cos()).collect();
        let (mut g1, mut g3) = (vec![0.0; 15], vec![0.0; 15]);
        assert_eq!(
            p.eval(&w, &mut g1, 1).to_bits(),
            p.eval(&w, &mut g3, 3).to_bits()
        );
        assert_eq!(g1, g3);
    }

    #[test]
    fn fit_converges() {
        let (x, y) = toy(3);
        let one = FitOptions {
            threads: 1,
            ..Default::default()
        };
        let (m, rep) = fit_with(&x, 4, &y, 3, 1.0, &one, None);
        assert!(rep.converged && rep.max_abs_grad <= 1e-12, "{rep:?}");
        assert!(m.intercept.iter().sum::<f64>().abs() < 1e-12);
        let p = m.predict_proba(&x[..4]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let m32 = fit(&x32, 4, &y, 3, 1.0);
        assert!(m32
            .coef
            .iter()
            .zip(&m.coef)
            .all(|(a, b)| (a - b).abs() < 1e-5));
    }
}
