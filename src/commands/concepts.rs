//! `whyxray concepts`: a concept bank -> concept text embeddings once (through the text
//! cache); images streamed in batches -> the cosine with every concept, the top concepts per
//! image, and optionally the statistics of a reference set; provenance beside them.

use super::{embed_texts_cached, for_each_batch, resume_output};
use crate::cli::{ConceptsConfig, ConceptsFormat};
use crate::concepts::{top, Accumulator, Stats};
use crate::model::{Clip, Plan};
use crate::output::classify::ClassifyWriter;
use crate::output::concepts::{ConceptRow, ConceptWriter, Top};
use crate::output::embed::EmbedWriter;
use crate::output::meta::{self, model_record, Meta};
use crate::output::npy::NpyWriter;
use crate::output::resume::Layout;
use crate::output::Sink;
use crate::printer::Printer;
use crate::prompts::{token_warnings, ClassPrompts};
use crate::score::{class_embedding, cosine};
use crate::Outcome;
use anyhow::{Context, Result};
use serde_json::json;

pub fn run(c: &ConceptsConfig, plan: &Plan, printer: &Printer) -> Result<Outcome> {
    if !c.repeated.is_empty() {
        printer.warn(format_args!(
            "the bank names {} concept(s) more than once, kept once: {:?}",
            c.repeated.len(),
            c.repeated
        ));
    }
    let prompts = crate::concepts::prompts(&c.bank, &c.templates);
    let tokenizer = crate::text::Tokenizer::bundled(plan.config.model.text.context_length)?;
    for w in token_warnings(&prompts, &tokenizer) {
        printer.warn(w.replace("labels", "concepts"));
    }
    let model_json = model_record(plan, None)?;
    if let Some((path, stats)) = &c.reference_stats {
        stats.check(&c.bank, &model_json, path)?;
    }
    if c.top.is_some() && c.reference_stats.is_none() {
        printer.note(
            "--top ranks by raw cosine: without --reference-stats that mostly ranks the concept \
             texts themselves (see the README)",
        );
    }
    let record =
        |model: Option<&Clip>| meta::record(plan, model, "concepts", &c.run, provenance(c));
    let layout = match c.format {
        ConceptsFormat::Jsonl => Layout::ConceptsJsonl {
            labels: &c.bank.concepts,
        },
        ConceptsFormat::Tsv => Layout::Delimited {
            delimiter: b'\t',
            labels: &c.bank.concepts,
        },
        _ => Layout::Delimited {
            delimiter: b',',
            labels: &c.bank.concepts,
        },
    };
    let (resumed, earlier) = resume_output(
        c.output.as_deref(),
        c.run.resume,
        layout,
        c.meta.as_deref(),
        || record(None),
        printer,
    )?;
    let mut loaded: Option<Clip> = None;
    let embeddings = concept_embeddings(plan, &mut loaded, &prompts)?;
    let model = match loaded {
        Some(m) => m,
        None => plan.load()?,
    };
    resumed.apply()?;
    let mut writer = writer(c, resumed.has_header, printer)?;
    let meta = match &c.meta {
        Some(path) => Some(Meta::start(path, record(Some(&model))?, earlier)?),
        None => None,
    };
    let mut acc = c
        .write_stats
        .as_ref()
        .map(|_| Accumulator::new(c.bank.concepts.len()));
    let outcome = for_each_batch(&model, &c.run, resumed.done, printer, |batch| {
        let rows = batch
            .into_iter()
            .map(|(input, emb)| ConceptRow {
                file: input.path,
                result: emb.map(|img| {
                    let cos: Vec<f32> = embeddings.iter().map(|e| cosine(&img, e)).collect();
                    if let Some(a) = acc.as_mut() {
                        a.add(&cos);
                    }
                    let ranked = ranked(c, &cos);
                    (cos, ranked)
                }),
            })
            .collect();
        writer.write(rows)
    })?;
    if let (Some(path), Some(acc)) = (&c.write_stats, acc) {
        if outcome.interrupted {
            printer
                .warn("interrupted: no statistics written (they would cover part of the images)");
        } else {
            let stats = acc.finish(&c.bank, model_json)?;
            let text = serde_json::to_string_pretty(&stats)? + "\n";
            std::fs::write(path, text)
                .with_context(|| format!("cannot write --write-stats {}", path.display()))?;
            printer.note(format_args!(
                "wrote the statistics of {} images to {}",
                stats.n,
                path.display()
            ));
        }
    }
    if let Some(meta) = meta {
        meta.finish(&outcome)?;
    }
    Ok(outcome)
}

/// One embedding per concept (the normalised mean of its prompts'), every distinct prompt
/// through the text cache once.
pub fn concept_embeddings(
    plan: &Plan,
    model: &mut Option<Clip>,
    prompts: &[ClassPrompts],
) -> Result<Vec<Vec<f32>>> {
    let mut texts: Vec<String> = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for p in prompts.iter().flat_map(|c| &c.pos) {
        if !seen.contains_key(p) {
            seen.insert(p.clone(), texts.len());
            texts.push(p.clone());
        }
    }
    let embedded = embed_texts_cached(plan, model, &texts)?;
    Ok(prompts
        .iter()
        .map(|c| {
            let rows: Vec<Vec<f32>> = c.pos.iter().map(|p| embedded[seen[p]].clone()).collect();
            class_embedding(&rows)
        })
        .collect())
}

/// The `--top` concepts of one image: by z-score against the reference statistics, else by
/// raw cosine. A table shows five when `--top` is not given.
fn ranked(c: &ConceptsConfig, cos: &[f32]) -> Vec<Top> {
    let k = match (c.top, c.format) {
        (Some(k), _) => k,
        (None, ConceptsFormat::Table) => 5,
        (None, _) => return Vec::new(),
    };
    let z = c.reference_stats.as_ref().map(|(_, s)| s.z(cos));
    let key: Vec<f64> = match &z {
        Some(z) => z.clone(),
        None => cos.iter().map(|&v| f64::from(v)).collect(),
    };
    top(&key, k)
        .into_iter()
        .map(|i| Top {
            concept: i,
            cosine: cos[i],
            z: z.as_ref().map(|z| z[i]),
        })
        .collect()
}

fn writer(c: &ConceptsConfig, started: bool, printer: &Printer) -> Result<ConceptWriter> {
    let sink = || Sink::open(c.output.as_deref(), c.run.resume, printer);
    let concepts = c.bank.concepts.clone();
    Ok(match c.format {
        ConceptsFormat::Csv | ConceptsFormat::Tsv => {
            let f = if c.format == ConceptsFormat::Csv {
                crate::cli::ClassifyFormat::Csv
            } else {
                crate::cli::ClassifyFormat::Tsv
            };
            let mut w = ClassifyWriter::new(f, concepts, sink()?, started);
            w.write(&[])?; // the header, even for a run with nothing to score
            ConceptWriter::Delimited(w)
        }
        ConceptsFormat::Jsonl => ConceptWriter::Jsonl {
            sink: sink()?,
            concepts,
        },
        ConceptsFormat::Table => ConceptWriter::Table {
            sink: sink()?,
            concepts,
            started: false,
        },
        ConceptsFormat::Npy => {
            let path = c.output.as_deref().context("--format npy needs -o FILE")?;
            let n = concepts.len();
            ConceptWriter::Npy(EmbedWriter::Npy {
                writer: NpyWriter::create(path, n)?,
                dim: n,
            })
        }
    })
}

fn provenance(c: &ConceptsConfig) -> serde_json::Value {
    json!({ "concepts": {
        "bank": {
            "path": c.bank_path,
            "sha256": c.bank.sha256,
            "count": c.bank.concepts.len(),
            "concepts": c.bank.concepts,
        },
        "templates": c.templates,
        "embedding": "cosine of the L2-normalised image embedding and the concept's (prompts: normalised mean)",
        "reference_stats": c.reference_stats.as_ref().map(|(p, s): &(std::path::PathBuf, Stats)| json!({"path": p, "n": s.n})),
        "top": c.top,
        "format": format!("{:?}", c.format).to_lowercase(),
        "output": c.output,
    }})
}
