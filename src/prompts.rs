//! Labels -> prompts: the classes of a classify run and, per class, the texts the text tower
//! embeds for it — the label itself, `--template`s applied to it, or a `--prompts` file — and,
//! for `--multilabel`, the negative prompts each finding is weighed against.

use crate::text::Tokenizer;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::Path;

/// One class: its name (the output column) and the prompts for and against it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassPrompts {
    pub name: String,
    pub pos: Vec<String>,
    /// Empty unless `--multilabel`.
    pub neg: Vec<String>,
}

/// What the user gave; `build` turns it into classes.
#[derive(Debug, Clone, Default)]
pub struct PromptSpec {
    pub labels: Vec<String>,
    pub templates: Vec<String>,
    pub prompts_file: Option<std::path::PathBuf>,
    pub multilabel: bool,
    pub negative_templates: Vec<String>,
}

/// CheXzero's negative for a finding when none is given.
pub const DEFAULT_NEGATIVE: &str = "no {}";

impl PromptSpec {
    pub fn build(&self) -> Result<Vec<ClassPrompts>> {
        for t in self.templates.iter().chain(&self.negative_templates) {
            if !t.contains("{}") {
                bail!("template {t:?} has no {{}} for the label");
            }
        }
        let mut classes = match &self.prompts_file {
            Some(path) => {
                if !self.labels.is_empty() || !self.templates.is_empty() {
                    bail!("--prompts FILE lists the classes and their prompts: give it without --labels or --template");
                }
                read_prompts_file(path, self.multilabel)?
            }
            None => self
                .labels
                .iter()
                .map(|l| ClassPrompts {
                    name: l.clone(),
                    pos: apply(&self.templates, l, std::slice::from_ref(l)),
                    neg: Vec::new(),
                })
                .collect(),
        };
        if self.multilabel {
            let negatives = if self.negative_templates.is_empty() {
                vec![DEFAULT_NEGATIVE.to_string()]
            } else {
                self.negative_templates.clone()
            };
            for c in classes.iter_mut().filter(|c| c.neg.is_empty()) {
                c.neg = apply(&negatives, &c.name, &[]);
            }
        } else if !self.negative_templates.is_empty() {
            bail!("--negative-template needs --multilabel");
        }
        let min = if self.multilabel { 1 } else { 2 };
        if classes.len() < min {
            bail!(
                "classify needs at least {min} label(s){} (--labels a,b, --labels-file or --prompts)",
                if self.multilabel { "" } else { " in single-label mode" }
            );
        }
        if let Some(dup) = classes.iter().enumerate().find_map(|(i, c)| {
            classes[..i]
                .iter()
                .any(|d| d.name == c.name)
                .then_some(&c.name)
        }) {
            bail!("label {dup:?} is given twice");
        }
        Ok(classes)
    }
}

/// What a user should hear before anything is scored: prompts cut at the text tower's context
/// length (naming them), and classes whose prompts are the same tokens (`a` and `A`, `ﬁnding`
/// and `finding`, two labels that differ only after the cut), whose scores are bound to be
/// equal.
pub fn token_warnings(classes: &[ClassPrompts], tokenizer: &Tokenizer) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in classes.iter().flat_map(|c| c.pos.iter().chain(&c.neg)) {
        if seen.insert(p) {
            warnings.extend(cut_warning(p, tokenizer));
        }
    }
    let sorted = |texts: &[String]| {
        let mut ids: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode(t)).collect();
        ids.sort();
        ids
    };
    let keys: Vec<_> = classes
        .iter()
        .map(|c| (sorted(&c.pos), sorted(&c.neg)))
        .collect();
    for (i, a) in classes.iter().enumerate() {
        if let Some(b) = classes[..i].iter().zip(&keys).find(|(_, k)| **k == keys[i]) {
            warnings.push(format!(
                "labels {:?} and {:?} are the same tokens to the model, so their scores will be                  identical (case, Unicode forms and text past the token limit are not seen)",
                b.0.name, a.name
            ));
        }
    }
    warnings
}

/// "... is cut" when `text` is longer than the context length allows.
pub fn cut_warning(text: &str, tokenizer: &Tokenizer) -> Option<String> {
    let n = tokenizer.content_ids(text).len() + 2;
    let limit = tokenizer.context_length();
    (n > limit).then(|| {
        format!(
            "{text:?} is {n} tokens, more than the text tower's {limit}: only its start is read"
        )
    })
}

/// Each template with `{}` replaced by `label`; `fallback` when there are no templates.
fn apply(templates: &[String], label: &str, fallback: &[String]) -> Vec<String> {
    if templates.is_empty() {
        return fallback.to_vec();
    }
    templates.iter().map(|t| t.replace("{}", label)).collect()
}

/// `{"class": "prompt" | ["prompt", ...] | {"pos": [...], "neg": [...]}, ...}`, in file order.
fn read_prompts_file(path: &Path, multilabel: bool) -> Result<Vec<ClassPrompts>> {
    let text = crate::read_text(path)
        .with_context(|| format!("cannot read --prompts {}", path.display()))?;
    let Strict(root) = serde_json::from_str(&text)
        .with_context(|| format!("--prompts {}: not valid JSON", path.display()))?;
    let Value::Object(map) = root else {
        bail!(
            "--prompts {}: expected an object {{\"class\": [\"prompt\", ...]}}",
            path.display()
        );
    };
    map.into_iter()
        .map(|(name, v)| {
            let ctx = || format!("--prompts {}: class {name:?}", path.display());
            let (pos, neg) = match v {
                Value::Object(o) => {
                    if o.keys().any(|k| k != "pos" && k != "neg") {
                        bail!("{}: only \"pos\" and \"neg\" keys are allowed", ctx());
                    }
                    let pos = strings(
                        o.get("pos")
                            .with_context(|| format!("{}: no \"pos\"", ctx()))?,
                    )
                    .with_context(ctx)?;
                    let neg = o
                        .get("neg")
                        .map(strings)
                        .transpose()
                        .with_context(ctx)?
                        .unwrap_or_default();
                    if !neg.is_empty() && !multilabel {
                        bail!("{}: \"neg\" prompts are only used with --multilabel", ctx());
                    }
                    (pos, neg)
                }
                other => (strings(&other).with_context(ctx)?, Vec::new()),
            };
            if pos.is_empty() {
                bail!("{}: no prompts", ctx());
            }
            Ok(ClassPrompts { name, pos, neg })
        })
        .collect()
}

/// A JSON value whose objects may not repeat a key: serde_json keeps the last one silently,
/// which would drop a class (or its prompts) without a word.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.insert(key.clone(), v).is_some() {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} appears twice (JSON keeps only the last)"
                )));
            }
        }
        Ok(Value::Object(out))
    }
}

fn strings(v: &Value) -> Result<Vec<String>> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .context("prompts must be strings")
            })
            .collect(),
        _ => bail!("expected a prompt or a list of prompts"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_apply_to_labels_and_negatives_default_to_no() {
        let spec = PromptSpec {
            labels: vec!["effusion".into(), "edema".into()],
            templates: vec!["a chest x-ray showing {}".into(), "{}".into()],
            multilabel: true,
            ..PromptSpec::default()
        };
        let c = spec.build().unwrap();
        assert_eq!(c[0].pos, ["a chest x-ray showing effusion", "effusion"]);
        assert_eq!(c[1].neg, ["no edema"]);
    }

    #[test]
    fn prompts_file_forms_and_errors() {
        let dir = std::env::temp_dir().join(format!("whyxray-prompts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.json");
        std::fs::write(
            &file,
            r#"{"b": "x", "a": ["y", "z"], "c": {"pos": ["p"], "neg": ["n"]}}"#,
        )
        .unwrap();
        let spec = |multilabel| PromptSpec {
            prompts_file: Some(file.clone()),
            multilabel,
            ..PromptSpec::default()
        };
        let c = spec(true).build().unwrap();
        assert_eq!(
            c.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["b", "a", "c"]
        );
        assert_eq!(
            (c[1].pos.len(), &c[2].neg[..], &c[0].neg[..]),
            (2, &["n".to_string()][..], &["no b".to_string()][..])
        );
        assert!(format!("{:#}", spec(false).build().unwrap_err()).contains("--multilabel"));
        std::fs::write(&file, r#"{"a": 3}"#).unwrap();
        assert!(spec(false).build().is_err());
        std::fs::write(&file, r#"{"a": "x", "b": {"pos": ["p"], "pos": ["q"]}}"#).unwrap();
        let err = format!("{:#}", spec(false).build().unwrap_err());
        assert!(err.contains("\"pos\" appears twice"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
