//! f32 ↔ bf16 / f16 conversions (round to nearest even), through `half`.

use half::{bf16, f16};

/// Converts f32 to bf16.
pub fn f32_to_bf16(src: &[f32], dst: &mut [bf16]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "f32_to_bf16: {} → {} elements",
        src.len(),
        dst.len()
    );
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = bf16::from_f32(s);
    }
}

/// Converts bf16 to f32 (exact).
pub fn bf16_to_f32(src: &[bf16], dst: &mut [f32]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "bf16_to_f32: {} → {} elements",
        src.len(),
        dst.len()
    );
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

/// Converts f32 to f16.
pub fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "f32_to_f16: {} → {} elements",
        src.len(),
        dst.len()
    );
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16::from_f32(s);
    }
}

/// Converts f16 to f32 (exact).
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "f16_to_f32: {} → {} elements",
        src.len(),
        dst.len()
    );
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}
