//! Model config: `open_clip_config.json` (`model_cfg` + `preprocess_cfg`) read into typed structs,
//! refusing every option that would change the graph or the keys of open_clip's plain ViT `CLIP`.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::Path;

// open_clip's OPENAI_DATASET_MEAN/STD digit for digit (Python parses them to double, torch
// rounds them to float32 as Rust does here).
#[allow(clippy::excessive_precision)]
pub const OPENAI_MEAN: [f32; 3] = [0.48145466, 0.4578275, 0.40821073];
#[allow(clippy::excessive_precision)]
pub const OPENAI_STD: [f32; 3] = [0.26862954, 0.26130258, 0.27577711];

#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub image_size: usize,
    pub layers: usize,
    pub width: usize,
    pub patch_size: usize,
    pub heads: usize,
    pub mlp_width: usize,
}

impl VisionConfig {
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub context_length: usize,
    pub vocab_size: usize,
    pub width: usize,
    pub heads: usize,
    pub layers: usize,
    pub mlp_width: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `nn.GELU()`: exact, with erf.
    Gelu,
    /// `x * sigmoid(1.702 x)`, OpenAI's original.
    QuickGelu,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub embed_dim: usize,
    pub vision: VisionConfig,
    pub text: TextConfig,
    pub activation: Activation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    Bicubic,
    Bilinear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Shortest side to `size`, then center crop (open_clip's default).
    Shortest,
    /// Both sides to `size`, aspect ratio not kept.
    Squash,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PreprocessConfig {
    pub size: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub interpolation: Interpolation,
    pub resize_mode: ResizeMode,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenClipConfig {
    pub model: ModelConfig,
    pub preprocess: PreprocessConfig,
}

impl OpenClipConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read model config {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("model config {}", path.display()))
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let root: Value = serde_json::from_str(text).context("not valid JSON")?;
        let model_cfg = root
            .get("model_cfg")
            .and_then(Value::as_object)
            .context("no `model_cfg` object (open_clip requires one)")?;
        let model = parse_model(model_cfg)?;
        let pp = match root.get("preprocess_cfg") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => bail!("`preprocess_cfg` is not an object"),
        };
        let preprocess = parse_preprocess(&pp, model.vision.image_size)?;
        Ok(Self { model, preprocess })
    }
}

/// What a key may hold for us to accept it: anything (ignored at inference), or only its
/// open_clip default (any other value would change the graph, the keys or the tokenizer).
enum Allow {
    Any,
    Default(Value),
}

fn check_keys(
    section: &str,
    obj: &Map<String, Value>,
    known: &[&str],
    rules: &[(&str, Allow)],
) -> Result<()> {
    for (key, value) in obj {
        if known.contains(&key.as_str()) {
            continue;
        }
        match rules.iter().find(|(k, _)| k == key) {
            Some((_, Allow::Any)) => {}
            Some((_, Allow::Default(d))) if value == d || value.is_null() => {}
            Some((_, Allow::Default(d))) => bail!(
                "unsupported option `{section}.{key}` = {value} (only {d} is implemented): \
                 this checkpoint is outside the plain open_clip ViT CLIP family"
            ),
            None => bail!(
                "unknown option `{section}.{key}` = {value}: refusing to guess what it changes \
                 (whyxray supports open_clip's plain ViT CLIP family)"
            ),
        }
    }
    Ok(())
}

fn parse_model(m: &Map<String, Value>) -> Result<ModelConfig> {
    use Allow::{Any, Default as D};
    check_keys(
        "model_cfg",
        m,
        &["embed_dim", "vision_cfg", "text_cfg", "quick_gelu"],
        &[
            ("init_logit_scale", Any),
            ("init_logit_bias", D(Value::Null)),
            ("custom_text", D(false.into())),
            ("cast_dtype", D(Value::Null)),
            ("output_dict", Any),
            ("nonscalar_logit_scale", D(false.into())),
        ],
    )?;
    let activation = match m.get("quick_gelu") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Activation::Gelu,
        Some(Value::Bool(true)) => Activation::QuickGelu,
        Some(v) => bail!("`model_cfg.quick_gelu` must be a boolean, got {v}"),
    };
    let vision = m
        .get("vision_cfg")
        .and_then(Value::as_object)
        .context("no `model_cfg.vision_cfg` object")?;
    let text = m
        .get("text_cfg")
        .and_then(Value::as_object)
        .context("no `model_cfg.text_cfg` object")?;
    Ok(ModelConfig {
        embed_dim: req_usize(m, "model_cfg", "embed_dim")?,
        vision: parse_vision(vision)?,
        text: parse_text(text)?,
        activation,
    })
}

/// Keys that are training-time only or restate open_clip's defaults for both towers.
fn tower_rules() -> Vec<(&'static str, Allow)> {
    use Allow::{Any, Default as D};
    vec![
        ("ls_init_value", D(Value::Null)),
        ("output_tokens", D(false.into())),
        ("act_kwargs", D(Value::Null)),
        ("norm_kwargs", D(Value::Null)),
        ("final_ln_after_pool", D(false.into())),
        ("patch_dropout", Any),
        ("mlp_ratio", Any),
    ]
}

fn parse_vision(v: &Map<String, Value>) -> Result<VisionConfig> {
    use Allow::{Any, Default as D};
    let mut rules = tower_rules();
    rules.extend([
        ("head_width", Any),
        ("attentional_pool", D(false.into())),
        ("attn_pooler_queries", Any),
        ("attn_pooler_heads", Any),
        ("no_ln_pre", D(false.into())),
        ("pos_embed_type", D("learnable".into())),
        ("pool_type", D("tok".into())),
        ("timm_model_name", D(Value::Null)),
        ("timm_model_pretrained", D(false.into())),
        ("timm_pool", Any),
        ("timm_proj", Any),
        ("timm_proj_bias", Any),
        ("timm_drop", Any),
        ("timm_drop_path", Any),
    ]);
    check_keys(
        "vision_cfg",
        v,
        &["image_size", "layers", "width", "patch_size"],
        &rules,
    )?;
    let image_size = match v.get("image_size") {
        Some(Value::Array(a)) if a.len() == 2 && a[0] == a[1] => a[0].as_u64().map(|x| x as usize),
        Some(Value::Array(a)) => bail!("non-square `vision_cfg.image_size` {a:?} is not supported"),
        Some(x) => x.as_u64().map(|x| x as usize),
        None => Some(224),
    }
    .context("`vision_cfg.image_size` must be a positive integer")?;
    if v.get("layers").is_some_and(Value::is_array) {
        bail!("`vision_cfg.layers` is a list: a ModifiedResNet image tower, not a ViT");
    }
    let width = req_usize(v, "vision_cfg", "width")?;
    let head_width = opt_usize(v, "vision_cfg", "head_width")?.unwrap_or(64);
    if head_width == 0 || width % head_width != 0 {
        bail!("`vision_cfg.width` {width} is not a multiple of `head_width` {head_width}");
    }
    let patch_size = req_usize(v, "vision_cfg", "patch_size")?;
    if patch_size == 0 || image_size < patch_size {
        bail!("`vision_cfg.patch_size` {patch_size} does not fit `image_size` {image_size}");
    }
    Ok(VisionConfig {
        image_size,
        layers: req_usize(v, "vision_cfg", "layers")?,
        width,
        patch_size,
        heads: width / head_width,
        mlp_width: mlp_width(v, "vision_cfg", width)?,
    })
}

fn parse_text(t: &Map<String, Value>) -> Result<TextConfig> {
    use Allow::{Any, Default as D};
    let mut rules = tower_rules();
    rules.extend([
        ("hf_tokenizer_name", D(Value::Null)),
        ("tokenizer_kwargs", D(Value::Null)),
        ("hf_model_name", D(Value::Null)),
        ("hf_model_pretrained", Any),
        ("hf_proj_type", Any),
        ("hf_pooler_type", Any),
        ("embed_cls", D(false.into())),
        ("pad_id", D(0.into())),
        ("no_causal_mask", D(false.into())),
        ("pool_type", D("argmax".into())),
        ("proj_bias", D(false.into())),
        ("proj_type", D("linear".into())),
    ]);
    check_keys(
        "text_cfg",
        t,
        &["context_length", "vocab_size", "width", "heads", "layers"],
        &rules,
    )?;
    let width = opt_usize(t, "text_cfg", "width")?.unwrap_or(512);
    let heads = opt_usize(t, "text_cfg", "heads")?.unwrap_or(8);
    if heads == 0 || width % heads != 0 {
        bail!("`text_cfg.width` {width} is not a multiple of `heads` {heads}");
    }
    let context_length = opt_usize(t, "text_cfg", "context_length")?.unwrap_or(77);
    if context_length < 2 {
        bail!("`text_cfg.context_length` {context_length} leaves no room for start and end tokens");
    }
    let vocab_size = opt_usize(t, "text_cfg", "vocab_size")?.unwrap_or(49408);
    if vocab_size < 49408 {
        bail!("`text_cfg.vocab_size` {vocab_size} is smaller than open_clip's tokenizer (49408)");
    }
    Ok(TextConfig {
        context_length,
        vocab_size,
        width,
        heads,
        layers: opt_usize(t, "text_cfg", "layers")?.unwrap_or(12),
        mlp_width: mlp_width(t, "text_cfg", width)?,
    })
}

fn mlp_width(m: &Map<String, Value>, section: &str, width: usize) -> Result<usize> {
    let ratio = match m.get("mlp_ratio") {
        None | Some(Value::Null) => 4.0,
        Some(v) => v
            .as_f64()
            .with_context(|| format!("`{section}.mlp_ratio` must be a number"))?,
    };
    // open_clip: `int(width * mlp_ratio)`, a truncation.
    let mlp = (width as f64 * ratio) as usize;
    if !ratio.is_finite() || mlp == 0 {
        bail!("`{section}.mlp_ratio` {ratio} leaves no MLP");
    }
    Ok(mlp)
}

fn opt_usize(m: &Map<String, Value>, section: &str, key: &str) -> Result<Option<usize>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(x) if x > 0 => Ok(Some(x as usize)),
            _ => bail!("`{section}.{key}` must be a positive integer, got {v}"),
        },
    }
}

fn req_usize(m: &Map<String, Value>, section: &str, key: &str) -> Result<usize> {
    opt_usize(m, section, key)?.with_context(|| format!("missing `{section}.{key}`"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreprocess {
    size: Option<Value>,
    mode: Option<String>,
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
    interpolation: Option<String>,
    resize_mode: Option<String>,
    fill_color: Option<Value>,
}

fn parse_preprocess(m: &Map<String, Value>, image_size: usize) -> Result<PreprocessConfig> {
    let raw: RawPreprocess =
        serde_json::from_value(Value::Object(m.clone())).context("in `preprocess_cfg`")?;
    let _ = (raw.size, raw.fill_color); // size always follows the model; fill only for `longest`
    if let Some(mode) = raw.mode.as_deref() {
        if mode != "RGB" {
            bail!("unsupported `preprocess_cfg.mode` {mode:?} (only \"RGB\")");
        }
    }
    let triple = |v: Option<Vec<f32>>, key: &str, default: [f32; 3]| -> Result<[f32; 3]> {
        match v {
            None => Ok(default),
            Some(v) if v.len() == 3 => Ok([v[0], v[1], v[2]]),
            Some(v) if v.len() == 1 => Ok([v[0]; 3]),
            Some(v) => bail!("`preprocess_cfg.{key}` must have 3 values, got {}", v.len()),
        }
    };
    let std = triple(raw.std, "std", OPENAI_STD)?;
    if std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
        bail!("`preprocess_cfg.std` {std:?} must be finite and non-zero");
    }
    let interpolation = match raw.interpolation.as_deref() {
        None | Some("bicubic") | Some("random") => Interpolation::Bicubic,
        Some("bilinear") => Interpolation::Bilinear,
        Some(x) => bail!("unsupported `preprocess_cfg.interpolation` {x:?} (bicubic or bilinear)"),
    };
    let resize_mode = match raw.resize_mode.as_deref() {
        None | Some("shortest") => ResizeMode::Shortest,
        Some("squash") => ResizeMode::Squash,
        Some(x) => bail!("unsupported `preprocess_cfg.resize_mode` {x:?} (shortest or squash)"),
    };
    Ok(PreprocessConfig {
        size: image_size,
        mean: triple(raw.mean, "mean", OPENAI_MEAN)?,
        std,
        interpolation,
        resize_mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIT_L_14: &str = r#"{"model_cfg": {"embed_dim": 768,
        "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}},
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}"#;

    #[test]
    fn vit_l_14_defaults() {
        let c = OpenClipConfig::from_json(VIT_L_14).unwrap();
        assert_eq!(c.model.vision.heads, 16);
        assert_eq!(c.model.vision.mlp_width, 4096);
        assert_eq!(c.model.vision.grid(), 16);
        assert_eq!(c.model.text.mlp_width, 3072);
        assert_eq!(c.model.activation, Activation::Gelu);
        assert_eq!(c.preprocess.resize_mode, ResizeMode::Shortest);
        assert_eq!(c.preprocess.interpolation, Interpolation::Bicubic);
        assert_eq!(c.preprocess.size, 224);
    }

    fn with(section: &str, extra: &str) -> String {
        VIT_L_14.replacen(
            &format!("\"{section}\": {{"),
            &format!("\"{section}\": {{{extra}, "),
            1,
        )
    }

    #[test]
    fn refuses_graph_changing_options_by_name() {
        for (section, extra, key) in [
            (
                "vision_cfg",
                r#""attentional_pool": true"#,
                "vision_cfg.attentional_pool",
            ),
            ("vision_cfg", r#""no_ln_pre": true"#, "vision_cfg.no_ln_pre"),
            (
                "vision_cfg",
                r#""pool_type": "avg""#,
                "vision_cfg.pool_type",
            ),
            (
                "vision_cfg",
                r#""timm_model_name": "vit_base""#,
                "vision_cfg.timm_model_name",
            ),
            (
                "text_cfg",
                r#""hf_model_name": "bert""#,
                "text_cfg.hf_model_name",
            ),
            (
                "text_cfg",
                r#""no_causal_mask": true"#,
                "text_cfg.no_causal_mask",
            ),
            ("text_cfg", r#""proj_bias": true"#, "text_cfg.proj_bias"),
            (
                "model_cfg",
                r#""custom_text": true"#,
                "model_cfg.custom_text",
            ),
            (
                "model_cfg",
                r#""coca_multimodal": 1"#,
                "model_cfg.coca_multimodal",
            ),
        ] {
            let err = OpenClipConfig::from_json(&with(section, extra)).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{key}: {err:#}");
        }
    }

    #[test]
    fn accepts_restated_defaults_and_training_keys() {
        let c = with(
            "vision_cfg",
            r#""pool_type": "tok", "patch_dropout": 0.5, "ls_init_value": null"#,
        );
        let c = OpenClipConfig::from_json(&c).unwrap();
        assert_eq!(c.model.vision.layers, 24);
        let q = with("model_cfg", r#""quick_gelu": true"#);
        assert_eq!(
            OpenClipConfig::from_json(&q).unwrap().model.activation,
            Activation::QuickGelu
        );
    }

    #[test]
    fn preprocess_overrides_and_refusals() {
        let c = VIT_L_14.replace(
            r#""preprocess_cfg": {"#,
            r#""preprocess_cfg": {"resize_mode": "squash", "interpolation": "bilinear", "#,
        );
        let c = OpenClipConfig::from_json(&c).unwrap();
        assert_eq!(c.preprocess.resize_mode, ResizeMode::Squash);
        assert_eq!(c.preprocess.interpolation, Interpolation::Bilinear);
        let bad = VIT_L_14.replace(
            r#""preprocess_cfg": {"#,
            r#""preprocess_cfg": {"resize_mode": "longest", "#,
        );
        assert!(format!("{:#}", OpenClipConfig::from_json(&bad).unwrap_err()).contains("longest"));
        assert!(OpenClipConfig::from_json(r#"{"preprocess_cfg": {}}"#).is_err());
    }
}
