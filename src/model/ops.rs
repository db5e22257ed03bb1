//! Numerics the towers need that candle's CPU ops do not give exactly enough: a two-pass
//! LayerNorm (candle computes the variance as E[x^2] - E[x]^2 in float32, which loses digits
//! whenever a row's mean is large against its spread, as in CLIP's residual stream).

use candle_core::{CpuStorage, CustomOp3, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

/// `nn.LayerNorm(width, eps)` with affine weight and bias, over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    pub fn new(width: usize, eps: f32, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(width, "weight")?,
            bias: vb.get(width, "bias")?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() {
            x.contiguous()?.apply_op3_no_bwd(
                &self.weight,
                &self.bias,
                &TwoPassLayerNorm { eps: self.eps },
            )
        } else {
            candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps)
        }
    }
}

struct TwoPassLayerNorm {
    eps: f32,
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("layer norm: {what} must be contiguous float32"),
    }
}

impl CustomOp3 for TwoPassLayerNorm {
    fn name(&self) -> &'static str {
        "two-pass-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (
            f32_slice(s1, l1, "input")?,
            f32_slice(s2, l2, "weight")?,
            f32_slice(s3, l3, "bias")?,
        );
        let n = w.len();
        if n == 0 || b.len() != n || l1.shape().dims().last() != Some(&n) {
            candle_core::bail!("layer norm: width mismatch");
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .for_each(|(o, row)| {
                let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
                let var = row
                    .iter()
                    .map(|&v| (f64::from(v) - mean).powi(2))
                    .sum::<f64>()
                    / n as f64;
                let inv = 1.0 / (var + f64::from(self.eps)).sqrt();
                for (((o, &v), &w), &b) in o.iter_mut().zip(row).zip(w).zip(b) {
                    *o = ((f64::from(v) - mean) * inv) as f32 * w + b;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn keeps_precision_when_the_mean_dwarfs_the_spread() {
        let dev = Device::Cpu;
        let row: Vec<f32> = (0..1024)
            .map(|i| 1000.0 + ((i * 37) % 17) as f32 * 1e-2)
            .collect();
        let x = Tensor::from_vec(row.clone(), (1, 1024), &dev).unwrap();
        let ln = LayerNorm {
            weight: Tensor::ones(1024, candle_core::DType::F32, &dev).unwrap(),
            bias: Tensor::zeros(1024, candle_core::DType::F32, &dev).unwrap(),
            eps: 1e-5,
        };
        let got = ln
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / 1024.0;
        let var = row
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / 1024.0;
        for (g, v) in got.iter().zip(&row) {
            let want = (f64::from(*v) - mean) / (var + 1e-5).sqrt();
            assert!((f64::from(*g) - want).abs() < 1e-4, "{g} vs {want}");
        }
    }
}
