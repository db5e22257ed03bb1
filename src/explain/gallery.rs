//! Explain (gallery): `index.html`, one self-contained page over the run's pictures — every
//! image in input order with its strip and scores, filterable by top label — with relative
//! links only, no network and a few lines of plain JavaScript.

use anyhow::{Context, Result};
use serde_json::Value;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A link to a file in the directory (its name, percent-encoded where HTML would mind).
fn href(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ' ' => "%20".to_string(),
            '"' => "%22".to_string(),
            '#' => "%23".to_string(),
            '%' => "%25".to_string(),
            '?' => "%3F".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A score as the strips and the page show it: 4 decimals, or 3 significant digits below 1e-3.
pub fn score_text(v: f64) -> String {
    if v >= 1e-3 || v == 0.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.2e}")
    }
}

/// The page, written as the run goes (one item per input, in input order) so that its memory
/// does not grow with the number of images; it appears as `index.html` when the run ends.
pub struct Gallery {
    out: BufWriter<File>,
    partial: PathBuf,
    path: PathBuf,
    labels: Vec<String>,
}

impl Gallery {
    pub fn create(dir: &Path, labels: &[String], method: &str) -> Result<Self> {
        let path = dir.join("index.html");
        let partial = dir.join(".index.html.partial");
        let file = File::create(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        let mut g = Self {
            out: BufWriter::new(file),
            partial,
            path,
            labels: labels.to_vec(),
        };
        let head = head(labels, method);
        g.write(&head)?;
        Ok(g)
    }

    fn write(&mut self, s: &str) -> Result<()> {
        self.out
            .write_all(s.as_bytes())
            .with_context(|| format!("cannot write {}", self.partial.display()))
    }

    /// One input: its row as written on stdout plus `strip` (the strip's file name in the
    /// directory, absent for a failed input).
    pub fn add(&mut self, row: &Value, strip: Option<&str>) -> Result<()> {
        let s = item(&self.labels, row, strip);
        self.write(&s)
    }

    pub fn finish(mut self) -> Result<()> {
        self.write(TAIL)?;
        self.out
            .flush()
            .with_context(|| format!("cannot write {}", self.partial.display()))?;
        std::fs::rename(&self.partial, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

fn head(labels: &[String], method: &str) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>whyxray explain</title>\n<style>\n\
         body{font-family:sans-serif;margin:1.5em;color:#222}\n\
         .note{background:#fff4d6;border:1px solid #e0c060;padding:.6em 1em;margin-bottom:1em}\n\
         .item{border-top:1px solid #ccc;padding:.8em 0}\n.item img{max-width:100%;height:auto}\n\
         table{border-collapse:collapse;margin:.3em 0}td,th{padding:.1em .8em;text-align:left}\n\
         .top{font-weight:bold}.error{color:#a00}\n</style></head><body>\n",
    );
    s += &format!("<h1>whyxray explain: {}</h1>\n", escape(method));
    s += "<p class=\"note\">Research tool only, not for diagnosis. These heatmaps show where the \
          model's score for each label comes from: they are explanations of the model, not \
          localisation of disease. Each map is normalised to its own range; hatched areas were \
          cut off by the crop and not looked at.</p>\n";
    s += "<p><label>Show images whose top label is <select id=\"filter\"><option value=\"\">any label</option>";
    for l in labels {
        s += &format!("<option value=\"{0}\">{0}</option>", escape(l));
    }
    s += "</select></label> <span id=\"count\"></span></p>\n";
    s
}

fn item(labels: &[String], row: &Value, strip: Option<&str>) -> String {
    let mut s = String::new();
    let file = row["file"].as_str().unwrap_or_default();
    let top = row["top"].as_str().unwrap_or_default();
    s += &format!(
        "<div class=\"item\" data-top=\"{}\">\n<h3>{}</h3>\n",
        escape(top),
        escape(file)
    );
    match (strip, row["error"].as_str()) {
        (_, Some(e)) => s += &format!("<p class=\"error\">error: {}</p>\n", escape(e)),
        (Some(name), None) => {
            s += &format!(
                "<a href=\"{0}\"><img src=\"{0}\" alt=\"{1}\" loading=\"lazy\"></a>\n",
                href(name),
                escape(file)
            );
            s += "<table><tr><th>label</th><th>score</th><th>overlay</th><th>raw range</th></tr>\n";
            for l in labels {
                let m = &row["maps"][l];
                let name = m["overlay_name"].as_str().unwrap_or_default();
                let class = if l == top { " class=\"top\"" } else { "" };
                let v = row["scores"][l].as_f64().unwrap_or(f64::NAN);
                let score = score_text(v);
                s += &format!(
                    "<tr{class}><td>{}</td><td>{score}</td><td><a href=\"{}\">full size</a></td><td>{} .. {}</td></tr>\n",
                    escape(l),
                    href(name),
                    m["range"][0],
                    m["range"][1]
                );
            }
            s += "</table>\n";
        }
        (None, None) => {}
    }
    s += "</div>\n";
    s
}

const TAIL: &str = "<script>\nconst f=document.getElementById('filter'),c=document.getElementById('count');\n\
          function apply(){let n=0;for(const d of document.querySelectorAll('.item')){const on=!f.value||d.dataset.top===f.value;d.style.display=on?'':'none';if(on)n++;}c.textContent=n+' shown';}\n\
          const q=new URLSearchParams(location.search).get('top');if(q!==null)f.value=q;\n\
          f.addEventListener('change',apply);apply();\n</script>\n</body></html>\n";
