//! Checks src/eval/metrics.rs against tests/fixtures/eval/metrics_reference.json (scikit-learn / NumPy
//! values from make_metrics_reference.py), to 1e-9 throughout.

use serde::Deserialize;
use whyxray::eval::metrics::*;

const TOL: f64 = 1e-9;

#[derive(Deserialize)]
struct Reference {
    rng: RngRef,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct RngRef {
    seed: u64,
    first_u64: Vec<u64>,
    below: Vec<BelowRef>,
}

#[derive(Deserialize)]
struct BelowRef {
    seed: u64,
    n: usize,
    draws: Vec<usize>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    n_classes: usize,
    seed: u64,
    reps: usize,
    truth: Vec<usize>,
    pred: Vec<usize>,
    scores: Vec<Vec<f64>>,
    expected: Expected,
}

#[derive(Deserialize)]
struct Expected {
    accuracy: f64,
    balanced_accuracy: f64,
    confusion: Vec<Vec<u64>>,
    auroc: Vec<Option<f64>>,
    macro_auroc: Option<f64>,
    sklearn_ovr_macro: Option<f64>,
    bootstrap: Boot,
}

#[derive(Deserialize)]
struct Boot {
    accuracy: Option<IntervalRef>,
    balanced_accuracy: Option<IntervalRef>,
    macro_auroc: Option<IntervalRef>,
    auroc: Vec<Option<IntervalRef>>,
}

#[derive(Deserialize)]
struct IntervalRef {
    low: f64,
    high: f64,
    reps_used: usize,
}

fn load() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/eval/metrics_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(what: &str, got: Option<f64>, want: Option<f64>) {
    match (got, want) {
        (Some(g), Some(w)) => assert!((g - w).abs() <= TOL, "{what}: {g} vs {w}"),
        (None, None) => {}
        _ => panic!("{what}: {got:?} vs {want:?}"),
    }
}

fn same_interval(what: &str, got: Option<Interval>, want: &Option<IntervalRef>) {
    match (got, want) {
        (Some(g), Some(w)) => {
            close(&format!("{what}.low"), Some(g.low), Some(w.low));
            close(&format!("{what}.high"), Some(g.high), Some(w.high));
            assert_eq!(g.reps_used, w.reps_used, "{what}.reps_used");
        }
        (None, None) => {}
        _ => panic!("{what}: {got:?} vs defined={}", want.is_some()),
    }
}

#[test]
fn rng_matches_python_port() {
    let r = load().rng;
    let mut rng = Rng::new(r.seed);
    let first: Vec<u64> = (0..r.first_u64.len()).map(|_| rng.next_u64()).collect();
    assert_eq!(first, r.first_u64);
    for b in &r.below {
        let mut rng = Rng::new(b.seed);
        let got: Vec<usize> = b.draws.iter().map(|_| rng.below(b.n)).collect();
        assert_eq!(got, b.draws, "below({})", b.n);
    }
}

/// Per-class one-vs-rest AUROCs of the samples `idx`.
fn per_class(c: &Case, idx: &[usize]) -> Vec<Option<f64>> {
    (0..c.n_classes)
        .map(|k| {
            let pos: Vec<bool> = idx.iter().map(|&i| c.truth[i] == k).collect();
            let s: Vec<f64> = idx.iter().map(|&i| c.scores[i][k]).collect();
            auroc(&pos, &s)
        })
        .collect()
}

#[test]
fn cases_match_sklearn() {
    for c in load().cases {
        let e = &c.expected;
        let n = c.truth.len();
        let all: Vec<usize> = (0..n).collect();
        let name = c.name.as_str();

        close(name, Some(accuracy(&c.truth, &c.pred)), Some(e.accuracy));
        let bacc = balanced_accuracy(&c.truth, &c.pred);
        close(name, Some(bacc), Some(e.balanced_accuracy));
        assert_eq!(
            confusion(&c.truth, &c.pred, c.n_classes),
            e.confusion,
            "{name}"
        );
        let aucs = per_class(&c, &all);
        for (k, (g, w)) in aucs.iter().zip(&e.auroc).enumerate() {
            close(&format!("{name} auroc[{k}]"), *g, *w);
        }
        close(name, macro_auroc(&aucs), e.macro_auroc);
        if e.sklearn_ovr_macro.is_some() {
            close(name, macro_auroc(&aucs), e.sklearn_ovr_macro);
        }

        let pick =
            |idx: &[usize], v: &[usize]| -> Vec<usize> { idx.iter().map(|&i| v[i]).collect() };
        let b = &e.bootstrap;
        let boot = |stat: &dyn Fn(&[usize]) -> Option<f64>| bootstrap(n, c.reps, c.seed, stat);
        let acc = boot(&|idx| Some(accuracy(&pick(idx, &c.truth), &pick(idx, &c.pred))));
        same_interval(&format!("{name} boot accuracy"), acc, &b.accuracy);
        let bal = boot(&|idx| Some(balanced_accuracy(&pick(idx, &c.truth), &pick(idx, &c.pred))));
        same_interval(&format!("{name} boot balanced"), bal, &b.balanced_accuracy);
        let mac = boot(&|idx| macro_auroc(&per_class(&c, idx)));
        same_interval(&format!("{name} boot macro"), mac, &b.macro_auroc);
        for (k, want) in b.auroc.iter().enumerate() {
            let got = boot(&|idx| per_class(&c, idx)[k]);
            same_interval(&format!("{name} boot auroc[{k}]"), got, want);
        }
    }
}
