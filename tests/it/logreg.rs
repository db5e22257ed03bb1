//! Compares `probe::logreg` against scikit-learn 1.9.1 results in `tests/fixtures/probe/probe_reference.json`
//! (regenerate by hand: `python tests/fixtures/probe/make_probe_reference.py`, scikit-learn 1.9.1).

use serde::Deserialize;
use whyxray::probe::logreg::{
    cross_validate, default_cs, fit, fit_cv, fit_with, stratified_folds, FitOptions, Model, Penalty,
};

#[derive(Deserialize)]
struct Reference {
    sklearn_version: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    classes: usize,
    dim: usize,
    x_train: Vec<f64>,
    y_train: Vec<usize>,
    x_test: Vec<f64>,
    y_test: Vec<usize>,
    c: f64,
    coef: Vec<f64>,
    intercept: Vec<f64>,
    sklearn_max_abs_grad: f64,
    proba_test: Vec<f64>,
    pred_test: Vec<usize>,
    folds: Vec<usize>,
    cs: Vec<f64>,
    cv_scores: Vec<Vec<f64>>,
    cv_best_c: f64,
    cv_coef: Vec<f64>,
    cv_intercept: Vec<f64>,
    cv_proba_test: Vec<f64>,
}

fn load() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/probe/probe_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("read fixture")).expect("parse")
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (p, q)| m.max((p - q).abs()))
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Returns (max |coef diff| / max |coef|, max |intercept diff|, max |proba diff|, agreement).
fn compare(case: &Case, m: &Model, coef: &[f64], intercept: &[f64], proba: &[f64]) -> [f64; 4] {
    let rel = max_diff(&m.coef, coef) / max_abs(coef);
    let di = max_diff(&m.intercept, intercept);
    let (mut dp, mut agree) = (0.0f64, 0usize);
    for (i, row) in case.x_test.chunks_exact(case.dim).enumerate() {
        let p = m.predict_proba(row);
        dp = dp.max(max_diff(
            &p,
            &proba[i * case.classes..(i + 1) * case.classes],
        ));
        agree += usize::from(m.predict(row) == case.pred_test[i]);
    }
    [rel, di, dp, agree as f64 / case.y_test.len() as f64]
}

#[test]
fn matches_logistic_regression() {
    let r = load();
    for case in &r.cases {
        let opts = FitOptions::default();
        let (m, rep) = fit_with(
            &case.x_train,
            case.dim,
            &case.y_train,
            case.classes,
            case.c,
            &opts,
            None,
        );
        assert!(rep.converged, "{}: {rep:?}", case.name);
        let [rel, di, dp, agree] = compare(case, &m, &case.coef, &case.intercept, &case.proba_test);
        println!(
            "[{} / sklearn {}] C=1 fit: {} iters, max|grad| {:.1e} (sklearn's {:.1e}); \
             coef max rel diff {rel:.2e}, intercept max diff {di:.2e}, \
             proba max diff {dp:.2e}, prediction agreement {:.1}%",
            case.name,
            r.sklearn_version,
            rep.iterations,
            rep.max_abs_grad,
            case.sklearn_max_abs_grad,
            agree * 100.0
        );
        assert!(
            // Measured 4.4e-8 / 3.5e-8 (multiclass), 3.2e-8 / 3.0e-9 (binary), 2026-12.
            rel < 1e-6 && di < 1e-6,
            "{}: coef {rel:e} intercept {di:e}",
            case.name
        );
        assert!(dp < 1e-6, "{}: proba {dp:e}", case.name);
        assert!(agree >= 0.99, "{}: agreement {agree}", case.name);
        assert_eq!(
            m.coef.len(),
            case.coef.len(),
            "binary must have a single row"
        );
        // f32 input path lands on (nearly) the same model
        let x32: Vec<f32> = case.x_train.iter().map(|&v| v as f32).collect();
        let m32 = fit(&x32, case.dim, &case.y_train, case.classes, case.c);
        assert!(
            max_diff(&m32.coef, &m.coef) / max_abs(&m.coef) < 1e-4,
            "{}",
            case.name
        );
    }
}

#[test]
fn matches_stratified_kfold() {
    for case in &load().cases {
        assert_eq!(
            stratified_folds(&case.y_train, case.classes, 5),
            case.folds,
            "{}",
            case.name
        );
    }
}

#[test]
fn matches_logistic_regression_cv() {
    let r = load();
    for case in &r.cases {
        let cs = default_cs();
        assert!(
            max_diff(&cs, &case.cs) / 1e4 < 1e-15,
            "Cs grid differs: {cs:?}"
        );
        assert_eq!(cs, case.cs, "Cs grid not bit-identical");
        let opts = FitOptions::default();
        let cv = cross_validate(
            &case.x_train,
            case.dim,
            &case.y_train,
            case.classes,
            &cs,
            5,
            &opts,
        );
        assert!(cv.converged, "{}: a fold fit did not reach tol", case.name);
        assert_eq!(cv.folds, case.folds);
        assert_eq!(
            cv.scores, case.cv_scores,
            "{}: per-fold accuracies",
            case.name
        );
        assert_eq!(cv.best_c, case.cv_best_c, "{}: best C", case.name);

        let (m, cv2) = fit_cv(
            &case.x_train,
            case.dim,
            &case.y_train,
            case.classes,
            &cs,
            5,
            &opts,
        );
        assert!(cv2.converged && cv2.best_index == cv.best_index);
        let [rel, di, dp, _] = compare(
            case,
            &m,
            &case.cv_coef,
            &case.cv_intercept,
            &case.cv_proba_test,
        );
        println!(
            "[{}] CV: best C {} (index {}), scores identical; refit coef max rel diff {rel:.2e}, \
             intercept max diff {di:.2e}, proba max diff {dp:.2e}",
            case.name, cv.best_c, cv.best_index
        );
        assert!(rel < 1e-6 && di < 1e-6 && dp < 1e-6, "{}", case.name);
    }
}

#[derive(Deserialize)]
struct L1Reference {
    sklearn_version: String,
    cases: Vec<L1Case>,
}

#[derive(Deserialize)]
struct L1Case {
    name: String,
    classes: usize,
    dim: usize,
    c: f64,
    x_train: Vec<f64>,
    y_train: Vec<usize>,
    x_test: Vec<f64>,
    coef: Vec<f64>,
    objective: f64,
    pred_test: Vec<usize>,
    folds: Vec<usize>,
    cs: Vec<f64>,
    cv_scores: Vec<Vec<f64>>,
    cv_best_c: f64,
    cv_coef: Vec<f64>,
    cv_objective: f64,
    cv_pred_test: Vec<usize>,
}

/// sklearn's L1 objective, divided by C * n: (1/n) sum loss + ||W||_1 / (C n).
fn l1_objective(case: &L1Case, m: &Model) -> f64 {
    let (d, n) = (case.dim, case.y_train.len());
    let loss: f64 = (0..n)
        .map(|i| {
            let z = m.decision(&case.x_train[i * d..(i + 1) * d]);
            let y = case.y_train[i];
            if case.classes == 2 {
                let t = if y == 1 { 1.0 } else { 0.0 };
                z[0].max(0.0) + (-z[0].abs()).exp().ln_1p() - t * z[0]
            } else {
                let mx = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                mx + z.iter().map(|v| (v - mx).exp()).sum::<f64>().ln() - z[y]
            }
        })
        .sum();
    loss / n as f64 + m.coef.iter().map(|v| v.abs()).sum::<f64>() / (m.c * n as f64)
}

fn agreement(case: &L1Case, m: &Model, want: &[usize]) -> f64 {
    let d = case.dim;
    let hits = want
        .iter()
        .enumerate()
        .filter(|(i, &p)| m.predict(&case.x_test[i * d..(i + 1) * d]) == p)
        .count();
    hits as f64 / want.len() as f64
}

#[test]
fn l1_matches_saga() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/probe/l1_reference.json"
    );
    let r: L1Reference = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(r.sklearn_version, "1.9.1");
    let opts = FitOptions {
        penalty: Penalty::L1,
        tol: 1e-10,
        ..Default::default()
    };
    for case in &r.cases {
        let (m, rep) = fit_with(
            &case.x_train,
            case.dim,
            &case.y_train,
            case.classes,
            case.c,
            &opts,
            None,
        );
        assert!(rep.converged, "{}: {rep:?}", case.name);
        // Our optimum is at least as low as saga's, and within 1e-6 relative of it.
        let (ours, theirs) = (l1_objective(case, &m), case.objective);
        let rel = (ours - theirs) / theirs;
        println!(
            "{} L1 C={}: objective {ours:.12} vs saga {theirs:.12} (rel {rel:.2e}), nonzero {}",
            case.name,
            case.c,
            m.coef.iter().filter(|v| **v != 0.0).count()
        );
        assert!(rel.abs() <= 1e-6, "{}: {ours} vs {theirs}", case.name);
        let zeros: Vec<bool> = m.coef.iter().map(|v| *v == 0.0).collect();
        let want: Vec<bool> = case.coef.iter().map(|v| *v == 0.0).collect();
        assert_eq!(zeros, want, "{}: the same zero pattern", case.name);
        assert!(
            agreement(case, &m, &case.pred_test) >= 0.99,
            "{}",
            case.name
        );

        // The C search: the same folds, fold accuracies and choice, and the refit.
        assert_eq!(stratified_folds(&case.y_train, case.classes, 5), case.folds);
        let (cvm, cv) = fit_cv(
            &case.x_train,
            case.dim,
            &case.y_train,
            case.classes,
            &case.cs,
            5,
            &opts,
        );
        for (ci, s) in cv.scores.iter().enumerate() {
            for (f, v) in s.iter().enumerate() {
                assert!(
                    (v - case.cv_scores[ci][f]).abs() < 1e-12,
                    "{} C={} fold {f}: {v} vs {}",
                    case.name,
                    case.cs[ci],
                    case.cv_scores[ci][f]
                );
            }
        }
        assert_eq!(cv.best_c, case.cv_best_c, "{}", case.name);
        let rel = (l1_objective(case, &cvm) - case.cv_objective) / case.cv_objective;
        assert!(rel.abs() <= 1e-6, "{} refit: rel {rel:e}", case.name);
        let zeros: Vec<bool> = cvm.coef.iter().map(|v| *v == 0.0).collect();
        let want: Vec<bool> = case.cv_coef.iter().map(|v| *v == 0.0).collect();
        assert_eq!(zeros, want, "{} refit: the same zero pattern", case.name);
        assert!(
            agreement(case, &cvm, &case.cv_pred_test) >= 0.99,
            "{}",
            case.name
        );
    }
}
