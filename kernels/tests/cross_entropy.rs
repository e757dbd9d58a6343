//! The row pipeline of the vector cross-entropy against the f64 scalar reference: row counts
//! 1, 2, 3, 7 (so the first, middle and last pipeline stages all occur, alone and together),
//! awkward widths, ignored rows anywhere, cached and streaming stores at every output
//! alignment, and results independent of the row blocks and the pool size.
use cloze_kernels::cross_entropy::cross_entropy_with;
use cloze_kernels::cross_entropy::hooks::{
    block_rows as ce_block_rows, vector_with as cross_entropy_simd,
};
use cloze_kernels::dispatch::{supported, Isa};
use cloze_kernels::simd;

/// f32 unit roundoff 2⁻²⁴.
const U: f64 = 1.0 / 16_777_216.0;
const WIDTHS: [usize; 11] = [1, 3, 7, 15, 17, 31, 33, 127, 129, 257, 30522];
const IGNORE: i32 = -100;

fn fast() -> Vec<Isa> {
    supported()
        .into_iter()
        .filter(|&i| i != Isa::Scalar)
        .collect()
}

/// Deterministic values in `[lo, hi)` (xorshift32).
fn values(n: usize, seed: u32, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            lo + (hi - lo) * (s >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect()
}

/// Label patterns over `rows` rows of `cols` classes: all counted (labels spread over the
/// row, including 0 and `cols − 1`), alternate rows ignored both ways, first and last
/// ignored, all ignored.
fn label_sets(rows: usize, cols: usize) -> Vec<Vec<i32>> {
    let spread = |r: usize| match r % 4 {
        0 => 0,
        1 => cols - 1,
        2 => cols / 2,
        _ => (r * 997 + 13) % cols,
    } as i32;
    let pick = |ign: &dyn Fn(usize) -> bool| -> Vec<i32> {
        (0..rows)
            .map(|r| if ign(r) { IGNORE } else { spread(r) })
            .collect()
    };
    vec![
        pick(&|_| false),
        pick(&|r| r % 2 == 0),
        pick(&|r| r % 2 == 1),
        pick(&|r| r == 0 || r == rows - 1),
        pick(&|_| true),
    ]
}

/// The vector path `isa` (with `stream` as given, the gradient at element offset `off` of
/// its buffer so every output alignment occurs) against the f64 reference.
fn check(isa: Isa, x: &[f32], cols: usize, labels: &[i32], stream: bool, off: usize) {
    let n = x.len();
    let c = cols as f64;
    let mut d0 = vec![0.0f32; n];
    let want = cross_entropy_with(Isa::Scalar, x, cols, labels, IGNORE, Some(&mut d0));
    let mut buf = vec![f32::NAN; n + off];
    let d = &mut buf[off..];
    let got = cross_entropy_simd(isa, x, cols, labels, IGNORE, Some(d), stream);
    let no_grad = cross_entropy_simd(isa, x, cols, labels, IGNORE, None, false);
    let what = format!(
        "[{isa}] {} rows × {cols}, stream {stream}, offset {off}",
        labels.len()
    );
    assert_eq!(got, no_grad, "{what}: the gradient changed the loss");
    assert_eq!(got.count, want.count, "{what}: count");
    // Per counted row the f32 sum of `cols` exponentials (each within 3 ulp) has relative
    // error ≤ (cols + 8)·U, so its ln is off by at most that much absolutely; plus a few
    // roundings of the loss itself.
    let tol = want.count as f64 * (c + 16.0) * U + 4.0 * U * want.loss_sum.abs();
    assert!(
        (got.loss_sum - want.loss_sum).abs() <= tol,
        "{what}: loss {} vs {} (tol {tol:e})",
        got.loss_sum,
        want.loss_sum
    );
    // Gradient: e^(x−m)/Σ with the same relative error as the sum, plus one rounding of
    // order 1 at the label (ignored rows must be exactly 0).
    for (i, (&g, &w)) in buf[off..].iter().zip(&d0).enumerate() {
        let t = (c + 16.0) * U * (w as f64).abs() + U + 1e-44;
        assert!(
            (g as f64 - w as f64).abs() <= t,
            "{what}: gradient at {i}: got {g:e}, want {w:e} (tol {t:e})"
        );
        if labels[i / cols] == IGNORE {
            assert_eq!(g.to_bits(), 0, "{what}: ignored row {} at {i}", i / cols);
        }
    }
}

#[test]
fn pipeline_rows_and_widths_match_reference() {
    for isa in fast() {
        for (wi, &cols) in WIDTHS.iter().enumerate() {
            for rows in [1, 2, 3, 7] {
                if cols == 30522 && rows == 7 {
                    continue; // the vocabulary width: 1 to 3 rows are enough
                }
                let seed = (wi * 10 + rows) as u32;
                let x = values(rows * cols, seed, -12.0, 12.0);
                for (li, labels) in label_sets(rows, cols).iter().enumerate() {
                    let stream = li % 2 == 1;
                    let off = li * 3 % 16;
                    check(isa, &x, cols, labels, stream, off);
                    check(isa, &x, cols, labels, !stream, (off + 7) % 16);
                }
            }
        }
    }
}

#[test]
fn pipeline_large_and_shifted_logits() {
    // Logits near ±10⁴ (the row maximum must be subtracted) and a row whose label logit is
    // far below its maximum (loss ≈ 60, gradient at the label ≈ −1).
    for isa in fast() {
        for cols in [33, 257, 30522] {
            let mut x = values(3 * cols, 77, -3.0, 3.0);
            x[..cols].iter_mut().for_each(|v| *v += 1e4);
            x[cols..2 * cols].iter_mut().for_each(|v| *v -= 1e4);
            x[2 * cols + 1] = 60.0;
            for stream in [false, true] {
                check(isa, &x, cols, &[5, cols as i32 - 1, 0], stream, 1);
            }
        }
    }
}

#[test]
fn blocks_and_pool_size_give_identical_bits() {
    // 40 vocabulary rows: 1.2M elements, over the parallel threshold, in blocks of
    // `ce_block_rows` (17) rows on 2 threads and one block on 1 thread; ignored rows at and
    // around the block boundaries.
    let cols = 30522;
    let rows = 40;
    let br = ce_block_rows(cols);
    assert!(br < rows && rows * cols >= simd::PAR_MIN_ELEMS);
    let x = values(rows * cols, 5, -8.0, 8.0);
    let labels: Vec<i32> = (0..rows)
        .map(|r| {
            if r % 7 == 3 || r == br - 1 || r == br || r == 2 * br + 1 {
                IGNORE
            } else {
                ((r * 997) % cols) as i32
            }
        })
        .collect();
    let pool = |t: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
    };
    for isa in fast() {
        for stream in [false, true] {
            let run = || {
                let mut d = vec![0.0f32; rows * cols];
                let ce = cross_entropy_simd(isa, &x, cols, &labels, IGNORE, Some(&mut d), stream);
                (ce, d.iter().map(|v| v.to_bits()).collect::<Vec<u32>>())
            };
            let (a, da) = pool(1).install(run);
            let (b, db) = pool(2).install(run);
            assert_eq!(a.loss_sum.to_bits(), b.loss_sum.to_bits(), "[{isa}] loss");
            assert_eq!(a.count, b.count, "[{isa}] count");
            assert!(da == db, "[{isa}] stream {stream}: 1 and 2 threads differ");
            check(isa, &x, cols, &labels, stream, 0);
        }
    }
}
