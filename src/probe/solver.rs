//! Probe (solvers): L-BFGS for the smooth (L2) objective, and OWL-QN (Andrew & Gao 2007,
//! "Scalable training of L1-regularized log-linear models") for the L1 one: L-BFGS on the
//! smooth part, steered by the pseudo-gradient and kept within one orthant per step, so that
//! coefficients reach exact zeros.

use super::logreg::{FitOptions, FitReport};

pub(super) fn vdot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| p * q).sum()
}

pub(super) fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// L-BFGS (two-loop recursion) with a line search that enforces the strong Wolfe conditions,
/// falling back to Hager-Zhang's approximate Wolfe test once f stops being resolvable.
pub(super) fn lbfgs(
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    mut w: Vec<f64>,
    o: &FitOptions,
) -> (Vec<f64>, FitReport) {
    let n = w.len();
    let mut g = vec![0.0; n];
    let mut fx = f(&w, &mut g);
    let mut evals = 1;
    let mut hist: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let (mut iter, mut converged) = (0, false);
    while iter < o.max_iter {
        if max_abs(&g) <= o.tol {
            converged = true;
            break;
        }
        // d = -H g
        let mut d: Vec<f64> = g.iter().map(|v| -v).collect();
        let mut alphas = Vec::with_capacity(hist.len());
        for (s, y, rho) in hist.iter().rev() {
            let a = rho * vdot(s, &d);
            d.iter_mut().zip(y).for_each(|(p, q)| *p -= a * q);
            alphas.push(a);
        }
        let gamma = match hist.back() {
            Some((s, y, _)) => vdot(s, y) / vdot(y, y),
            None => 1.0 / vdot(&g, &g).sqrt(),
        };
        d.iter_mut().for_each(|v| *v *= gamma);
        for ((s, y, rho), a) in hist.iter().zip(alphas.iter().rev()) {
            let b = rho * vdot(y, &d);
            d.iter_mut().zip(s).for_each(|(p, q)| *p += (a - b) * q);
        }
        let step = if vdot(&g, &d) < 0.0 {
            line_search(&mut f, &w, fx, &g, &d, &mut evals)
        } else {
            None
        };
        let Some((fnew, wnew, gnew)) = step else {
            if hist.is_empty() {
                break; // no progress possible along -g: rounding floor reached
            }
            hist.clear();
            continue;
        };
        let s: Vec<f64> = wnew.iter().zip(&w).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gnew.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = vdot(&s, &y);
        if sy > 1e-300 {
            if hist.len() == o.memory.max(1) {
                hist.pop_front();
            }
            hist.push_back((s, y, 1.0 / sy));
        }
        (fx, w, g) = (fnew, wnew, gnew);
        iter += 1;
    }
    let rep = FitReport {
        iterations: iter,
        evaluations: evals,
        converged,
        max_abs_grad: max_abs(&g),
        objective: fx,
    };
    (w, rep)
}

type Point = (f64, Vec<f64>, Vec<f64>);

fn line_search(
    f: &mut impl FnMut(&[f64], &mut [f64]) -> f64,
    w: &[f64],
    f0: f64,
    g0: &[f64],
    d: &[f64],
    evals: &mut usize,
) -> Option<Point> {
    let (c1, c2) = (1e-4, 0.9);
    let dphi0 = vdot(g0, d);
    let feps = 1e-12 * f0.abs().max(1e-300);
    let (mut lo, mut hi) = ((0.0, dphi0), None::<(f64, f64)>);
    let mut best: Option<Point> = None;
    let mut a = 1.0;
    for _ in 0..60 {
        let wa: Vec<f64> = w.iter().zip(d).map(|(p, q)| p + a * q).collect();
        let mut ga = vec![0.0; w.len()];
        let fa = f(&wa, &mut ga);
        *evals += 1;
        let dphi = vdot(&ga, d);
        let armijo = fa <= f0 + c1 * a * dphi0;
        let approx = fa <= f0 + feps && dphi <= -0.8 * dphi0;
        if dphi.abs() <= -c2 * dphi0 && (armijo || approx) {
            return Some((fa, wa, ga));
        }
        if fa < best.as_ref().map_or(f0, |b| b.0) {
            best = Some((fa, wa, ga));
        }
        let prev = lo;
        if !(armijo || fa <= f0 + feps) || dphi > 0.0 {
            hi = Some((a, dphi));
        } else {
            lo = (a, dphi);
        }
        a = match hi {
            None => {
                // extrapolate the (increasing) slope to zero, at least 1.5x, at most 10x
                let t = if dphi > prev.1 {
                    a - dphi * (a - prev.0) / (dphi - prev.1)
                } else {
                    10.0 * a
                };
                t.clamp(1.5 * a, 10.0 * a)
            }
            Some((ha, hd)) => {
                let width = ha - lo.0;
                if width <= 1e-15 * ha {
                    break;
                }
                let t = if hd > lo.1 {
                    lo.0 - lo.1 * width / (hd - lo.1)
                } else {
                    lo.0 + 0.5 * width
                };
                t.clamp(lo.0 + 0.1 * width, ha - 0.1 * width)
            }
        };
    }
    best
}

/// OWL-QN on `smooth(w) + l1 * sum_{j penalised} |w_j|`; `f` gives the smooth part and its
/// gradient. Stops once the largest pseudo-gradient component is at most `tol`.
pub(super) fn owlqn(
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    mut w: Vec<f64>,
    l1: f64,
    penalised: &[bool],
    o: &FitOptions,
) -> (Vec<f64>, FitReport) {
    let n = w.len();
    let norm1 = |w: &[f64]| -> f64 {
        w.iter()
            .zip(penalised)
            .filter(|(_, p)| **p)
            .map(|(v, _)| v.abs())
            .sum()
    };
    let mut g = vec![0.0; n];
    let mut fx = f(&w, &mut g) + l1 * norm1(&w);
    let mut evals = 1;
    let mut hist: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let (mut iter, mut converged) = (0, false);
    let mut pg = pseudo_gradient(&w, &g, l1, penalised);
    // Steps that lower the objective by less than its rounding: the floor is reached.
    let mut stalled = 0;
    while iter < o.max_iter {
        if max_abs(&pg) <= o.tol {
            converged = true;
            break;
        }
        let mut d: Vec<f64> = pg.iter().map(|v| -v).collect();
        let mut alphas = Vec::with_capacity(hist.len());
        for (s, y, rho) in hist.iter().rev() {
            let a = rho * vdot(s, &d);
            d.iter_mut().zip(y).for_each(|(p, q)| *p -= a * q);
            alphas.push(a);
        }
        let gamma = match hist.back() {
            Some((s, y, _)) => vdot(s, y) / vdot(y, y),
            None => 1.0 / vdot(&pg, &pg).sqrt(),
        };
        d.iter_mut().for_each(|v| *v *= gamma);
        for ((s, y, rho), a) in hist.iter().zip(alphas.iter().rev()) {
            let b = rho * vdot(y, &d);
            d.iter_mut().zip(s).for_each(|(p, q)| *p += (a - b) * q);
        }
        // Keep only the components that descend along the pseudo-gradient.
        d.iter_mut().zip(&pg).for_each(|(di, p)| {
            if *di * p >= 0.0 {
                *di = 0.0
            }
        });
        // The orthant this step stays in: a zero may leave it only against the pseudo-gradient.
        let orthant: Vec<f64> = w
            .iter()
            .zip(&pg)
            .map(|(wi, p)| if *wi != 0.0 { wi.signum() } else { -p.signum() })
            .collect();
        let mut step = None;
        let mut a = 1.0;
        for _ in 0..60 {
            let mut wa: Vec<f64> = w.iter().zip(&d).map(|(p, q)| p + a * q).collect();
            for ((v, o), p) in wa.iter_mut().zip(&orthant).zip(penalised) {
                if *p && v.signum() != *o {
                    *v = 0.0;
                }
            }
            let mut ga = vec![0.0; n];
            let fa = f(&wa, &mut ga) + l1 * norm1(&wa);
            evals += 1;
            let decrease: f64 = pg
                .iter()
                .zip(wa.iter().zip(&w))
                .map(|(p, (x, y))| p * (x - y))
                .sum();
            if fa <= fx + 1e-4 * decrease {
                step = Some((fa, wa, ga));
                break;
            }
            a *= 0.5;
        }
        let Some((fnew, wnew, gnew)) = step else {
            if hist.is_empty() {
                break; // no descent left at this precision
            }
            hist.clear();
            continue;
        };
        let s: Vec<f64> = wnew.iter().zip(&w).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gnew.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = vdot(&s, &y);
        if sy > 1e-300 {
            if hist.len() == o.memory.max(1) {
                hist.pop_front();
            }
            hist.push_back((s, y, 1.0 / sy));
        }
        stalled = if fx - fnew <= 4.0 * f64::EPSILON * fx.abs() {
            stalled + 1
        } else {
            0
        };
        (fx, w, g) = (fnew, wnew, gnew);
        pg = pseudo_gradient(&w, &g, l1, penalised);
        iter += 1;
        if stalled >= 10 {
            converged = max_abs(&pg) <= o.tol;
            break;
        }
    }
    let rep = FitReport {
        iterations: iter,
        evaluations: evals,
        converged,
        max_abs_grad: max_abs(&pg),
        objective: fx,
    };
    (w, rep)
}

/// The minimum-norm subgradient of the L1 objective: for a zero coefficient, 0 if the smooth
/// gradient is within `l1` of zero (it is optimal to stay there), else what is left over.
fn pseudo_gradient(w: &[f64], g: &[f64], l1: f64, penalised: &[bool]) -> Vec<f64> {
    w.iter()
        .zip(g)
        .zip(penalised)
        .map(|((&wi, &gi), &p)| {
            if !p {
                gi
            } else if wi > 0.0 {
                gi + l1
            } else if wi < 0.0 {
                gi - l1
            } else if gi + l1 < 0.0 {
                gi + l1
            } else if gi - l1 > 0.0 {
                gi - l1
            } else {
                0.0
            }
        })
        .collect()
}
