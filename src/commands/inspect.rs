//! `whyxray inspect`: inputs -> decode, and no further: one line (or JSON object) per file
//! saying what was found (format, transfer syntax, photometric interpretation, bits, rescale)
//! and done (window, inversion, orientation), so that researchers can debug their inputs.

use crate::cli::{InspectConfig, InspectFormat};
use crate::image::decode_file_with;
use crate::inputs::{discover, Found};
use crate::output::Sink;
use crate::printer::Printer;
use crate::Outcome;
use anyhow::Result;
use serde_json::{json, Value};

pub fn run(c: &InspectConfig, printer: &Printer) -> Result<Outcome> {
    let mut sink = Sink::open(c.output.as_deref(), false, printer)?;
    let mut outcome = Outcome::default();
    for found in discover(&c.inputs, true) {
        let input = match found? {
            Found::Skipped(note) => {
                printer.warn(note);
                continue;
            }
            Found::OtherShard => continue,
            Found::Input(i) => i,
        };
        let result = match &input.error {
            Some(e) => Err(e.clone()),
            // A decoder bug must cost one line, not the run (as in the batch pipeline).
            None => std::panic::catch_unwind(|| {
                decode_file_with(std::path::Path::new(&input.path), &c.decode)
            })
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "internal error while decoding this file (please report it)"
                ))
            })
            .map(|d| d.report)
            .map_err(|e| format!("{e:#}")),
        };
        let line = match (&result, c.format) {
            (Ok(r), InspectFormat::Text) => format!("{}: {}\n", input.path, r.line()),
            (Err(e), InspectFormat::Text) => format!("{}: error: {e}\n", input.path),
            (Ok(r), InspectFormat::Jsonl) => {
                let mut obj = json!({ "file": input.path });
                if let (Value::Object(o), Value::Object(fields)) =
                    (&mut obj, serde_json::to_value(r)?)
                {
                    o.extend(fields);
                    o.insert("error".into(), Value::Null);
                }
                format!("{obj}\n")
            }
            (Err(e), InspectFormat::Jsonl) => {
                format!("{}\n", json!({ "file": input.path, "error": e }))
            }
        };
        sink.write_chunk(line.as_bytes())?;
        match result {
            Ok(_) => outcome.scored += 1,
            Err(e) => {
                printer.failure(&input.path, e);
                outcome.failed += 1;
            }
        }
    }
    if outcome.scored + outcome.failed == 0 {
        outcome.nothing_found = true;
        printer.always("warning: found no images to inspect (exit status 3)");
    }
    Ok(outcome)
}
