//! Commands: each subcommand wires inputs -> pipeline (decode, preprocess) -> model -> score ->
//! output. Shared here: continuing a `--resume`d output, the batch loop with its progress bar
//! and Ctrl-C handling, and turning texts into embeddings.

mod classify;
mod concepts;
mod duplicates;
mod embed;
mod eval;
mod explain;
mod inspect;
mod probe;
mod search;

use crate::cli::{Config, RunConfig, Task};
use crate::inputs::{discover, Found, Input};
use crate::model::{Clip, Plan};
use crate::output::meta;
use crate::output::resume::{self, Done, Layout, Resumed};
use crate::pipeline::{self, Msg, Settings};
use crate::printer::Printer;
use crate::score::normalised_rows;
use crate::text::cache::TextCache;
use crate::Outcome;
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn run(config: Config) -> Result<Outcome> {
    let printer = Printer::new(config.quiet, config.verbose);
    // Ctrl-C: finish the batch in hand, write it, stop. A second Ctrl-C stops at once.
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    // Each command checks what it can before it plans the model (`model` below), and what
    // the plan tells before it reads the weights.
    let model = || Plan::new(&config, &printer);
    match &config.task {
        Task::Inspect(c) => inspect::run(c, &printer),
        Task::Classify(c) => classify::run(c, &model()?, &printer),
        Task::Embed(c) => embed::run(c, &model()?, &printer),
        Task::Concepts(c) => concepts::run(c, &model()?, &printer),
        Task::Explain(c) => explain::run(c, &model()?, &printer),
        Task::Eval(c) => eval::run(c, model, &printer),
        Task::ProbeFit(c) => probe::fit(c, model, &printer),
        Task::ProbePredict(c) => probe::predict(c, model, &printer),
        Task::ProbeExplain(c) => probe::explain(c, &printer),
        Task::Search(c) => search::run(c, model, &printer),
        Task::Duplicates(c) => duplicates::run(c, &printer),
    }
}

/// `--resume` of `output`: what it holds (rewritten only by `Resumed::apply`, once every check
/// has passed) and, when it holds rows, the record its first run wrote, which must describe
/// the same settings as this run's (`record`, made only then).
pub fn resume_output(
    output: Option<&Path>,
    resume: bool,
    layout: Layout,
    meta: Option<&Path>,
    record: impl FnOnce() -> Result<Value>,
    printer: &Printer,
) -> Result<(Resumed, Option<Value>)> {
    let Some(path) = output.filter(|_| resume) else {
        return Ok((Resumed::default(), None));
    };
    let resumed = resume::read(path, layout)?;
    if !resumed.had_rows {
        return Ok((resumed, None));
    }
    let earlier = meta::check_resume(path, meta, &record()?)?;
    printer.note(format_args!(
        "resuming {}: {} rows already done",
        path.display(),
        resumed.rows_kept()
    ));
    Ok((resumed, Some(earlier)))
}

/// One batch's inputs with a normalised image embedding, or the error, for each.
pub type Embedded = Vec<(Input, Result<Vec<f32>, String>)>;

/// Streams the run's images through the pipeline and the image tower, handing each batch to
/// `write` in input order; failures are named on stderr. Stops early on Ctrl-C, after writing.
pub fn for_each_batch(
    model: &Clip,
    run: &RunConfig,
    skip: Done,
    printer: &Printer,
    mut write: impl FnMut(Embedded) -> Result<()>,
) -> Result<Outcome> {
    for_each_batch_with_pixels(model, run, skip, printer, false, |rows, _| write(rows))
}

/// As `for_each_batch`; with `pixels_only`, the image tower is not run: rows carry an empty
/// embedding (or the decoding error) and `write` gets the batch's preprocessed pixels
/// ([n, 3, S, S] flat), for a command that runs the model its own way (explain).
pub fn for_each_batch_with_pixels(
    model: &Clip,
    run: &RunConfig,
    skip: Done,
    printer: &Printer,
    pixels_only: bool,
    mut write: impl FnMut(Embedded, &[f32]) -> Result<()>,
) -> Result<Outcome> {
    let resumed: usize = skip.values().sum();
    let mut progress = printer.progress("images");
    if printer.shows_progress() {
        count_in_background(run, skip.clone(), progress.total_handle());
    }
    let settings = Settings {
        batch_size: run.batch_size,
        jobs: run.jobs,
        preprocess: model.config.preprocess.clone(),
        decode: run.decode,
        skip,
    };
    let batches = pipeline::start(discover(&run.inputs, true), settings, printer.clone())?;
    let mut outcome = Outcome::default();
    let mut found = None;
    for msg in batches {
        let batch = match msg? {
            Msg::Batch(b) => b,
            Msg::End { found: n } => {
                found = Some(n);
                break;
            }
        };
        let (embedded, kept) = if pixels_only {
            let rows = batch
                .status
                .into_iter()
                .map(|s| s.map(|()| Vec::new()))
                .collect();
            (rows, batch.pixels)
        } else {
            (embed_batch(model, batch.pixels, batch.status)?, Vec::new())
        };
        let rows: Embedded = batch.inputs.into_iter().zip(embedded).collect();
        for (input, r) in &rows {
            if let Err(e) = r {
                printer.failure(&input.path, e);
            }
        }
        let (n, failed) = (rows.len(), rows.iter().filter(|(_, r)| r.is_err()).count());
        write(rows, &kept)?;
        outcome.scored += n - failed;
        outcome.failed += failed;
        progress.add((n - failed) as u64, failed as u64);
        if INTERRUPTED.load(Ordering::SeqCst) {
            outcome.interrupted = true;
            printer.warn("interrupted: stopped after writing the rows done so far");
            break;
        }
    }
    progress.finish();
    match found {
        Some(0) => {
            outcome.nothing_found = true;
            printer.always(format_args!(
                "warning: found no images to score in {} (exit status 3)",
                describe_inputs(run)
            ));
        }
        Some(n) if outcome.scored + outcome.failed == 0 => printer.note(if resumed > 0 {
            format!("nothing left to score: the output already holds all {resumed} rows")
        } else {
            format!("this shard holds none of the {n} inputs found")
        }),
        Some(_) => {}
        None if outcome.interrupted => {}
        None => bail!(
            "the input pipeline stopped unexpectedly; the output holds the rows written so far"
        ),
    }
    Ok(outcome)
}

/// The inputs as given, for a message.
fn describe_inputs(run: &RunConfig) -> String {
    let mut parts: Vec<String> = run
        .inputs
        .args
        .iter()
        .map(|a| {
            if a == "-" {
                "stdin".to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    parts.extend(
        run.inputs
            .files_from
            .iter()
            .map(|f| format!("--files-from {}", f.display())),
    );
    let filtered = if run.inputs.filter.is_active() {
        " (after --include/--exclude)"
    } else {
        ""
    };
    format!("{}{filtered}", parts.join(", "))
}

/// The total for the progress bar: the same discovery run again, counting only. Left unknown
/// (a spinner) when an input can only be read once: `-`, or a `--files-from` pipe, which two
/// readers would split between them.
fn count_in_background(run: &RunConfig, mut skip: Done, set_total: impl Fn(u64) + Send + 'static) {
    let regular = |p: &std::path::PathBuf| std::fs::metadata(p).is_ok_and(|m| m.is_file());
    if run.inputs.args.iter().any(|a| a == "-") || !run.inputs.files_from.iter().all(regular) {
        return;
    }
    let spec = run.inputs.clone();
    let _ = std::thread::Builder::new()
        .name("whyxray-count".into())
        .spawn(move || {
            let total = discover(&spec, false)
                .filter(
                    |f| matches!(f, Ok(Found::Input(i)) if !pipeline::take_one(&mut skip, &i.path)),
                )
                .count();
            set_total(total as u64);
        });
}

/// Runs the image tower once on a batch; a failed input's (zero) slot is computed with the
/// rest and its row discarded, which costs less than copying the good ones together.
fn embed_batch(
    model: &Clip,
    pixels: Vec<f32>,
    status: Vec<Result<(), String>>,
) -> Result<Vec<Result<Vec<f32>, String>>> {
    let s = model.config.preprocess.size;
    let rows = if status.iter().any(Result::is_ok) {
        let batch = Tensor::from_vec(pixels, (status.len(), 3, s, s), model.device())?;
        normalised_rows(&model.encode_images(&batch).context("image tower")?)?
    } else {
        vec![Vec::new(); status.len()]
    };
    Ok(status
        .into_iter()
        .zip(rows)
        .map(|(st, row)| st.map(|()| row))
        .collect())
}

/// Label or prompt texts -> normalised text embeddings, in batches of 64 (a bank of a
/// thousand concepts would otherwise hold every activation at once).
pub fn embed_texts(model: &Clip, texts: &[String]) -> Result<Vec<Vec<f32>>> {
    let tokenizer = crate::text::Tokenizer::bundled(model.config.model.text.context_length)?;
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(64) {
        let ids: Vec<Vec<u32>> = chunk.iter().map(|t| tokenizer.encode(t)).collect();
        out.extend(normalised_rows(
            &model.encode_texts(&ids).context("text tower")?,
        )?);
    }
    Ok(out)
}

/// Texts -> normalised embeddings through the on-disk text cache: only the texts it lacks go
/// through the text tower, and the model is loaded (into `model`) only if one is missing.
pub fn embed_texts_cached(
    plan: &Plan,
    model: &mut Option<Clip>,
    texts: &[String],
) -> Result<Vec<Vec<f32>>> {
    let kind = format!("{:?}-{}", plan.dtype, device_kind(&plan.device)).to_lowercase();
    let cache = TextCache::new(plan.files.identity()?, &kind, plan.config.model.embed_dim);
    let mut out: Vec<Option<Vec<f32>>> = texts.iter().map(|t| cache.get(t)).collect();
    let missing: Vec<String> = texts
        .iter()
        .zip(&out)
        .filter(|(_, e)| e.is_none())
        .map(|(t, _)| t.clone())
        .collect();
    if !missing.is_empty() {
        if model.is_none() {
            *model = Some(plan.load()?);
        }
        let loaded = model.as_ref().context("the model")?;
        let fresh = embed_texts(loaded, &missing)?;
        for (t, e) in missing.iter().zip(&fresh) {
            cache.put(t, e);
        }
        let mut fresh = missing.into_iter().zip(fresh);
        for slot in out.iter_mut().filter(|e| e.is_none()) {
            *slot = fresh.next().map(|(_, e)| e);
        }
    }
    out.into_iter()
        .map(|e| e.context("a text embedding went missing"))
        .collect()
}

fn device_kind(device: &candle_core::Device) -> &'static str {
    if device.is_cuda() {
        "cuda"
    } else {
        "cpu"
    }
}
