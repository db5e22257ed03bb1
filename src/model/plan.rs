//! Model (plan): the model a run will use, known before its weights are read — its files
//! (resolved in the cache or a directory), its config, the device and the dtype. Commands
//! check everything they can against the plan (a resumed output's record, a probe's model,
//! truth classes, prompts) and only then `load` the weights, so a mistake costs no loading.

use super::{config::OpenClipConfig, weights, Clip};
use crate::cli::{Config, DeviceChoice, DtypeChoice};
use crate::printer::Printer;
use crate::source::{convert, resolve, ModelFiles};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

pub struct Plan {
    pub files: ModelFiles,
    pub config: OpenClipConfig,
    pub device: Device,
    pub dtype: DType,
    printer: Printer,
}

impl Plan {
    pub fn new(config: &Config, printer: &Printer) -> Result<Self> {
        let device = select_device(&config.device, printer)?;
        let files = resolve(&config.model, printer)?;
        printer.detail(format_args!(
            "model {} (commit {}): {}",
            files.id,
            files.commit.as_deref().unwrap_or("local"),
            files.weights.display()
        ));
        files.start_identity();
        let model_config = OpenClipConfig::from_file(&files.config)?;
        let dtype = select_dtype(config.dtype, &device, printer);
        Ok(Self {
            files,
            config: model_config,
            device,
            dtype,
            printer: printer.clone(),
        })
    }

    /// Reads and checks the weights and builds the model.
    pub fn load(&self) -> Result<Clip> {
        let start = Instant::now();
        let linear_bf16 = self.device.is_cpu() && self.dtype == DType::BF16;
        let tensors = read_weights(
            &self.files.weights,
            &self.config,
            &self.device,
            linear_bf16,
            &self.printer,
        )?;
        let model = Clip::from_tensors_in(self.config.clone(), tensors, &self.device, self.dtype)?;
        if let Some(kernel) = model.bf16_kernel() {
            self.printer.detail(format_args!(
                "bf16 on the CPU: linear layers on the {kernel} kernel (bf16 weights, float32 \
                 activations, LayerNorm and softmax)"
            ));
            if kernel != "avx512-bf16" {
                self.printer.note(
                    "this CPU has no bf16 dot-product instructions (AVX512-BF16): --dtype bf16 \
                     widens the weights to float32 and runs slower than the default float32",
                );
            }
        }
        self.printer.detail(format_args!(
            "model loaded in {:.2} s ({:?}, {:?})",
            start.elapsed().as_secs_f64(),
            self.device,
            self.dtype
        ));
        Ok(model)
    }
}

/// `auto` takes GPU 0 when this build has CUDA and a GPU answers, else the CPU.
fn select_device(choice: &DeviceChoice, printer: &Printer) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto if !candle_core::utils::cuda_is_available() => Ok(Device::Cpu),
        DeviceChoice::Auto => match new_cuda(0) {
            Ok(d) => Ok(d),
            Err(e) => {
                printer.detail(format_args!("no usable GPU ({e}); running on the CPU"));
                Ok(Device::Cpu)
            }
        },
        DeviceChoice::Cuda(_) if !candle_core::utils::cuda_is_available() => bail!(
            "--device cuda: this whyxray was built without CUDA support (CPU only); rebuild \
             with `cargo build --release --features cuda`, or use --device cpu or auto"
        ),
        DeviceChoice::Cuda(n) => {
            new_cuda(*n).with_context(|| format!("--device cuda:{n}: no usable CUDA device {n}"))
        }
    }
}

/// GPU `n`. cudarc opens the driver, cuBLAS and cuRAND on first use and panics when one
/// cannot be opened (a CUDA build on a machine without the NVIDIA driver, or without the CUDA
/// libraries on the library path): that becomes an error naming what is missing.
fn new_cuda(n: usize) -> Result<Device> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let made = std::panic::catch_unwind(|| Device::new_cuda(n));
    std::panic::set_hook(hook);
    match made {
        Ok(device) => Ok(device?),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            bail!("{}", missing_cuda_library(&why))
        }
    }
}

/// What to tell the user for cudarc's panic `why`. Its "Unable to dynamically load the "X"
/// shared library - searched for library names: [two dozen names]" becomes the one file that
/// matters and where it comes from.
fn missing_cuda_library(why: &str) -> String {
    const LOAD: &str = "Unable to dynamically load the \"";
    let lib = why
        .strip_prefix(LOAD)
        .and_then(|rest| rest.split_once('"'))
        .map(|(lib, _)| lib);
    match lib {
        Some("cuda") => "cannot open the NVIDIA driver's library libcuda.so.1: is the NVIDIA \
                         driver installed (does `nvidia-smi` work)? Use --device cpu to run \
                         without a GPU"
            .to_string(),
        Some(lib) => format!(
            "cannot open lib{lib}.so (CUDA 13): put the folder that holds it on LD_LIBRARY_PATH \
             (a CUDA 13 toolkit's lib64, or the nvidia/cu13/lib folder of a PyTorch \
             installation)"
        ),
        None if why.starts_with("Missing symbol") => format!(
            "a CUDA library lacks a function whyxray needs ({why}): a driver or library older \
             than CUDA 13 on the library path?"
        ),
        None => format!(
            "the CUDA libraries could not be loaded: {why}. The NVIDIA driver (libcuda.so.1) \
             must be installed, and libcublas and libcurand (CUDA 13) on the library path \
             (LD_LIBRARY_PATH)"
        ),
    }
}

/// `--dtype`, else bf16 on a GPU and f32 on the CPU. candle's bf16 kernels need compute
/// capability 8.0 (Ampere); on older GPUs the default falls back to f16.
fn select_dtype(choice: Option<DtypeChoice>, device: &Device, printer: &Printer) -> DType {
    match choice {
        Some(DtypeChoice::F32) => DType::F32,
        Some(DtypeChoice::F16) => DType::F16,
        Some(DtypeChoice::Bf16) => DType::BF16,
        None if device.is_cuda() => {
            let bf16_works = Tensor::zeros(1, DType::F32, device)
                .and_then(|t| t.to_dtype(DType::BF16))
                .and_then(|t| t.to_dtype(DType::F32))
                .is_ok();
            if bf16_works {
                DType::BF16
            } else {
                printer.note("this GPU has no bfloat16 kernels: using --dtype f16");
                DType::F16
            }
        }
        None => DType::F32,
    }
}

/// The checked state dict; a `.bin` is read through its converted safetensors copy when the
/// cache has one, and converted for next time when it does not.
fn read_weights(
    path: &Path,
    cfg: &OpenClipConfig,
    device: &Device,
    linear_bf16: bool,
    printer: &Printer,
) -> Result<HashMap<String, Tensor>> {
    let is_bin = path.extension().is_some_and(|e| e != "safetensors");
    let converted = if is_bin {
        convert::converted_path(path)
    } else {
        None
    };
    if let Some(c) = converted.as_ref().filter(|c| c.is_file()) {
        match weights::load_as(c, &cfg.model, device, linear_bf16) {
            Ok(t) => return Ok(t),
            Err(e) => printer.warn(format_args!(
                "ignoring converted weights {}: {e:#}",
                c.display()
            )),
        }
    }
    let tensors = weights::load_as(path, &cfg.model, device, linear_bf16 && !is_bin)?;
    if let Some(c) = converted {
        match convert::save(&tensors, &c) {
            Ok(()) => printer.detail(format_args!(
                "converted {} to {}",
                path.display(),
                c.display()
            )),
            Err(e) => printer.warn(format_args!("could not cache converted weights: {e:#}")),
        }
    }
    if linear_bf16 {
        return weights::narrow_linear(tensors);
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::missing_cuda_library;

    #[test]
    fn a_cuda_library_that_cannot_be_opened_is_named_in_one_line() {
        // cudarc 0.19's panic (dynamic-loading), shortened list.
        let panic = |lib: &str| {
            format!(
                "Unable to dynamically load the \"{lib}\" shared library - searched for library \
                 names: [\"lib{lib}.so\", \"lib{lib}64.so\", \"lib{lib}.so.13\"]. Ensure that \
                 `LD_LIBRARY_PATH` has the correct path to the installed library."
            )
        };
        let driver = missing_cuda_library(&panic("cuda"));
        assert!(
            driver.contains("libcuda.so.1") && driver.contains("NVIDIA driver"),
            "{driver}"
        );
        assert!(
            !driver.contains("libcuda64.so"),
            "the candidate list is dropped: {driver}"
        );
        let cublas = missing_cuda_library(&panic("cublasLt"));
        assert!(
            cublas.starts_with("cannot open libcublasLt.so (CUDA 13)"),
            "{cublas}"
        );
        assert!(cublas.contains("LD_LIBRARY_PATH"), "{cublas}");
        assert!(!cublas.contains("searched"), "{cublas}");
        let old = missing_cuda_library("Missing symbol cuMemAllocAsync: undefined symbol");
        assert!(
            old.contains("cuMemAllocAsync") && old.contains("older"),
            "{old}"
        );
        // Any other panic is passed on whole.
        let other = missing_cuda_library("something else");
        assert!(
            other.contains("could not be loaded: something else"),
            "{other}"
        );
    }
}
