//! Weights: the open_clip state dict from `.safetensors` or PyTorch's zip `.bin`
//! (read by candle's restricted unpickler, which builds tensors and never runs code), checked
//! name by name and shape by shape against what the config needs, as `load_state_dict(strict=True)`.

use super::config::ModelConfig;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The tensors a plain open_clip ViT `CLIP` state dict holds, with their torch shapes.
pub fn expected_shapes(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (v, t) = (&cfg.vision, &cfg.text);
    let mut out = vec![
        (
            "visual.conv1.weight".into(),
            vec![v.width, 3, v.patch_size, v.patch_size],
        ),
        ("visual.class_embedding".into(), vec![v.width]),
        (
            "visual.positional_embedding".into(),
            vec![v.grid() * v.grid() + 1, v.width],
        ),
        ("visual.ln_pre.weight".into(), vec![v.width]),
        ("visual.ln_pre.bias".into(), vec![v.width]),
        ("visual.ln_post.weight".into(), vec![v.width]),
        ("visual.ln_post.bias".into(), vec![v.width]),
        ("visual.proj".into(), vec![v.width, cfg.embed_dim]),
        ("token_embedding.weight".into(), vec![t.vocab_size, t.width]),
        (
            "positional_embedding".into(),
            vec![t.context_length, t.width],
        ),
        ("ln_final.weight".into(), vec![t.width]),
        ("ln_final.bias".into(), vec![t.width]),
        ("text_projection".into(), vec![t.width, cfg.embed_dim]),
        ("logit_scale".into(), vec![]),
    ];
    for i in 0..v.layers {
        out.extend(block_shapes(
            &format!("visual.transformer.resblocks.{i}"),
            v.width,
            v.mlp_width,
        ));
    }
    for i in 0..t.layers {
        out.extend(block_shapes(
            &format!("transformer.resblocks.{i}"),
            t.width,
            t.mlp_width,
        ));
    }
    out
}

fn block_shapes(p: &str, d: usize, mlp: usize) -> Vec<(String, Vec<usize>)> {
    [
        ("ln_1.weight", vec![d]),
        ("ln_1.bias", vec![d]),
        ("attn.in_proj_weight", vec![3 * d, d]),
        ("attn.in_proj_bias", vec![3 * d]),
        ("attn.out_proj.weight", vec![d, d]),
        ("attn.out_proj.bias", vec![d]),
        ("ln_2.weight", vec![d]),
        ("ln_2.bias", vec![d]),
        ("mlp.c_fc.weight", vec![mlp, d]),
        ("mlp.c_fc.bias", vec![mlp]),
        ("mlp.c_proj.weight", vec![d, mlp]),
        ("mlp.c_proj.bias", vec![d]),
    ]
    .into_iter()
    .map(|(k, s)| (format!("{p}.{k}"), s))
    .collect()
}

/// Reads the state dict, normalised as open_clip's `load_checkpoint` does, and checks it.
pub fn load(path: &Path, cfg: &ModelConfig, device: &Device) -> Result<HashMap<String, Tensor>> {
    load_as(path, cfg, device, false)
}

/// As `load`; with `linear_bf16`, the linear layers' weights are kept as bf16 as each is read
/// (for the CPU's bf16 GEMM, which packs them), so float32 copies of them are never all
/// resident at once: a bf16 ViT-L/14 loads in about half the memory.
pub fn load_as(
    path: &Path,
    cfg: &ModelConfig,
    device: &Device,
    linear_bf16: bool,
) -> Result<HashMap<String, Tensor>> {
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    // Names and shapes are checked from the file's index before any tensor data is read, so
    // a wrong or huge file fails at once instead of after loading gigabytes.
    let tensors = if is_safetensors {
        read_safetensors(path, device, cfg, linear_bf16)
    } else {
        read_pickle(path, cfg)
    }
    .with_context(|| format!("cannot read weights {}", path.display()))?;
    normalise(tensors, linear_bf16)
}

/// The `nn.Linear` weights of the blocks (what `Params::take_linear` takes).
pub fn is_linear_weight(name: &str) -> bool {
    [
        "attn.in_proj_weight",
        "attn.out_proj.weight",
        "mlp.c_fc.weight",
        "mlp.c_proj.weight",
    ]
    .iter()
    .any(|s| name.ends_with(s))
}

/// The dtype a tensor is kept in: float32, or bf16 for a linear weight under `linear_bf16`.
fn kept_dtype(name: &str, linear_bf16: bool) -> DType {
    if linear_bf16 && is_linear_weight(name) {
        DType::BF16
    } else {
        DType::F32
    }
}

/// A state dict read as float32 (the `.bin` path, which caches its float32 conversion first)
/// with its linear weights narrowed as `load_as` does.
pub fn narrow_linear(tensors: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    tensors
        .into_iter()
        .map(|(k, t)| {
            let t = t.to_dtype(kept_dtype(&k, true))?;
            Ok((k, t))
        })
        .collect()
}

/// Reads each tensor straight from the file into its own buffer. Not memory-mapped: candle's
/// CPU tensors own their storage, so a mapping would be a second resident copy of the weights
/// (file pages count in RSS while mapped) on top of the tensors made from it.
fn read_safetensors(
    path: &Path,
    device: &Device,
    cfg: &ModelConfig,
    linear_bf16: bool,
) -> Result<Vec<(String, Tensor)>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let mut len = [0u8; 8];
    file.read_exact_at(&mut len, 0)
        .context("no safetensors header")?;
    let header_len = usize::try_from(u64::from_le_bytes(len)).context("header length")?;
    if header_len > 100 << 20 {
        bail!("safetensors header of {header_len} bytes: not a safetensors file");
    }
    let mut header = vec![0u8; header_len];
    file.read_exact_at(&mut header, 8)
        .context("truncated safetensors header")?;
    let meta: safetensors::tensor::Metadata =
        serde_json::from_slice(&header).context("invalid safetensors header")?;
    let mut index: Vec<(String, Vec<usize>, usize)> = meta
        .tensors()
        .into_iter()
        .map(|(n, i)| (n, i.shape.clone(), i.data_offsets.0))
        .collect();
    index.sort_by_key(|(_, _, offset)| *offset);
    check(
        index
            .iter()
            .map(|(n, shape, _)| (n.as_str(), shape.as_slice())),
        cfg,
    )?;
    let data_start = 8 + header_len as u64;
    let file_len = file.metadata()?.len();
    let infos = meta.tensors();
    let mut out = Vec::with_capacity(index.len());
    let mut scratch = Vec::new();
    for (name, _, _) in index {
        let info = infos[&name];
        let (a, b) = info.data_offsets;
        if data_start + b as u64 > file_len || a > b {
            bail!("tensor `{name}` lies beyond the end of the file (truncated download?)");
        }
        let dtype = safetensors_dtype(info.dtype).with_context(|| format!("tensor `{name}`"))?;
        let offset = data_start + a as u64;
        let keep = kept_dtype(&name, linear_bf16);
        let t = if dtype == DType::F32 && keep == DType::BF16 && cfg!(target_endian = "little") {
            read_f32_as_bf16(&file, offset, (b - a) / 4, &mut scratch)
                .and_then(|v| Ok(Tensor::from_vec(v, info.shape.as_slice(), device)?))
        } else if dtype == DType::F32 && cfg!(target_endian = "little") {
            // Straight into the float buffer: no second copy of the tensor.
            let mut v = vec![0f32; (b - a) / 4];
            file.read_exact_at(f32_bytes(&mut v), offset)?;
            Ok(Tensor::from_vec(v, info.shape.as_slice(), device)?)
        } else {
            let mut bytes = vec![0u8; b - a];
            file.read_exact_at(&mut bytes, offset)?;
            Ok(Tensor::from_raw_buffer(&bytes, dtype, &info.shape, device)?)
        }
        .with_context(|| format!("tensor `{name}`"))?;
        let t = if t.dtype() == keep {
            t
        } else {
            t.to_dtype(keep)?
        };
        out.push((name, t));
    }
    Ok(out)
}

/// `n` little-endian float32 values at `offset`, rounded to bf16 as candle's `to_dtype` does,
/// read a slice at a time through `scratch`: no float32 copy of the whole weight is made, so a
/// bf16 load neither holds nor frees one per linear layer (peak RSS, see the README).
fn read_f32_as_bf16(
    file: &std::fs::File,
    offset: u64,
    n: usize,
    scratch: &mut Vec<f32>,
) -> Result<Vec<half::bf16>> {
    use std::os::unix::fs::FileExt;
    const SLICE: usize = 1 << 18; // 1 MiB of float32
    scratch.resize(SLICE.min(n).max(scratch.len()), 0.0);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let part = &mut scratch[..SLICE.min(n - out.len())];
        file.read_exact_at(f32_bytes(part), offset + 4 * out.len() as u64)?;
        out.extend(part.iter().map(|&x| half::bf16::from_f32(x)));
    }
    Ok(out)
}

/// Float32 values as the bytes a little-endian file holds for them, to read into in place.
fn f32_bytes(v: &mut [f32]) -> &mut [u8] {
    // Safety: any bit pattern is a valid f32, and u8 has no alignment requirement.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 4) }
}

fn safetensors_dtype(d: safetensors::Dtype) -> Result<DType> {
    use safetensors::Dtype as S;
    Ok(match d {
        S::F32 => DType::F32,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        S::F64 => DType::F64,
        other => bail!("unsupported dtype {other:?} for a weight"),
    })
}

fn read_pickle(path: &Path, cfg: &ModelConfig) -> Result<Vec<(String, Tensor)>> {
    use candle_core::pickle::{read_pth_tensor_info, PthTensors};
    // Training checkpoints wrap the state dict as {"state_dict": ...}; try the plain layout first.
    let mut key = None;
    let mut infos = read_pth_tensor_info(path, false, None)?;
    if infos.is_empty() {
        key = Some("state_dict");
        infos = read_pth_tensor_info(path, false, key)
            .context("neither a state dict nor a {\"state_dict\": ...} checkpoint")?;
    }
    if infos.is_empty() {
        bail!("no tensors found: not a PyTorch state dict");
    }
    check(
        infos.iter().map(|i| (i.name.as_str(), i.layout.dims())),
        cfg,
    )?;
    let pth = PthTensors::new(path, key)?;
    infos
        .into_iter()
        .map(|info| {
            let t = pth
                .get(&info.name)?
                .with_context(|| format!("tensor `{}` listed but not readable", info.name))?;
            Ok((info.name, t))
        })
        .collect()
}

/// open_clip strips 7 characters from every key when the first one starts with `module`
/// (DDP checkpoints) and accepts `logit_scale` as a 0-d or a 1-element tensor.
fn normalise(tensors: Vec<(String, Tensor)>, linear_bf16: bool) -> Result<HashMap<String, Tensor>> {
    let ddp = tensors
        .first()
        .is_some_and(|(k, _)| k.starts_with("module"));
    let mut out = HashMap::with_capacity(tensors.len());
    for (name, t) in tensors {
        let name = if ddp {
            name.get(7..).unwrap_or_default().to_string()
        } else {
            name
        };
        let t = if name == "logit_scale" && t.elem_count() == 1 {
            t.reshape(())?
        } else {
            t
        };
        let keep = kept_dtype(&name, linear_bf16);
        let t = if t.dtype() == keep {
            t
        } else {
            t.to_dtype(keep)?
        };
        if out.insert(name.clone(), t).is_some() {
            bail!("tensor `{name}` appears twice");
        }
    }
    Ok(out)
}

/// Every tensor the config needs, with its shape, and nothing else (`strict=True`), judged
/// from (name, shape) pairs in file order, with open_clip's key normalisation applied.
fn check<'a>(index: impl Iterator<Item = (&'a str, &'a [usize])>, cfg: &ModelConfig) -> Result<()> {
    let mut index = index.peekable();
    let ddp = index.peek().is_some_and(|(k, _)| k.starts_with("module"));
    let shapes: HashMap<&str, &[usize]> = index
        .map(|(k, shape)| {
            (
                if ddp {
                    k.get(7..).unwrap_or_default()
                } else {
                    k
                },
                shape,
            )
        })
        .collect();
    let expected = expected_shapes(cfg);
    for (name, shape) in &expected {
        let got = *shapes.get(name.as_str()).with_context(|| {
            format!("tensor `{name}` (shape {shape:?}) is missing from the weights")
        })?;
        // open_clip accepts logit_scale as 0-d or with one element.
        let fits = got == shape.as_slice()
            || (name == "logit_scale" && got.iter().product::<usize>() == 1);
        if !fits {
            bail!("tensor `{name}` has shape {got:?} in the weights, the config needs {shape:?}");
        }
    }
    let mut unexpected: Vec<&str> = shapes
        .keys()
        .copied()
        .filter(|k| !expected.iter().any(|(e, _)| e == k))
        .collect();
    if !unexpected.is_empty() {
        unexpected.sort_unstable();
        let n = unexpected.len();
        unexpected.truncate(5);
        bail!(
            "{n} unexpected tensor(s), e.g. `{}`: a different architecture",
            unexpected.join("`, `")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float32_read_slice_by_slice_as_bf16_equals_candles_conversion() {
        // Three slices and a part (the last one short), at an odd offset, with values that
        // round both ways, ties, subnormals, infinities and NaN.
        let n = 3 * (1 << 18) + 1234;
        let mut rng = crate::eval::metrics::Rng::new(0x9e37_79b9_7f4a_7c15);
        let values: Vec<f32> = (0..n)
            .map(|i| match i % 7 {
                0 => f32::from_bits(0x3f80_8000), // a tie: 1 + 2^-8
                1 => f32::from_bits(0x0000_0123), // subnormal
                2 if i % 3 == 0 => [f32::INFINITY, f32::NEG_INFINITY, f32::NAN][i % 9 / 3],
                _ => f32::from_bits(rng.next_u64() as u32),
            })
            .collect();
        let mut file = tempfile::tempfile().unwrap();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::io::Write::write_all(&mut file, &[7u8; 13]).unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();

        let mut scratch = Vec::new();
        let got = read_f32_as_bf16(&file, 13, n, &mut scratch).unwrap();
        let want = Tensor::from_vec(values, n, &Device::Cpu)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap()
            .to_vec1::<half::bf16>()
            .unwrap();
        assert_eq!(got.len(), n);
        let differ = (0..n)
            .filter(|&i| got[i].to_bits() != want[i].to_bits())
            .count();
        assert_eq!(
            differ, 0,
            "{differ} of {n} values differ from candle's to_dtype"
        );
        assert_eq!(scratch.len(), 1 << 18, "one slice of scratch, reused");
    }
}
