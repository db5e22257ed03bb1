//! Index (scan): exact cosine similarity against a memory-mapped embedding file, in blocks of
//! rows, so memory is set by the block size and never by the index. Each block is one float32
//! GEMM (gemm's AVX-512/AVX2 kernels, rayon threads) with the rows as they are in the file;
//! every candidate within the float32 error bound of the cut is then scored again exactly
//! (float64 dot of the stored floats over float64 norms), and results are ordered by that
//! exact cosine, ties by row order. So the neighbours are those of a float64 brute force, and
//! the order never depends on block sizes or thread counts.

use super::file::EmbeddingFile;

/// Rows per block: 4096 x 768 floats is 12 MB of index; a block of pairs is 64 MB of scores.
const BLOCK: usize = 4096;

/// A match: the row in the index, and its exact cosine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub row: usize,
    pub cosine: f64,
}

/// What to keep per query: the `k` best, or all at or above a cosine.
#[derive(Debug, Clone, Copy)]
pub enum Want {
    Top(usize),
    Above(f64),
}

/// The error bound of the float32 scan on a cosine, with a margin of two: a dot product (and a
/// squared norm) of `dim` terms accumulates at most about `dim` roundings of 2^-24 relative to
/// the product of the norms; plus the float32 rounding of the cut itself.
fn slack(dim: usize) -> f64 {
    2.0 * (dim as f64 + 4.0) * f64::from(f32::EPSILON)
}

/// Norms for the scan (float32, in sixteen lanes so that it vectorises), NaN for a row that
/// cannot have a cosine (zero, NaN, not usable).
fn norms(file: &EmbeddingFile, start: usize, block: &[f32]) -> Vec<f64> {
    block
        .chunks_exact(file.dim)
        .enumerate()
        .map(|(i, r)| {
            let n = f64::from(sum_squares(r).sqrt());
            if file.usable[start + i] && n.is_finite() && n > 0.0 {
                n
            } else {
                f64::NAN
            }
        })
        .collect()
}

fn sum_squares(r: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = r.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x * x;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|x| x * x).sum::<f32>()
}

/// The float64 norm of one row, for the exact cosine.
fn norm64(r: &[f32]) -> f64 {
    r.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt()
}

/// The cosine in float64, within [-1, 1] (rounding can step past 1 for a row and its copy).
fn exact(a: &[f32], b: &[f32], na: f64, nb: f64) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    (dot / (na * nb)).clamp(-1.0, 1.0)
}

/// `dst[i * n + j] = sum_k a[i * k + ..] * b[j * k + ..]`: rows of `a` against rows of `b`,
/// on all threads or (`parallel: false`, when the caller runs blocks in parallel) on this one.
fn gemm_rows(a: &[f32], b: &[f32], dim: usize, dst: &mut [f32], parallel: bool) {
    let (m, n) = (a.len() / dim, b.len() / dim);
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let par = if threads > 1 && parallel {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the strides describe `a` as [m, dim] row-major, `b` transposed as [dim, n] and
    // `dst` as [m, n] row-major, all within the slices' bounds.
    unsafe {
        gemm::gemm(
            m,
            n,
            dim,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            dim as isize,
            b.as_ptr(),
            dim as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

/// Each query's matches in `file`, best first (ties by row). Blocks are scanned in parallel,
/// each keeping its own candidates, which are then merged.
pub fn search(file: &EmbeddingFile, queries: &[Vec<f32>], want: Want) -> Vec<Vec<Hit>> {
    use rayon::prelude::*;
    let dim = file.dim;
    let qnorm: Vec<f64> = queries.iter().map(|q| norm64(q)).collect();
    let flat: Vec<f32> = queries.iter().flatten().copied().collect();
    let slack = slack(dim);
    let nq = queries.len();
    let blocks: Vec<usize> = (0..file.rows).step_by(BLOCK).collect();
    // Per block, per query: candidates (row, float32 cosine) that can still make the cut.
    let found: Vec<Vec<Vec<(usize, f64)>>> = blocks
        .par_iter()
        .map(|&start| {
            let end = (start + BLOCK).min(file.rows);
            let block = file.block(start, end);
            let norm = norms(file, start, &block);
            let mut scores = vec![0f32; (end - start) * nq];
            gemm_rows(&block, &flat, dim, &mut scores, false);
            (0..nq)
                .map(|q| {
                    let mut cand: Vec<(usize, f64)> = norm
                        .iter()
                        .enumerate()
                        .map(|(i, &n)| (start + i, f64::from(scores[i * nq + q]) / (n * qnorm[q])))
                        .filter(|c| c.1.is_finite())
                        .collect();
                    prune(&mut cand, want, slack);
                    cand
                })
                .collect()
        })
        .collect();
    (0..nq)
        .map(|q| {
            let mut cand: Vec<(usize, f64)> =
                found.iter().flat_map(|b| b[q].iter().copied()).collect();
            prune(&mut cand, want, slack);
            let mut hits: Vec<Hit> = cand
                .into_iter()
                .map(|(row, _)| {
                    let r = file.block(row, row + 1);
                    Hit {
                        row,
                        cosine: exact(&r, &queries[q], norm64(&r), qnorm[q]),
                    }
                })
                .collect();
            order(&mut hits);
            match want {
                Want::Top(k) => hits.truncate(k),
                Want::Above(c) => hits.retain(|h| h.cosine >= c),
            }
            hits
        })
        .collect()
}

/// Drops candidates that cannot be among the wanted ones, float32 error allowed for.
fn prune(cand: &mut Vec<(usize, f64)>, want: Want, slack: f64) {
    let cut = match want {
        Want::Above(c) => c - slack,
        Want::Top(k) if cand.len() > k && k > 0 => {
            let mut s: Vec<f64> = cand.iter().map(|c| c.1).collect();
            let (_, kth, _) = s.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            *kth - 2.0 * slack
        }
        Want::Top(0) => f64::INFINITY,
        Want::Top(_) => return,
    };
    cand.retain(|c| c.1 >= cut);
}

/// Best first; equal cosines by row order (then by the other row, for pairs).
fn order(hits: &mut [Hit]) {
    hits.sort_by(|a, b| b.cosine.total_cmp(&a.cosine).then(a.row.cmp(&b.row)));
}

/// A pair of rows at or above the threshold: `a` in the first file, `b` in the second (or
/// the first, with `a < b`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub a: usize,
    pub b: usize,
    pub cosine: f64,
}

/// Every pair at or above `min_cos` between `a` and `b`, or within `a` (each pair once, no
/// row with itself), most similar first (ties by `a`, then `b`). Blocks of `a` rows against
/// blocks of `b` rows; within one file only the blocks on and above the diagonal.
pub fn pairs(a: &EmbeddingFile, b: Option<&EmbeddingFile>, min_cos: f64) -> Vec<Pair> {
    let dim = a.dim;
    let slack = slack(dim);
    let other = b.unwrap_or(a);
    let mut found = Vec::new();
    let mut scores = vec![0f32; BLOCK * BLOCK];
    for ai in (0..a.rows).step_by(BLOCK) {
        let ae = (ai + BLOCK).min(a.rows);
        let ablock = a.block(ai, ae);
        let an = norms(a, ai, &ablock);
        let first = if b.is_none() { ai } else { 0 };
        for bi in (first..other.rows).step_by(BLOCK) {
            let be = (bi + BLOCK).min(other.rows);
            let bblock = other.block(bi, be);
            let bn = norms(other, bi, &bblock);
            let width = be - bi;
            let out = &mut scores[..(ae - ai) * width];
            gemm_rows(&ablock, &bblock, dim, out, true);
            // A candidate has dot / (na * nb) >= cut, i.e. dot * (1 / nb) >= cut * na: one
            // multiply and compare per score (NaN scales, unusable rows, never pass).
            let inv: Vec<f32> = bn.iter().map(|&n| (1.0 / n) as f32).collect();
            for (i, &na) in an.iter().enumerate() {
                if na.is_nan() {
                    continue;
                }
                let row = &out[i * width..(i + 1) * width];
                let cut = ((min_cos - slack) * na) as f32;
                // Within one file, the diagonal block keeps only b > a.
                let from = if b.is_none() && bi == ai { i + 1 } else { 0 };
                for j in from..width {
                    if row[j] * inv[j] >= cut {
                        let (x, y) = (
                            &ablock[i * dim..(i + 1) * dim],
                            &bblock[j * dim..(j + 1) * dim],
                        );
                        let cosine = exact(x, y, norm64(x), norm64(y));
                        if cosine >= min_cos {
                            found.push(Pair {
                                a: ai + i,
                                b: bi + j,
                                cosine,
                            });
                        }
                    }
                }
            }
        }
    }
    found.sort_by(|x, y| {
        y.cosine
            .total_cmp(&x.cosine)
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    found
}
