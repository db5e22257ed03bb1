//! Probe (training): the C of a logistic probe, given or chosen by stratified k-fold
//! cross-validation (scikit-learn's LogisticRegressionCV), and the fit on all of the data.

use super::logreg::{default_cs, fit_cv, fit_with, Feature, FitOptions, Model};
use anyhow::{bail, Result};
use serde_json::{json, Value};

/// How C is found.
pub struct Search {
    /// A fixed C, or cross-validate over `cs` (sklearn's grid when empty) with `folds`.
    pub c: Option<f64>,
    pub cs: Vec<f64>,
    pub folds: usize,
    pub opts: FitOptions,
}

pub struct Trained {
    pub model: Model,
    /// The cross-validation record (null for a fixed C).
    pub cv: Value,
    /// Every fit reached the tolerance.
    pub converged: bool,
    pub training_accuracy: f64,
}

/// `x`: row-major `[y.len(), dim]` features; `y`: class indices into `classes`.
pub fn train<T: Feature>(
    x: &[T],
    dim: usize,
    y: &[usize],
    classes: &[String],
    s: &Search,
) -> Result<Trained> {
    let k = classes.len();
    let (model, cv, converged) = match s.c {
        Some(c) => {
            let (model, rep) = fit_with(x, dim, y, k, c, &s.opts, None);
            (model, Value::Null, rep.converged)
        }
        None => {
            if let Some((i, name)) = classes
                .iter()
                .enumerate()
                .find(|(i, _)| y.iter().filter(|&&l| l == *i).count() < s.folds)
            {
                let _ = i;
                bail!(
                    "class {name:?} has fewer than {} training images: lower --folds or give --c",
                    s.folds
                );
            }
            let cs = if s.cs.is_empty() {
                default_cs()
            } else {
                s.cs.clone()
            };
            let (model, cv) = fit_cv(x, dim, y, k, &cs, s.folds, &s.opts);
            let means: Vec<f64> = cv
                .scores
                .iter()
                .map(|f| f.iter().sum::<f64>() / f.len() as f64)
                .collect();
            let record = json!({ "folds": s.folds, "scoring": "accuracy", "cs": cv.cs,
                "mean_accuracy": means, "fold_accuracy": cv.scores, "best_c": cv.best_c });
            (model, record, cv.converged)
        }
    };
    let n = y.len();
    let hits = (0..n)
        .filter(|&i| model.predict(&x[i * dim..(i + 1) * dim]) == y[i])
        .count();
    Ok(Trained {
        model,
        cv,
        converged,
        training_accuracy: hits as f64 / n as f64,
    })
}
