//! Pipeline: the input stream cut into batches, each read, decoded and preprocessed on a
//! bounded worker pool (`--jobs`) while the model runs the batch before it. One batch waits in
//! a queue of one, so memory is set by the batch size, never by the dataset; batches come out
//! in input order, then the end with how many inputs were found.

use crate::image::{decode_file_with, preprocess_into, DecodeOptions};
use crate::inputs::{Found, Input};
use crate::model::config::PreprocessConfig;
use crate::output::resume::Done;
use crate::printer::Printer;
use anyhow::Result;
use rayon::prelude::*;
use std::sync::mpsc::{sync_channel, Receiver};

/// A batch ready for the model: its inputs, their pixels as one [n, 3, S, S] buffer (decoded
/// in place, no copies; a failed input's slot stays zero), and each input's error, if any.
pub struct Batch {
    pub inputs: Vec<Input>,
    pub pixels: Vec<f32>,
    pub status: Vec<Result<(), String>>,
}

pub struct Settings {
    pub batch_size: usize,
    pub jobs: usize,
    pub preprocess: PreprocessConfig,
    pub decode: DecodeOptions,
    /// Inputs already scored by an earlier run (`--resume`): not scored again, each as many
    /// times as it has rows.
    pub skip: Done,
}

pub enum Msg {
    Batch(Batch),
    /// The stream has ended: how many inputs it named (resumed ones and those of other shards
    /// included), so that finding nothing is told from an empty shard or a finished run.
    End {
        found: u64,
    },
}

/// Starts the producer thread; the receiver yields batches, then `End` once the stream has
/// ended (a channel that closes without it means the producer died). Dropping the receiver
/// stops the producer at its next batch.
pub fn start<I>(stream: I, settings: Settings, printer: Printer) -> Result<Receiver<Result<Msg>>>
where
    I: Iterator<Item = Result<Found>> + Send + 'static,
{
    // With as many decode threads as cores, decoding shares rayon's global pool with the
    // model's ops: one set of threads, no oversubscription (idle rayon workers spin briefly,
    // and two pools spinning on the same cores cost a small model a fifth of its speed).
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let pool = if settings.jobs >= cores {
        None
    } else {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(settings.jobs)
            .thread_name(|i| format!("whyxray-decode-{i}"))
            .build()?;
        Some(pool)
    };
    let (tx, rx) = sync_channel(1);
    std::thread::Builder::new()
        .name("whyxray-inputs".into())
        .spawn(move || {
            let (mut stream, mut settings) = (stream, settings);
            let mut found = 0;
            loop {
                let inputs = match next_inputs(&mut stream, &mut settings, &mut found, &printer) {
                    Ok(inputs) if inputs.is_empty() => {
                        let _ = tx.send(Ok(Msg::End { found }));
                        return;
                    }
                    Ok(inputs) => inputs,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let (pp, opts) = (&settings.preprocess, &settings.decode);
                let mut pixels = vec![0f32; inputs.len() * 3 * pp.size * pp.size];
                let mut decode = || {
                    let slots = pixels.par_chunks_mut(3 * pp.size * pp.size);
                    inputs
                        .par_iter()
                        .zip(slots)
                        .map(|(i, slot)| prepare(i, pp, opts, slot, &printer))
                        .collect()
                };
                let status = match &pool {
                    Some(pool) => pool.install(decode),
                    None => decode(),
                };
                if tx
                    .send(Ok(Msg::Batch(Batch {
                        inputs,
                        pixels,
                        status,
                    })))
                    .is_err()
                {
                    return;
                }
            }
        })?;
    Ok(rx)
}

/// Up to `batch_size` inputs not already scored; empty when the stream has ended.
fn next_inputs<I>(
    stream: &mut I,
    s: &mut Settings,
    found: &mut u64,
    printer: &Printer,
) -> Result<Vec<Input>>
where
    I: Iterator<Item = Result<Found>>,
{
    let mut inputs = Vec::with_capacity(s.batch_size);
    while inputs.len() < s.batch_size {
        match stream.next().transpose()? {
            None => break,
            Some(Found::Skipped(note)) => printer.warn(note),
            Some(Found::OtherShard) => *found += 1,
            Some(Found::Input(i)) => {
                *found += 1;
                if !take_one(&mut s.skip, &i.path) {
                    inputs.push(i);
                }
            }
        }
    }
    Ok(inputs)
}

/// Counts one occurrence of `path` off `done`; false when it has none left to skip.
pub fn take_one(done: &mut Done, path: &str) -> bool {
    match done.get_mut(path) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

fn prepare(
    input: &Input,
    pp: &PreprocessConfig,
    opts: &DecodeOptions,
    slot: &mut [f32],
    printer: &Printer,
) -> Result<(), String> {
    if let Some(e) = &input.error {
        return Err(e.clone());
    }
    // A decoder bug must cost one row, not the run.
    let run = std::panic::AssertUnwindSafe(|| {
        decode_file_with(std::path::Path::new(&input.path), opts).map(|d| {
            for note in &d.report.notes {
                printer.warn(format_args!("{}: {note}", input.path));
            }
            preprocess_into(&d, pp, slot)
        })
    });
    match std::panic::catch_unwind(run) {
        Ok(result) => result.map_err(|e| format!("{e:#}")),
        Err(_) => Err("internal error while decoding this file (please report it)".into()),
    }
}
