//! The model: open_clip's `CLIP` (ViT image tower + text transformer) built from its config and
//! checked state dict. Both towers return unnormalised features, as `encode_image`/`encode_text`.

pub mod bf16;
pub mod config;
pub(crate) mod ops;
mod params;
pub mod plan;
mod text;
pub(crate) mod transformer;
mod vision;
pub mod weights;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use config::OpenClipConfig;
use params::Params;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

pub use plan::Plan;
pub use text::TextTransformer;
pub use vision::VisionTransformer;

pub struct Clip {
    pub config: OpenClipConfig,
    vision: VisionTransformer,
    text: TextTransformer,
    /// `exp(logit_scale)` from the checkpoint.
    logit_scale: f32,
    device: Device,
    /// The activations' dtype (float32 for bf16 on the CPU, where only the linear layers'
    /// weights are bf16); features come out as float32 whatever it is.
    dtype: DType,
    /// The CPU bf16 GEMM kernel, when the linear layers run through it.
    bf16_kernel: Option<bf16::Kernel>,
}

impl Clip {
    pub fn load(config: OpenClipConfig, weights_path: &Path, device: &Device) -> Result<Self> {
        let tensors = weights::load(weights_path, &config.model, device)?;
        Self::from_tensors(config, tensors, device)
    }

    /// From a state dict already read and checked by `weights::load`, in float32.
    pub fn from_tensors(
        config: OpenClipConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        Self::from_tensors_in(config, tensors, device, DType::F32)
    }

    /// As `from_tensors`, with weights and activations in `dtype` (f16/bf16 for GPUs).
    pub fn from_tensors_in(
        config: OpenClipConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let logit_scale = tensors["logit_scale"].to_scalar::<f32>()?.exp();
        // bf16 on the CPU: the linear layers' weights packed for the bf16 GEMM, everything
        // else (activations, LayerNorm, softmax, the residual stream) float32, as autocast.
        let pack = (device.is_cpu() && dtype == DType::BF16).then(bf16::Kernel::select);
        let act_dtype = if pack.is_some() { DType::F32 } else { dtype };
        // Packing keeps linear weights as read (float32 or bf16, see `weights::load_as`).
        let tensors = tensors
            .into_iter()
            .map(|(k, t)| {
                let keep = pack.is_some() && weights::is_linear_weight(&k);
                Ok((k, if keep { t } else { t.to_dtype(act_dtype)? }))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        let store = RefCell::new(tensors);
        let m = &config.model;
        let vision = VisionTransformer::new(
            &m.vision,
            m.activation,
            Params::new(&store, pack).pp("visual"),
        )
        .context("building the image tower")?;
        let text = TextTransformer::new(&m.text, m.activation, Params::new(&store, pack))
            .context("building the text tower")?;
        let dtype = act_dtype;
        Ok(Self {
            config,
            vision,
            text,
            logit_scale,
            device: device.clone(),
            dtype,
            bf16_kernel: pack,
        })
    }

    /// `pixels`: [B, 3, S, S] as made by `image::preprocess`; returns [B, embed_dim].
    pub fn encode_images(&self, pixels: &Tensor) -> Result<Tensor> {
        let pixels = pixels.to_device(&self.device)?.to_dtype(self.dtype)?;
        Ok(self.vision.forward(&pixels)?.to_dtype(DType::F32)?)
    }

    /// `ids`: rows of `context_length` ids from `text::Tokenizer`; returns [N, embed_dim].
    pub fn encode_texts(&self, ids: &[Vec<u32>]) -> Result<Tensor> {
        Ok(self.text.forward(ids, &self.device)?.to_dtype(DType::F32)?)
    }

    pub fn vision(&self) -> &VisionTransformer {
        &self.vision
    }

    pub fn logit_scale(&self) -> f32 {
        self.logit_scale
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The name of the CPU bf16 GEMM kernel the linear layers run on, if they do.
    pub fn bf16_kernel(&self) -> Option<&'static str> {
        self.bf16_kernel.map(|k| k.name)
    }
}
