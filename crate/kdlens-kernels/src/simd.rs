//! The vector unit the kernels run on: chosen once per process from the CPU's features, capped
//! by the `KDLENS_SIMD` environment variable, and passed explicitly to every kernel so that the
//! tests can run each path a machine has against the definition.

use std::sync::OnceLock;

/// The environment variable that forces a lower path: `avx512`, `avx2`, `neon`, `simd128` or
/// `scalar`.
pub const ENV: &str = "KDLENS_SIMD";

/// A vector instruction set the kernels have a path for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// Plain loops compiled for the target's baseline (SSE2 on x86-64, NEON on aarch64): the
    /// reference every other path is tested against.
    Scalar,
    /// WebAssembly's 128-bit SIMD (the page's build enables it at compile time).
    Simd128,
    /// ARM's Advanced SIMD on aarch64: 32 registers of 4 lanes.
    Neon,
    /// x86-64-v3: AVX2 with fused multiply-add, 16 registers of 8 lanes.
    Avx2,
    /// AVX-512F: 32 registers of 16 lanes, with masks.
    Avx512,
}

/// `KDLENS_SIMD` names no path, or one of another architecture.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{ENV}={requested:?}: {reason}; this CPU has {}",
    available().iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
)]
pub struct SimdError {
    requested: String,
    reason: &'static str,
}

impl Path {
    /// Every path, fastest first within each architecture.
    pub const ALL: [Path; 5] = [
        Path::Avx512,
        Path::Avx2,
        Path::Neon,
        Path::Simd128,
        Path::Scalar,
    ];

    /// The name `KDLENS_SIMD` and the logs use.
    pub fn name(self) -> &'static str {
        match self {
            Path::Scalar => "scalar",
            Path::Simd128 => "simd128",
            Path::Neon => "neon",
            Path::Avx2 => "avx2",
            Path::Avx512 => "avx512",
        }
    }

    /// The path called `name`, if any.
    pub fn from_name(name: &str) -> Option<Path> {
        Path::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether this build targets the path's architecture.
    fn is_of_this_architecture(self) -> bool {
        match self {
            Path::Scalar => true,
            Path::Avx512 | Path::Avx2 => cfg!(target_arch = "x86_64"),
            Path::Neon => cfg!(target_arch = "aarch64"),
            Path::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
        }
    }

    /// Whether this CPU runs the path.
    pub fn is_supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            // NEON is part of the aarch64 baseline, simd128 is enabled at compile time.
            other => other.is_of_this_architecture(),
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The paths this CPU runs, fastest first (always ending with [`Path::Scalar`]).
pub fn available() -> Vec<Path> {
    Path::ALL.into_iter().filter(|p| p.is_supported()).collect()
}

/// The path `requested` names (`None`: the fastest), capped at what this CPU has: a path of this
/// architecture the CPU lacks gives the fastest it has.
///
/// # Errors
/// If `requested` names no path, or one of another architecture.
pub fn choose(requested: Option<&str>) -> Result<Path, SimdError> {
    let fastest = available()[0];
    let Some(requested) = requested else {
        return Ok(fastest);
    };
    let error = |reason| SimdError {
        requested: requested.to_owned(),
        reason,
    };
    let path = Path::from_name(requested.trim())
        .ok_or_else(|| error("not a path (avx512, avx2, neon, simd128 or scalar)"))?;
    if !path.is_of_this_architecture() {
        return Err(error("a path of another architecture"));
    }
    Ok(if path.is_supported() { path } else { fastest })
}

/// The path `KDLENS_SIMD` asks for, capped at what the CPU has (see [`choose`]).
///
/// # Errors
/// As [`choose`]. Programs call this once at start-up to report a mistyped value; the kernels
/// themselves use [`active`].
pub fn requested() -> Result<Path, SimdError> {
    choose(std::env::var(ENV).ok().as_deref())
}

/// The path every kernel runs on in this process: [`requested`], or the fastest when
/// `KDLENS_SIMD` is invalid. Chosen on the first call.
pub fn active() -> Path {
    static ACTIVE: OnceLock<Path> = OnceLock::new();
    *ACTIVE.get_or_init(|| requested().unwrap_or_else(|_| available()[0]))
}

/// Defines `fn $name(path: Path, args…)` whose body is compiled once per x86-64 path (AVX-512,
/// AVX2 + FMA, baseline) so that the loops in it are vectorised for the unit `path` names; on
/// other architectures (NEON is the aarch64 baseline, simd128 a compile-time feature) there is
/// one copy. The body runs in an `#[inline(always)]` function so that it, and every
/// `#[inline(always)]` helper it calls, is compiled inside each `#[target_feature]` copy.
///
/// Plain loops rather than a SIMD abstraction such as `pulp`: these loops (transforms, copies,
/// per-channel epilogues) are what the compiler vectorises well once told the instruction set,
/// and the same macro serves every target including wasm32, which `pulp` does not cover.
macro_rules! per_path {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($path:ident: Path $(, $arg:ident: $ty:ty)* $(,)?) $(-> $ret:ty)?
        $body:block
    ) => {
        $(#[$meta])*
        $vis fn $name($path: $crate::simd::Path $(, $arg: $ty)*) $(-> $ret)? {
            #[inline(always)]
            #[allow(unused_variables)]
            fn body($path: $crate::simd::Path $(, $arg: $ty)*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            fn avx512($path: $crate::simd::Path $(, $arg: $ty)*) $(-> $ret)? {
                body($path $(, $arg)*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($path: $crate::simd::Path $(, $arg: $ty)*) $(-> $ret)? {
                body($path $(, $arg)*)
            }

            match $path {
                // SAFETY: a path is only ever chosen, or tested, on a CPU that has it
                // (`Path::is_supported`).
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Path::Avx512 => unsafe { avx512($path $(, $arg)*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Path::Avx2 => unsafe { avx2($path $(, $arg)*) },
                _ => body($path $(, $arg)*),
            }
        }
    };
}
pub(crate) use per_path;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_machine_has_the_scalar_path_last() {
        let paths = available();
        assert_eq!(paths.last(), Some(&Path::Scalar));
        assert_eq!(choose(Some("scalar")), Ok(Path::Scalar));
        assert_eq!(choose(None), Ok(paths[0]));
    }

    #[test]
    fn a_path_the_cpu_lacks_is_capped_and_a_foreign_or_unknown_one_refused() {
        for path in Path::ALL {
            let chosen = choose(Some(path.name()));
            if path.is_supported() {
                assert_eq!(chosen, Ok(path));
            } else if path.is_of_this_architecture() {
                assert_eq!(chosen, Ok(available()[0]), "{path} is capped");
            } else {
                let message = chosen.expect_err("a foreign path is refused").to_string();
                assert!(message.contains("another architecture"), "{message}");
                assert!(
                    message.contains("scalar"),
                    "names what the CPU has: {message}"
                );
            }
        }
        let message = choose(Some("avx3")).expect_err("unknown").to_string();
        assert!(
            message.starts_with("KDLENS_SIMD=\"avx3\": not a path"),
            "{message}"
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_has_avx2_wherever_it_has_avx512() {
        // Every AVX-512 CPU has AVX2 and FMA, so an AVX-512 machine tests three paths.
        if Path::Avx512.is_supported() {
            assert_eq!(available(), [Path::Avx512, Path::Avx2, Path::Scalar]);
        }
    }
}
