//! The plain attention every fused path is tested against: per `(b, h)` it materialises the full
//! `Tq × Tk` score, probability and gradient matrices, in f64, following the formulas of the
//! [module documentation](super) one by one. Same checks as the fused API.

use super::check::{check_backward, check_forward};
use super::{AttnGrads, AttnInputs, AttnSaved, AttnShape, Drop};

/// Scores, probabilities (undropped) and dropped probabilities of head `bh`, `Tq × Tk` each, and
/// each row's log-sum-exp (`-inf` for a row with no visible key).
struct Probs {
    p: Vec<f64>,
    pd: Vec<f64>,
    lse: Vec<f64>,
}

fn probs(inputs: &AttnInputs<'_>, bh: usize) -> Probs {
    let AttnInputs {
        shape,
        params,
        q,
        k,
        mask,
        ..
    } = *inputs;
    let AttnShape {
        heads, tq, tk, d, ..
    } = shape;
    let b = bh / heads;
    let drop = Drop::new(params.seed, params.dropout);
    let mut s = vec![f64::NEG_INFINITY; tq * tk];
    for i in 0..tq {
        for j in 0..tk {
            let hidden = params.causal && (j as isize) > i as isize + tk as isize - tq as isize;
            if hidden {
                continue;
            }
            let qi = &q[(bh * tq + i) * d..(bh * tq + i + 1) * d];
            let kj = &k[(bh * tk + j) * d..(bh * tk + j + 1) * d];
            let dot: f64 = qi.iter().zip(kj).map(|(&x, &y)| x as f64 * y as f64).sum();
            s[i * tk + j] = dot * params.scale as f64 + mask.map_or(0.0, |m| m[b * tk + j] as f64);
        }
    }
    let mut p = vec![0.0f64; tq * tk];
    let mut pd = vec![0.0f64; tq * tk];
    let mut lse = vec![f64::NEG_INFINITY; tq];
    for i in 0..tq {
        let row = &s[i * tk..(i + 1) * tk];
        if row.iter().any(|x| x.is_nan()) {
            // as PyTorch: a NaN score makes the whole row NaN (f64::max would skip it)
            lse[i] = f64::NAN;
            p[i * tk..(i + 1) * tk].fill(f64::NAN);
            pd[i * tk..(i + 1) * tk].fill(f64::NAN);
            continue;
        }
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if m == f64::NEG_INFINITY {
            continue; // no visible key: zero weights
        }
        let sum: f64 = row.iter().map(|&x| (x - m).exp()).sum();
        lse[i] = m + sum.ln();
        for j in 0..tk {
            let pij = (row[j] - m).exp() / sum;
            p[i * tk + j] = pij;
            let flat = ((bh * tq + i) * tk + j) as u64;
            pd[i * tk + j] = if params.dropout == 0.0 || drop.keep(flat) {
                pij / (1.0 - params.dropout as f64)
            } else {
                0.0
            };
        }
    }
    Probs { p, pd, lse }
}

/// Reference forward: `out` and `lse` as the fused [`super::forward`].
///
/// # Panics
/// As [`super::forward`].
pub fn forward(inputs: &AttnInputs<'_>, out: &mut [f32], lse: &mut [f32]) {
    check_forward(inputs, out, lse);
    let AttnInputs { shape, v, .. } = *inputs;
    let AttnShape { tq, tk, d, .. } = shape;
    for bh in 0..shape.batch * shape.heads {
        let pr = probs(inputs, bh);
        for i in 0..tq {
            lse[bh * tq + i] = pr.lse[i] as f32;
            for c in 0..d {
                let mut acc = 0.0f64;
                for j in 0..tk {
                    acc += pr.pd[i * tk + j] * v[(bh * tk + j) * d + c] as f64;
                }
                out[(bh * tq + i) * d + c] = acc as f32;
            }
        }
    }
}

/// Reference backward: `dq`, `dk`, `dv` as the fused [`super::backward`]. It recomputes the
/// probabilities itself; `lse` is only length-checked, and `out` is used for `D` exactly as the
/// fused path does.
///
/// # Panics
/// As [`super::backward`].
pub fn backward(inputs: &AttnInputs<'_>, saved: &AttnSaved<'_>, grads: AttnGrads<'_>) {
    check_backward(inputs, saved, &grads);
    let AttnInputs {
        shape,
        params,
        q,
        k,
        v,
        ..
    } = *inputs;
    let AttnSaved { out, dout, .. } = *saved;
    let AttnGrads { dq, dk, dv } = grads;
    let AttnShape { tq, tk, d, .. } = shape;
    let keep_scale = 1.0 / (1.0 - params.dropout as f64);
    let sc = params.scale as f64;
    for bh in 0..shape.batch * shape.heads {
        let pr = probs(inputs, bh);
        let qo = bh * tq * d;
        let ko = bh * tk * d;
        // dP[i, j] = (dout_i · v_j) · keep / (1 − p)
        let mut ds = vec![0.0f64; tq * tk];
        for i in 0..tq {
            let di: f64 = (0..d)
                .map(|c| dout[qo + i * d + c] as f64 * out[qo + i * d + c] as f64)
                .sum();
            for j in 0..tk {
                let pij = pr.p[i * tk + j];
                if pij == 0.0 {
                    continue;
                }
                let dot: f64 = (0..d)
                    .map(|c| dout[qo + i * d + c] as f64 * v[ko + j * d + c] as f64)
                    .sum();
                // pd / p is keep/(1−p) (0 or keep_scale) whenever p > 0
                let kept = if pr.pd[i * tk + j] != 0.0 {
                    keep_scale
                } else {
                    0.0
                };
                ds[i * tk + j] = pij * (dot * kept - di);
            }
        }
        for i in 0..tq {
            for c in 0..d {
                let acc: f64 = (0..tk)
                    .map(|j| ds[i * tk + j] * k[ko + j * d + c] as f64)
                    .sum();
                dq[qo + i * d + c] = (acc * sc) as f32;
            }
        }
        for j in 0..tk {
            for c in 0..d {
                let mut gk = 0.0f64;
                let mut gv = 0.0f64;
                for i in 0..tq {
                    gk += ds[i * tk + j] * q[qo + i * d + c] as f64;
                    gv += pr.pd[i * tk + j] * dout[qo + i * d + c] as f64;
                }
                dk[ko + j * d + c] = (gk * sc) as f32;
                dv[ko + j * d + c] = gv as f32;
            }
        }
    }
}
