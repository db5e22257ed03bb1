//! Concepts (beside prompts and score): a bank of radiological findings in words — KnoBo's
//! `xray_*.txt` load as they are — turned into per-image cosines, and the statistics that put
//! those cosines on one scale. Raw CLIP cosines sit in a narrow band whose place differs by
//! concept (a text's own bias), so ranking the concepts of one image by raw cosine mostly
//! ranks the texts; a z-score against a reference set of images ranks what is unusual in
//! *this* image.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The concepts of a bank file, in file order, each once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bank {
    pub concepts: Vec<String>,
    /// SHA-256 of the concepts joined by newlines (so CRLF, comments, blank lines and
    /// repeats do not change it).
    pub sha256: String,
}

impl Bank {
    /// One concept per line; blank lines and `#` comments skipped; a BOM and CRLF line ends
    /// dropped. Returns the repeated concepts too (kept once), for a warning.
    pub fn read(path: &Path) -> Result<(Self, Vec<String>)> {
        let text = crate::read_text(path).with_context(|| format!("--bank {}", path.display()))?;
        let mut concepts: Vec<String> = Vec::new();
        let mut repeated = Vec::new();
        for line in text.lines() {
            let c = line.trim();
            if c.is_empty() || c.starts_with('#') {
                continue;
            }
            if concepts.iter().any(|k| k == c) {
                repeated.push(c.to_string());
            } else {
                concepts.push(c.to_string());
            }
        }
        if concepts.is_empty() {
            bail!(
                "--bank {}: no concepts (one per line; blank lines and # comments are skipped)",
                path.display()
            );
        }
        Ok((Self::new(concepts), repeated))
    }

    pub fn new(concepts: Vec<String>) -> Self {
        let digest = Sha256::digest(concepts.join("\n").as_bytes());
        let sha256 = digest.iter().map(|b| format!("{b:02x}")).collect();
        Self { concepts, sha256 }
    }
}

/// Each concept's prompts: the concept itself, or each template applied to it.
pub fn prompts(bank: &Bank, templates: &[String]) -> Vec<crate::prompts::ClassPrompts> {
    bank.concepts
        .iter()
        .map(|k| crate::prompts::ClassPrompts {
            name: k.clone(),
            pos: if templates.is_empty() {
                vec![k.clone()]
            } else {
                templates.iter().map(|t| t.replace("{}", k)).collect()
            },
            neg: Vec::new(),
        })
        .collect()
}

/// Per-concept mean and standard deviation (population, numpy's default `ddof=0`) of the
/// cosines over a reference set of images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub format: String,
    pub bank_sha256: String,
    pub concepts: Vec<String>,
    pub n: usize,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// The model whose cosines these are (its meta record's `model`).
    pub model: serde_json::Value,
}

pub const STATS_FORMAT: &str = "whyxray-concept-stats/1";

impl Stats {
    pub fn read(path: &Path) -> Result<Self> {
        let text = crate::read_text(path)?;
        let s: Stats = serde_json::from_str(&text).with_context(|| {
            format!("{}: not a whyxray concept statistics file", path.display())
        })?;
        if s.format != STATS_FORMAT
            || s.mean.len() != s.concepts.len()
            || s.std.len() != s.concepts.len()
        {
            bail!("{}: not a {STATS_FORMAT} file", path.display());
        }
        Ok(s)
    }

    /// Refuses statistics of another bank (or model), which would standardise the wrong columns.
    pub fn check(&self, bank: &Bank, model: &serde_json::Value, path: &Path) -> Result<()> {
        if self.bank_sha256 != bank.sha256 {
            bail!(
                "{}: these statistics are of another concept bank (sha256 {}, this one {})",
                path.display(),
                self.bank_sha256,
                bank.sha256
            );
        }
        if !crate::probe::data::same_model(&self.model, model) {
            bail!(
                "{}: these statistics are of {}, the cosines here of {}",
                path.display(),
                crate::probe::data::describe(&self.model),
                crate::probe::data::describe(model)
            );
        }
        Ok(())
    }

    /// `(cos - mean) / std`; a concept that never varied in the reference set gets 0.
    pub fn z(&self, cosines: &[f32]) -> Vec<f64> {
        z_scores(cosines, &self.mean, &self.std)
    }
}

/// `(cos - mean) / std` per concept; a concept that never varied (std 0) gets 0. Shared by
/// `concepts --top` and concept probes, which must standardise alike.
pub fn z_scores(cosines: &[f32], mean: &[f64], std: &[f64]) -> Vec<f64> {
    cosines
        .iter()
        .zip(mean.iter().zip(std))
        .map(|(&c, (m, s))| {
            if *s > 0.0 {
                (f64::from(c) - m) / s
            } else {
                0.0
            }
        })
        .collect()
}

/// Streaming mean and variance per concept (Welford), for `--write-stats`.
#[derive(Debug, Clone)]
pub struct Accumulator {
    n: usize,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl Accumulator {
    pub fn new(concepts: usize) -> Self {
        Self {
            n: 0,
            mean: vec![0.0; concepts],
            m2: vec![0.0; concepts],
        }
    }

    pub fn add(&mut self, cosines: &[f32]) {
        self.n += 1;
        let n = self.n as f64;
        for ((m, m2), &c) in self.mean.iter_mut().zip(&mut self.m2).zip(cosines) {
            let x = f64::from(c);
            let d = x - *m;
            *m += d / n;
            *m2 += d * (x - *m);
        }
    }

    pub fn finish(self, bank: &Bank, model: serde_json::Value) -> Result<Stats> {
        if self.n == 0 {
            bail!("no image was scored: no statistics to write");
        }
        let n = self.n as f64;
        Ok(Stats {
            format: STATS_FORMAT.to_string(),
            bank_sha256: bank.sha256.clone(),
            concepts: bank.concepts.clone(),
            n: self.n,
            mean: self.mean,
            std: self.m2.iter().map(|v| (v / n).sqrt()).collect(),
            model,
        })
    }
}

/// The `k` concepts ranked first by `key` (higher first; ties by bank order).
pub fn top(key: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..key.len()).collect();
    order.sort_by(|&a, &b| key[b].total_cmp(&key[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banks_skip_blanks_comments_and_repeats_and_hash_the_concepts() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a.txt");
        std::fs::write(&a, "\u{feff}# findings\r\nIs there a pleural effusion?\r\n\r\ncardiomegaly\r\n  cardiomegaly  \n").unwrap();
        let (bank, repeated) = Bank::read(&a).unwrap();
        assert_eq!(
            bank.concepts,
            ["Is there a pleural effusion?", "cardiomegaly"]
        );
        assert_eq!(repeated, ["cardiomegaly"]);
        let b = tmp.path().join("b.txt");
        std::fs::write(&b, "Is there a pleural effusion?\ncardiomegaly\n").unwrap();
        assert_eq!(Bank::read(&b).unwrap().0.sha256, bank.sha256);
        std::fs::write(&b, "# nothing\n\n").unwrap();
        assert!(Bank::read(&b).is_err());
    }

    #[test]
    fn welford_equals_two_pass_and_top_breaks_ties_by_order() {
        let rows = [[0.1f32, 0.5], [0.3, 0.5], [0.2, 0.5]];
        let mut acc = Accumulator::new(2);
        rows.iter().for_each(|r| acc.add(r));
        let s = acc
            .finish(
                &Bank::new(vec!["a".into(), "b".into()]),
                serde_json::Value::Null,
            )
            .unwrap();
        let mean = (0.1f32 as f64 + 0.3f32 as f64 + 0.2f32 as f64) / 3.0;
        assert!((s.mean[0] - mean).abs() < 1e-15);
        assert_eq!(s.std[1], 0.0);
        assert_eq!(
            s.z(&[0.5, 0.7])[1],
            0.0,
            "a constant concept standardises to 0"
        );
        assert_eq!(top(&[0.2, 0.9, 0.9, 0.1], 3), [1, 2, 0]);
    }
}
