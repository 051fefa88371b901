//! Choosing the compute device.

use anyhow::{Context, Result};
use burn::tensor::{Device, DeviceKind};
use kdlens::simd;

use crate::cli::DeviceArg;

/// Makes the choice the process default as well (burn materialises some state, e.g. optimizer
/// records, on the default device). Called first thing in `main`, before any thread exists.
pub fn set_process_default(arg: DeviceArg) {
    if std::env::var_os("BURN_DEVICE").is_none() {
        let name = match arg {
            DeviceArg::Flex => "flex",
            DeviceArg::Wgpu => "wgpu",
        };
        // SAFETY: called at the start of `main`, before any other thread is spawned, so no
        // other code can be reading the environment concurrently.
        unsafe { std::env::set_var("BURN_DEVICE", name) };
    }
}

/// The device for `arg`; for wgpu, the GPU is acquired now so that a machine without one fails
/// with a clear message instead of later.
pub fn select(arg: DeviceArg) -> Result<Device> {
    match arg {
        DeviceArg::Flex => Ok(Device::flex()),
        DeviceArg::Wgpu => Device::wgpu_options().init().context(
            "no usable GPU adapter for --device wgpu (needs Vulkan, Metal or DX12 drivers); \
             use --device flex to run on the CPU",
        ),
    }
}

/// A short name of the device for reports; on the CPU with the vector unit its kernels use.
pub fn describe(arg: DeviceArg) -> String {
    match arg {
        DeviceArg::Flex => format!("flex (CPU, {} kernels)", simd::active()),
        DeviceArg::Wgpu => "wgpu (GPU)".into(),
    }
}

/// Refuses a `KDLENS_SIMD` that names no vector unit of this CPU's architecture (one the CPU
/// lacks is capped at the fastest it has).
pub fn check_simd_request() -> Result<()> {
    simd::requested()
        .map(|_| ())
        .context("the environment variable selects the CPU kernels' vector unit")
}

/// The devices of `count` training replicas: the CPU device repeated (one per core) on
/// `flex`; on `wgpu`, the main GPU and then the next discrete GPUs.
pub fn replicas(arg: DeviceArg, main: &Device, count: usize) -> Result<Vec<Device>> {
    match arg {
        DeviceArg::Flex => Ok(vec![main.clone(); count.max(1)]),
        DeviceArg::Wgpu => {
            let mut devices = vec![main.clone()];
            for index in 1..count {
                let device = Device::wgpu_options()
                    .device_kind(DeviceKind::DiscreteGpu(index))
                    .init()
                    .with_context(|| format!("--replicas {count}: GPU {index} is not available"))?;
                devices.push(device);
            }
            Ok(devices)
        }
    }
}
