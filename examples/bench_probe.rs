//! Probe fit timing on synthetic CLIP-like embeddings (not a test):
//!   cargo run --release --example bench_probe -- [n] [dim] [classes] [threads] [tol]
use std::time::Instant;
use whyxray::probe::logreg::{fit_with, FitOptions};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: f64| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (n, dim, k) = (
        arg(1, 20_000.0) as usize,
        arg(2, 768.0) as usize,
        arg(3, 5.0) as usize,
    );
    let opts = FitOptions {
        threads: arg(4, 0.0) as usize,
        tol: arg(5, 1e-12),
        ..Default::default()
    };
    let mut s = 42u64;
    let mut rnd = || {
        // xorshift-ish uniform(-1, 1) pairs -> rough gaussian via sum of 4
        let mut t = 0.0;
        for _ in 0..4 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            t += (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        }
        t
    };
    let means: Vec<f64> = (0..k * dim).map(|_| rnd()).collect();
    let common: Vec<f64> = (0..dim).map(|_| rnd() * 3.0).collect();
    let (mut x, mut y) = (Vec::with_capacity(n * dim), Vec::with_capacity(n));
    for i in 0..n {
        let l = i % k;
        let row: Vec<f64> = (0..dim)
            .map(|j| common[j] + means[l * dim + j] + 14.0 * rnd())
            .collect();
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        x.extend(row.iter().map(|v| (v / norm) as f32));
        y.push(l);
    }
    for c in [1.0, 100.0] {
        let t = Instant::now();
        let (m, rep) = fit_with(&x, dim, &y, k, c, &opts, None);
        let secs = t.elapsed().as_secs_f64();
        let acc = (0..n)
            .filter(|&i| m.predict(&x[i * dim..(i + 1) * dim]) == y[i])
            .count();
        println!(
            "n={n} dim={dim} classes={k} C={c} threads={}: {secs:.2}s, {} iters, {} evals \
             ({:.1} ms/eval), max|grad| {:.1e}, converged {}, train acc {:.3}",
            opts.threads,
            rep.iterations,
            rep.evaluations,
            secs * 1e3 / rep.evaluations as f64,
            rep.max_abs_grad,
            rep.converged,
            acc as f64 / n as f64
        );
    }
}
