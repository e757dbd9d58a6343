//! LayerNorm (forward, residual forward, backward) on every vector path against the f64 scalar
//! reference, on awkward widths, constant rows and random offsets; bit-identical results for 1
//! and 2 threads and for streamed and cached outputs.

mod common;

use cloze_kernels::dispatch::Isa;
use cloze_kernels::layer_norm;
use common::{
    assert_close, bits, cases, for_each_isa, for_each_vector_isa, parallel_inputs,
    same_bits_across_threads, stream_len, Rng, AWKWARD, PARALLEL_COLS, PARALLEL_ROWS, U,
};
use proptest::prelude::*;

fn check_layer_norm(x: &[f32], res: &[f32], dy: &[f32], cols: usize, eps: f32, seed: u64) {
    let mut r = Rng::new(seed);
    let rows = x.len() / cols;
    let n = x.len();
    let c = cols as f64;
    let g = r.vec(cols, 0.5, 1.5);
    let b = r.vec(cols, -0.5, 0.5);
    let (mut y0, mut m0, mut s0) = (vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
    layer_norm::forward_with(Isa::Scalar, x, &g, &b, eps, &mut y0, &mut m0, &mut s0);
    let (mut dx0, mut dg0, mut db0) = (vec![0.0; n], vec![0.0; cols], vec![0.0; cols]);
    layer_norm::backward_with(
        Isa::Scalar,
        dy,
        x,
        &g,
        &m0,
        &s0,
        &mut dx0,
        &mut dg0,
        &mut db0,
    );
    let (mut sum0, mut ry0, mut rm0, mut rs0) =
        (vec![0.0; n], vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
    layer_norm::residual_forward_with(
        Isa::Scalar,
        x,
        res,
        &g,
        &b,
        eps,
        &mut sum0,
        &mut ry0,
        &mut rm0,
        &mut rs0,
    );
    for_each_vector_isa(|isa| {
        let (mut y, mut m, mut s) = (vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
        layer_norm::forward_with(isa, x, &g, &b, eps, &mut y, &mut m, &mut s);
        // Row statistics in f32 over `cols` terms: mean within (cols + 4)·U·max|x|; the
        // variance's relative error (cols + 8)·U·(1 + μ²/var) (cancellation in x − μ₀), rstd half
        // of it plus 2 roundings.
        for k in 0..rows {
            let xr = &x[k * cols..(k + 1) * cols];
            let amax = xr.iter().fold(0.0f64, |a, &v| a.max(v.abs() as f64));
            let mu = m0[k] as f64;
            let var = 1.0 / (s0[k] as f64).powi(2);
            assert!(
                (m[k] as f64 - mu).abs() <= (c + 4.0) * U * amax + 1e-38,
                "layer_norm mean [{isa}] row {k}: {} vs {mu}",
                m[k]
            );
            let rel = (c + 8.0) * U * (1.0 + mu * mu / var) + 4.0 * U;
            assert!(
                ((s[k] as f64 - s0[k] as f64) / s0[k] as f64).abs() <= rel,
                "layer_norm rstd [{isa}] row {k}: {} vs {}",
                s[k],
                s0[k]
            );
        }
        let ytol = |i: usize| {
            let k = i / cols;
            let j = i % cols;
            let xh = ((x[i] as f64 - m0[k] as f64) * s0[k] as f64).abs();
            let amax = (m0[k] as f64).abs() * s0[k] as f64;
            // x̂ inherits rstd's relative error and the mean's absolute error times rstd.
            let rel = (c + 8.0) * U * (2.0 + m0[k] as f64 * m0[k] as f64 * (s0[k] as f64).powi(2));
            (g[j] as f64) * (xh * rel + (c + 4.0) * U * (amax + xh) + 2.0 * U * xh)
                + 2.0 * U * (y0[i] as f64).abs()
                + 1e-30
        };
        assert_close("layer_norm fwd", isa, &y, &y0, ytol);
        let (mut sum, mut ry, mut rm, mut rs) =
            (vec![0.0; n], vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
        layer_norm::residual_forward_with(
            isa, x, res, &g, &b, eps, &mut sum, &mut ry, &mut rm, &mut rs,
        );
        assert_eq!(sum, sum0, "residual sum [{isa}] (one f32 addition)");
        let (mut y2, mut m2, mut s2) = (vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
        layer_norm::forward_with(isa, &sum, &g, &b, eps, &mut y2, &mut m2, &mut s2);
        assert_eq!(
            (&ry, &rm, &rs),
            (&y2, &m2, &s2),
            "residual layer_norm [{isa}] = add then layer_norm"
        );
        // Backward from the reference statistics. dx = rs·(g − mean(g) − x̂·mean(g·x̂)): the two
        // row means carry (cols + 4)·U relative error on Σ|g|, Σ|g·x̂|.
        let (mut dx, mut dg, mut db) = (vec![0.0; n], vec![0.0; cols], vec![0.0; cols]);
        layer_norm::backward_with(isa, dy, x, &g, &m0, &s0, &mut dx, &mut dg, &mut db);
        let xhat = |i: usize| (x[i] as f64 - m0[i / cols] as f64) * s0[i / cols] as f64;
        assert_close("layer_norm dx", isa, &dx, &dx0, |i| {
            let k = i / cols;
            let span = k * cols..(k + 1) * cols;
            let ag: f64 = span
                .clone()
                .map(|q| (dy[q] * g[q % cols]).abs() as f64)
                .sum::<f64>()
                / c;
            let agx: f64 = span
                .map(|q| (dy[q] * g[q % cols]).abs() as f64 * xhat(q).abs())
                .sum::<f64>()
                / c;
            let gi = (dy[i] * g[i % cols]).abs() as f64;
            s0[k] as f64
                * ((c + 8.0) * U * (ag + agx * (1.0 + xhat(i).abs()))
                    + 6.0 * U * (gi + xhat(i).abs() * (gi + agx)))
                + 2.0 * U * (dx0[i] as f64).abs()
                + 1e-30
        });
        // dgamma, dbeta: sums over `rows` in f32: ≤ (rows + 4)·U·Σ|terms|.
        let rw = rows as f64;
        assert_close("layer_norm dgamma", isa, &dg, &dg0, |j| {
            let a: f64 = (0..rows)
                .map(|k| (dy[k * cols + j] as f64 * xhat(k * cols + j)).abs())
                .sum();
            (rw + 8.0) * U * a * 2.0 + 1e-30
        });
        assert_close("layer_norm dbeta", isa, &db, &db0, |j| {
            let a: f64 = (0..rows).map(|k| (dy[k * cols + j] as f64).abs()).sum();
            (rw + 4.0) * U * a + 1e-30
        });
    });
}

#[test]
fn layer_norm_awkward_lengths() {
    let mut r = Rng::new(5);
    for cols in AWKWARD {
        for rows in [1, 2, 5] {
            let n = rows * cols;
            let x = r.vec(n, -3.0, 3.0);
            let res = r.vec(n, -3.0, 3.0);
            let dy = r.vec(n, -1.0, 1.0);
            check_layer_norm(&x, &res, &dy, cols, 1e-12, cols as u64);
        }
    }
}

#[test]
fn layer_norm_constant_rows_give_beta() {
    for_each_isa(|isa| {
        for cols in [1usize, 3, 16, 33, 768] {
            for v in [0.0f32, 1.0, 3.3, -1e4, 0.1] {
                let x = vec![v; 2 * cols];
                let g: Vec<f32> = (0..cols).map(|j| 1.0 + j as f32 * 0.01).collect();
                let b: Vec<f32> = (0..cols).map(|j| j as f32 * -0.02).collect();
                let (mut y, mut m, mut s) = (vec![f32::NAN; 2 * cols], vec![0.0; 2], vec![0.0; 2]);
                layer_norm::forward_with(isa, &x, &g, &b, 1e-12, &mut y, &mut m, &mut s);
                assert_eq!(m, vec![v; 2], "[{isa}] mean of a constant row");
                assert!(
                    s.iter().all(|r| r.is_finite() && *r > 0.0),
                    "[{isa}] rstd {s:?}"
                );
                assert_eq!(&y[..cols], &b[..], "[{isa}] cols {cols} value {v}");
                assert_eq!(&y[cols..], &b[..], "[{isa}] cols {cols} value {v}");
                let dy = vec![0.5; 2 * cols];
                let (mut dx, mut dg, mut db) =
                    (vec![0.0; 2 * cols], vec![0.0; cols], vec![0.0; cols]);
                layer_norm::backward_with(isa, &dy, &x, &g, &m, &s, &mut dx, &mut dg, &mut db);
                assert!(
                    dx.iter().chain(&dg).chain(&db).all(|v| v.is_finite()),
                    "[{isa}] NaN in backward"
                );
            }
        }
    });
}

proptest! {
    #![proptest_config(cases(40))]
    #[test]
    fn layer_norm_random(rows in 1usize..9, cols in 1usize..300, seed in any::<u64>(), offset in -5.0f32..5.0) {
        let mut r = Rng::new(seed);
        let n = rows * cols;
        let x: Vec<f32> = r.vec(n, -2.0, 2.0).into_iter().map(|v| v + offset).collect();
        let res = r.vec(n, -1.0, 1.0);
        let dy = r.vec(n, -1.0, 1.0);
        check_layer_norm(&x, &res, &dy, cols, 1e-5, seed);
    }
}

#[test]
fn one_and_two_threads_bit_identical() {
    let (rows, cols) = (PARALLEL_ROWS, PARALLEL_COLS);
    let m = rows * cols;
    let (mut r, [xs, dys]) = parallel_inputs(m);
    let g = r.vec(cols, 0.5, 1.5);
    let b = r.vec(cols, -0.5, 0.5);
    for_each_isa(|isa| {
        same_bits_across_threads(&format!("layer_norm {isa}"), || {
            let (mut y, mut mu, mut rs) = (vec![0.0; m], vec![0.0; rows], vec![0.0; rows]);
            layer_norm::forward_with(isa, &xs, &g, &b, 1e-12, &mut y, &mut mu, &mut rs);
            let (mut dx, mut dg, mut db) = (vec![0.0; m], vec![0.0; cols], vec![0.0; cols]);
            layer_norm::backward_with(isa, &dys, &xs, &g, &mu, &rs, &mut dx, &mut dg, &mut db);
            [y, mu, rs, dx, dg, db].concat()
        });
        same_bits_across_threads(&format!("residual layer_norm {isa}"), || {
            let (mut s, mut y, mut mu, mut rs) =
                (vec![0.0; m], vec![0.0; m], vec![0.0; rows], vec![0.0; rows]);
            layer_norm::residual_forward_with(
                isa, &xs, &dys, &g, &b, 1e-12, &mut s, &mut y, &mut mu, &mut rs,
            );
            [s, y, mu, rs].concat()
        });
    });
}

#[test]
fn layer_norm_streamed_outputs_match_small_calls() {
    // Rows of 769 (not a multiple of any vector width, so each row starts at another alignment)
    // enough to pass the streaming threshold; each row must get the same bits as when it is
    // normalised alone (a small call never streams; small calls are checked against the scalar
    // reference in `check_layer_norm`).
    let mut r = Rng::new(12);
    let cols = 769;
    let rows = stream_len() / cols + 3;
    let n = rows * cols;
    let x = r.vec(n, -3.0, 3.0);
    let dy = r.vec(n, -1.0, 1.0);
    let g = r.vec(cols, 0.5, 1.5);
    let b = r.vec(cols, -0.5, 0.5);
    for_each_vector_isa(|isa| {
        let (mut y, mut m, mut s) = (vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
        layer_norm::forward_with(isa, &x, &g, &b, 1e-12, &mut y, &mut m, &mut s);
        let (mut dx, mut dg, mut db) = (vec![0.0; n], vec![0.0; cols], vec![0.0; cols]);
        layer_norm::backward_with(isa, &dy, &x, &g, &m, &s, &mut dx, &mut dg, &mut db);
        for k in [0, 1, 2, rows / 2, rows - 1] {
            let span = k * cols..(k + 1) * cols;
            let (mut y1, mut m1, mut s1) = (vec![0.0; cols], [0.0], [0.0]);
            layer_norm::forward_with(
                isa,
                &x[span.clone()],
                &g,
                &b,
                1e-12,
                &mut y1,
                &mut m1,
                &mut s1,
            );
            assert!(
                bits(&y[span.clone()]) == bits(&y1),
                "layer_norm y streamed [{isa}] row {k}"
            );
            assert_eq!(m[k].to_bits(), m1[0].to_bits());
            assert_eq!(s[k].to_bits(), s1[0].to_bits());
            let (mut dx1, mut dg1, mut db1) = (vec![0.0; cols], vec![0.0; cols], vec![0.0; cols]);
            layer_norm::backward_with(
                isa,
                &dy[span.clone()],
                &x[span.clone()],
                &g,
                &m1,
                &s1,
                &mut dx1,
                &mut dg1,
                &mut db1,
            );
            assert!(
                bits(&dx[span]) == bits(&dx1),
                "layer_norm dx streamed [{isa}] row {k}"
            );
        }
    });
}
