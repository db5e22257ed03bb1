//! Probe (explain): a concept probe's weights read as reasons — per class, the concepts that
//! weigh most for it and against it — and, with KnoBo's textbook priors
//! (`concept_priors/xray_class2concept2answer.json`), how many weights agree with the
//! textbook's yes/no.

use super::data::Probe;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;

/// Class `k`'s weights over the concepts (a binary probe's one row scores class 1; class 0's
/// weights are its negation).
fn class_weights(probe: &Probe, k: usize) -> Vec<f64> {
    let (m, d) = (&probe.weights, probe.weights.dim);
    if probe.classes.len() == 2 {
        let sign = if k == 1 { 1.0 } else { -1.0 };
        m.coef[..d].iter().map(|w| sign * w).collect()
    } else {
        m.coef[k * d..(k + 1) * d].to_vec()
    }
}

pub fn explain(probe: &Probe, top: usize, prior: Option<&Path>, path: &Path) -> Result<Value> {
    let Some(features) = &probe.concepts else {
        bail!(
            "{} reads embeddings, whose coordinates have no names: probe explain needs a \
             concept probe (probe fit --features concepts --bank FILE)",
            path.display()
        );
    };
    let concepts = &features.bank.concepts;
    let prior = prior.map(read_prior).transpose()?;
    let classes: Vec<Value> = probe
        .classes
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let w = class_weights(probe, k);
            let mut order: Vec<usize> = (0..w.len()).collect();
            order.sort_by(|&a, &b| w[b].total_cmp(&w[a]).then(a.cmp(&b)));
            let pick = |it: &mut dyn Iterator<Item = &usize>| -> Vec<Value> {
                it.filter(|&&j| w[j] != 0.0)
                    .take(top)
                    .map(|&j| json!({ "concept": concepts[j], "weight": w[j] }))
                    .collect()
            };
            let mut entry = json!({
                "class": name,
                "for": pick(&mut order.iter().filter(|&&j| w[j] > 0.0)),
                "against": pick(&mut order.iter().rev().filter(|&&j| w[j] < 0.0)),
                "nonzero": w.iter().filter(|v| **v != 0.0).count(),
            });
            if let Some(p) = &prior {
                entry["prior"] = agreement(p, name, concepts, &w);
            }
            entry
        })
        .collect();
    Ok(json!({
        "probe": path,
        "penalty": probe.penalty,
        "c": probe.weights.c,
        "concepts": concepts.len(),
        "bank_sha256": features.bank.sha256,
        "standardised_against": features.stats_source,
        "classes": classes,
    }))
}

fn read_prior(path: &Path) -> Result<Value> {
    let text = crate::read_text(path)?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("--prior {}: not valid JSON", path.display()))?;
    if !v.is_object() {
        bail!(
            "--prior {}: expected {{\"class\": {{\"concept\": \"yes\"|\"no\"}}}}",
            path.display()
        );
    }
    Ok(v)
}

/// Per class: of the concepts the textbook answers, how many weights agree in sign (yes and
/// positive, no and negative), disagree, or are zero.
fn agreement(prior: &Value, class: &str, concepts: &[String], w: &[f64]) -> Value {
    let Some(answers) = prior.get(class).and_then(Value::as_object) else {
        return json!({ "note": "this class is not in the prior" });
    };
    let (mut agree, mut disagree, mut zero, mut answered) = (0, 0, 0, 0);
    for (j, c) in concepts.iter().enumerate() {
        let yes = match answers.get(c).and_then(Value::as_str) {
            Some(a) if a.eq_ignore_ascii_case("yes") => true,
            Some(a) if a.eq_ignore_ascii_case("no") => false,
            _ => continue,
        };
        answered += 1;
        if w[j] == 0.0 {
            zero += 1;
        } else if (w[j] > 0.0) == yes {
            agree += 1;
        } else {
            disagree += 1;
        }
    }
    json!({ "answered": answered, "agree": agree, "disagree": disagree, "zero": zero })
}

/// The human-readable explanation.
pub fn table(r: &Value) -> String {
    let mut out = format!(
        "{} concepts, {} penalty, C = {}; weights act on z-scores against {}\n",
        r["concepts"],
        r["penalty"].as_str().unwrap_or_default(),
        r["c"],
        r["standardised_against"].as_str().unwrap_or_default()
    );
    for c in r["classes"].as_array().into_iter().flatten() {
        out += &format!(
            "\n{} ({} nonzero weights)\n",
            c["class"].as_str().unwrap_or_default(),
            c["nonzero"]
        );
        for (side, sign) in [("for", "+"), ("against", "-")] {
            for e in c[side].as_array().into_iter().flatten() {
                out += &format!(
                    "  {sign} {:>8.4}  {}\n",
                    e["weight"].as_f64().unwrap_or(f64::NAN).abs(),
                    e["concept"].as_str().unwrap_or_default()
                );
            }
        }
        if let Some(p) = c.get("prior") {
            match p.get("note") {
                Some(n) => out += &format!("  prior: {}\n", n.as_str().unwrap_or_default()),
                None => {
                    out += &format!(
                        "  prior: of {} concepts the textbook answers, {} weights agree in sign, {} disagree, {} are zero\n",
                        p["answered"], p["agree"], p["disagree"], p["zero"]
                    )
                }
            }
        }
    }
    out
}
