//! Device selection. CUDA is compiled in only with the `cuda` feature, and even then it is
//! probed (libcuda loadable, at least one device) before burn touches it: burn's CUDA runtime
//! panics on first use when the driver is missing, and a host process must get an error instead.

use crate::error::{Error, Result};

/// Where a model runs: the CPU, or CUDA GPU number N.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(usize),
}

impl Device {
    /// Parses a device name as users write it: `cpu`, `cuda` (device 0) or `cuda:N`.
    pub fn parse(name: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument(format!("unknown device '{name}': use cpu, cuda or cuda:N"));
        match name.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            other => {
                let idx = other.strip_prefix("cuda:").ok_or_else(bad)?;
                Ok(Device::Cuda(idx.parse().map_err(|_| bad())?))
            }
        }
    }

    /// Whether this device can be used here: the CPU always; CUDA only in a build with the
    /// `cuda` feature, with the driver loaded and the device present.
    pub fn check(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(index) => {
                let n = cuda_device_count()?;
                if index >= n {
                    return Err(Error::Unsupported(format!("CUDA device {index} requested, the driver reports {n}")));
                }
                Ok(())
            }
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// burn's CUDA backend (kernels compiled at run time through NVRTC; the driver is loaded
/// dynamically, so the build needs neither a GPU nor the CUDA toolkit).
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda;
/// CUDA backend with automatic differentiation, for training on a GPU.
#[cfg(feature = "cuda")]
pub type CudaTrainBackend = burn::backend::Autodiff<CudaBackend>;

/// The CUDA device `index`, after checking that the driver is present and has that device.
#[cfg(feature = "cuda")]
pub fn cuda_device(index: usize) -> Result<burn::backend::cuda::CudaDevice> {
    Device::Cuda(index).check()?;
    Ok(burn::backend::cuda::CudaDevice::new(index))
}

/// Whether this build was compiled with CUDA support.
pub const fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}

/// Number of CUDA devices the driver reports, or why none can be used.
pub fn cuda_device_count() -> Result<usize> {
    if !cuda_compiled() {
        return Err(Error::Unsupported(
            "this build of lediflow has no CUDA support (build with --features cuda)".into(),
        ));
    }
    probe_driver()
}

fn probe_driver() -> Result<usize> {
    // SAFETY: dlopen/dlsym with valid C strings; the function pointer types match the CUDA
    // driver API (CUresult cuInit(unsigned), CUresult cuDeviceGetCount(int*)).
    unsafe {
        let mut handle = std::ptr::null_mut();
        for name in [c"libcuda.so.1", c"libcuda.so"] {
            handle = libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if !handle.is_null() {
                break;
            }
        }
        if handle.is_null() {
            return Err(Error::Unsupported(
                "CUDA requested but the NVIDIA driver (libcuda.so.1) is not installed".into(),
            ));
        }
        let init = libc::dlsym(handle, c"cuInit".as_ptr());
        let count = libc::dlsym(handle, c"cuDeviceGetCount".as_ptr());
        if init.is_null() || count.is_null() {
            libc::dlclose(handle);
            return Err(Error::Unsupported("libcuda.so.1 lacks cuInit/cuDeviceGetCount".into()));
        }
        let init: extern "C" fn(u32) -> i32 = std::mem::transmute(init);
        let count: extern "C" fn(*mut i32) -> i32 = std::mem::transmute(count);
        let rc = init(0);
        if rc != 0 {
            libc::dlclose(handle);
            return Err(Error::Unsupported(format!(
                "CUDA driver failed to initialise (cuInit error {rc}): no usable GPU"
            )));
        }
        let mut n = 0i32;
        let rc = count(&mut n);
        // The driver stays loaded: burn's CUDA runtime will load it again anyway.
        if rc != 0 || n <= 0 {
            return Err(Error::Unsupported(format!("CUDA driver reports no devices (error {rc}, count {n})")));
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse() {
        assert_eq!(Device::parse("cpu").unwrap(), Device::Cpu);
        assert_eq!(Device::parse("CUDA").unwrap(), Device::Cuda(0));
        assert_eq!(Device::parse("cuda:3").unwrap(), Device::Cuda(3));
        for bad in ["", "tpu", "cuda:", "cuda:x", "cuda:-1"] {
            assert!(Device::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cuda_probe_never_panics() {
        // Without a GPU (CI) this is an Unsupported error; with one, a positive count.
        match super::cuda_device_count() {
            Ok(n) => assert!(n > 0),
            Err(e) => assert!(matches!(e, crate::Error::Unsupported(_)), "{e}"),
        }
    }
}
