//! Run-time choice of instruction set.
//!
//! The CPU is probed once. The best path it supports is used unless the environment variable
//! `CLOZE_KERNEL` names one (`scalar`, `portable`, `avx2`, `avx512`, `neon`); naming a path the
//! CPU lacks, or an unknown name, is an error ([`select_from_env`]) and [`active`] panics with
//! that message rather than silently running something else.
//!
//! `portable` uses the `wide` crate, whose instructions are fixed at compile time: on a default
//! x86_64 build that means SSE2 (4 lanes), on aarch64 NEON.

use std::fmt;
use std::sync::OnceLock;

/// An instruction-set path a kernel can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust loops: the reference every other path is tested against.
    Scalar,
    /// `wide` SIMD types (SSE2 on default x86_64 builds, NEON on aarch64).
    Portable,
    /// x86_64 AVX2 + FMA, 8 f32 lanes.
    Avx2,
    /// x86_64 AVX-512F, 16 f32 lanes.
    Avx512,
    /// aarch64 NEON, 4 f32 lanes.
    Neon,
}

impl Isa {
    /// Every path, in order of preference (best last).
    pub const ALL: [Isa; 5] = [
        Isa::Scalar,
        Isa::Portable,
        Isa::Neon,
        Isa::Avx2,
        Isa::Avx512,
    ];

    /// The name used by `CLOZE_KERNEL`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses a `CLOZE_KERNEL` value.
    pub fn parse(s: &str) -> Result<Isa, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Isa::Scalar),
            "portable" | "wide" => Ok(Isa::Portable),
            "avx2" => Ok(Isa::Avx2),
            "avx512" => Ok(Isa::Avx512),
            "neon" => Ok(Isa::Neon),
            other => Err(format!(
                "CLOZE_KERNEL={other:?} is not a kernel path; use one of scalar, portable, avx2, avx512, neon"
            )),
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar | Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every path this CPU supports, worst first.
pub fn supported() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
}

/// The best path this CPU supports.
pub fn best() -> Isa {
    *supported().last().expect("scalar is always supported")
}

/// The path named by `CLOZE_KERNEL`, or the best one when it is unset or empty.
pub fn select_from_env() -> Result<Isa, String> {
    match std::env::var("CLOZE_KERNEL") {
        Ok(v) if !v.trim().is_empty() => {
            let isa = Isa::parse(&v)?;
            if isa.is_supported() {
                Ok(isa)
            } else {
                Err(format!(
                    "CLOZE_KERNEL={} asks for a path this CPU cannot run; supported here: {}",
                    isa,
                    supported()
                        .iter()
                        .map(|i| i.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        }
        _ => Ok(best()),
    }
}

/// The path every kernel uses in this process, chosen once.
///
/// # Panics
/// If `CLOZE_KERNEL` is set to an unknown path or one this CPU lacks. Call
/// [`select_from_env`] first to report that as an error instead.
pub fn active() -> Isa {
    static ACTIVE: OnceLock<Isa> = OnceLock::new();
    *ACTIVE.get_or_init(|| select_from_env().unwrap_or_else(|e| panic!("{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_every_name() {
        for isa in Isa::ALL {
            assert_eq!(Isa::parse(isa.name()).unwrap(), isa);
        }
        let err = Isa::parse("sse9").unwrap_err();
        assert!(err.contains("sse9"), "{err}");
    }

    #[test]
    fn scalar_and_portable_always_supported() {
        assert!(Isa::Scalar.is_supported());
        assert!(Isa::Portable.is_supported());
        assert!(supported().contains(&best()));
    }
}
