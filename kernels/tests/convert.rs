//! The f32 ↔ bf16/f16 conversions on every path, bit for bit against `half`: every 16-bit
//! pattern, the rounding and overflow edges, random bit patterns; bit-identical results for 1
//! and 2 threads.

mod common;

use cloze_kernels::convert;
use common::{
    cases, for_each_isa, parallel_inputs, same_bits_across_threads, AWKWARD, CONVERT_SPECIAL_BITS,
    PARALLEL_LEN,
};
use half::{bf16, f16};
use proptest::prelude::*;

fn check_convert(bits: &[u32]) {
    let x: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
    let want_b: Vec<u16> = x.iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
    let want_h: Vec<u16> = x.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    for_each_isa(|isa| {
        let mut b = vec![bf16::ZERO; x.len()];
        convert::f32_to_bf16_with(isa, &x, &mut b);
        let got: Vec<u16> = b.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want_b, "f32_to_bf16 [{isa}]");
        let mut h = vec![f16::ZERO; x.len()];
        convert::f32_to_f16_with(isa, &x, &mut h);
        let got: Vec<u16> = h.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want_h, "f32_to_f16 [{isa}]");
    });
}

#[test]
fn conversions_all_16bit_patterns_to_f32() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let b: Vec<bf16> = all.iter().map(|&v| bf16::from_bits(v)).collect();
    let h: Vec<f16> = all.iter().map(|&v| f16::from_bits(v)).collect();
    let want_b: Vec<u32> = b.iter().map(|v| v.to_f32().to_bits()).collect();
    let want_h: Vec<u32> = h.iter().map(|v| v.to_f32().to_bits()).collect();
    for_each_isa(|isa| {
        for len in [all.len(), 33, 7] {
            let mut y = vec![0.0f32; len];
            convert::bf16_to_f32_with(isa, &b[..len], &mut y);
            assert_eq!(common::bits(&y), want_b[..len], "bf16_to_f32 [{isa}]");
            convert::f16_to_f32_with(isa, &h[..len], &mut y);
            assert_eq!(common::bits(&y), want_h[..len], "f16_to_f32 [{isa}]");
        }
    });
}

#[test]
fn conversions_special_values() {
    // The special patterns, padded with 1.0 to each awkward length.
    for n in AWKWARD {
        let mut v = CONVERT_SPECIAL_BITS.to_vec();
        v.resize(n.max(v.len()), 0x3F80_0000);
        check_convert(&v);
    }
}

proptest! {
    #![proptest_config(cases(64))]
    #[test]
    fn conversions_random_bits(bits in proptest::collection::vec(any::<u32>(), 1..300)) {
        check_convert(&bits);
    }
}

#[test]
fn one_and_two_threads_bit_identical() {
    let n = PARALLEL_LEN;
    let (_, [x]) = parallel_inputs(n);
    for_each_isa(|isa| {
        same_bits_across_threads(&format!("convert {isa}"), || {
            let mut b = vec![bf16::ZERO; n];
            convert::f32_to_bf16_with(isa, &x, &mut b);
            let mut h = vec![f16::ZERO; n];
            convert::f32_to_f16_with(isa, &x, &mut h);
            b.iter()
                .map(|v| v.to_f32())
                .chain(h.iter().map(|v| v.to_f32()))
                .collect::<Vec<f32>>()
        });
    });
}
