//! Attention cases for `tests/attention.rs`: inputs and masks from the harness's RNG, the
//! reference and fused runs, and the normwise comparison of every output tensor.
//!
//! Tolerance (fused vs reference), normwise per output tensor:
//!   max |fused − ref| ≤ 4·u·(d·(1 + |scale|·d) + Tq + Tk + M + 16)·(1 + max |ref|)
//! with `u = 2^-24` the f32 unit roundoff. Inputs are in [−1, 1], so a score `scale·q·k` is a
//! length-`d` f32 dot product of error ≤ d·u·|scale|·d, plus ≤ u·(|scale|·d + M) for adding the
//! mask (M = the largest |finite mask value| near which a row's maximum can sit); `exp` turns an
//! absolute score error into the same relative probability error. The accumulations along keys
//! (online softmax, P·V) and along queries (dk, dv) have lengths Tk and Tq, and each dot over
//! the head dimension (dP, D) has length d. The reference is f64, so its own error is
//! negligible. The factor 4 covers the few roundings per element (exp ≤ 2 ulp, lse, rescaling).
//! These are worst-case (linear) bounds: observed errors stay below 1/40 of them, so the tight
//! per-loop checks (exp ≤ 3 ulp, micro-kernel, row passes) live in the unit tests of
//! `kernels/src/attention/tests.rs`.

use super::{for_each_isa, Rng, U};
use cloze_kernels::attention::{
    backward_with, forward_with, reference, AttnGrads, AttnInputs, AttnParams, AttnSaved, AttnShape,
};
use cloze_kernels::dispatch::Isa;

/// Key-padding mask patterns, one per batch row (cycled).
#[derive(Clone, Copy, Debug)]
pub enum MaskKind {
    None,
    /// Mix of 0, −30 and −inf, at least one key 0.
    Partial,
    /// Batch 0 all −inf (a fully hidden row), the others partial.
    FullyHidden,
}

pub const PARTIAL_MAG: f64 = 30.0;

pub fn make_mask(kind: MaskKind, batch: usize, tk: usize, g: &mut Rng) -> Option<Vec<f32>> {
    let partial = |g: &mut Rng| -> Vec<f32> {
        let mut row: Vec<f32> = (0..tk)
            .map(|_| match g.bits() % 4 {
                0 => f32::NEG_INFINITY,
                1 => -PARTIAL_MAG as f32,
                _ => 0.0,
            })
            .collect();
        let keep = (g.bits() % tk as u64) as usize;
        row[keep] = 0.0;
        row
    };
    match kind {
        MaskKind::None => None,
        MaskKind::Partial => Some((0..batch).flat_map(|_| partial(g)).collect()),
        MaskKind::FullyHidden => Some(
            (0..batch)
                .flat_map(|b| {
                    if b == 0 {
                        vec![f32::NEG_INFINITY; tk]
                    } else {
                        partial(g)
                    }
                })
                .collect(),
        ),
    }
}

pub struct Case {
    pub shape: AttnShape,
    pub params: AttnParams,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub dout: Vec<f32>,
    pub mask: Option<Vec<f32>>,
}

impl Case {
    pub fn new(shape: AttnShape, params: AttnParams, mask: MaskKind, seed: u64) -> Case {
        let mut g = Rng::new(seed);
        Case {
            shape,
            params,
            q: g.vec(shape.q_len(), -1.0, 1.0),
            k: g.vec(shape.kv_len(), -1.0, 1.0),
            v: g.vec(shape.kv_len(), -1.0, 1.0),
            dout: g.vec(shape.q_len(), -1.0, 1.0),
            mask: make_mask(mask, shape.batch, shape.tk, &mut g),
        }
    }
    pub fn mask(&self) -> Option<&[f32]> {
        self.mask.as_deref()
    }
    pub fn inputs(&self) -> AttnInputs<'_> {
        AttnInputs {
            shape: self.shape,
            params: self.params,
            q: &self.q,
            k: &self.k,
            v: &self.v,
            mask: self.mask(),
        }
    }
}

pub struct Outs {
    pub out: Vec<f32>,
    pub lse: Vec<f32>,
    pub dq: Vec<f32>,
    pub dk: Vec<f32>,
    pub dv: Vec<f32>,
}

/// The forward and backward of one implementation.
type Forward<'a> = &'a dyn Fn(&AttnInputs, &mut [f32], &mut [f32]);
type Backward<'a> = &'a dyn Fn(&AttnInputs, &AttnSaved, AttnGrads);

/// `forward`, then `backward` fed with that forward's own `out` and `lse`, into outputs
/// filled with `fill` beforehand.
fn run(c: &Case, fill: f32, forward: Forward, backward: Backward) -> Outs {
    let s = c.shape;
    let mut o = Outs {
        out: vec![fill; s.q_len()],
        lse: vec![fill; s.lse_len()],
        dq: vec![fill; s.q_len()],
        dk: vec![fill; s.kv_len()],
        dv: vec![fill; s.kv_len()],
    };
    let inputs = c.inputs();
    forward(&inputs, &mut o.out, &mut o.lse);
    let saved = AttnSaved {
        out: &o.out,
        lse: &o.lse,
        dout: &c.dout,
    };
    let grads = AttnGrads {
        dq: &mut o.dq,
        dk: &mut o.dk,
        dv: &mut o.dv,
    };
    backward(&inputs, &saved, grads);
    o
}

pub fn run_reference(c: &Case) -> Outs {
    run(c, 0.0, &reference::forward, &reference::backward)
}

/// Fused forward, then fused backward fed with the fused forward's own `out` and `lse`.
pub fn run_fused(isa: Isa, c: &Case) -> Outs {
    // NaN-filled outputs: every element must be written.
    run(
        c,
        f32::NAN,
        &|i, o, l| forward_with(isa, i, o, l),
        &|i, s, g| backward_with(isa, i, s, g),
    )
}

pub fn tolerance(c: &Case, reference: &[f32], mask_mag: f64) -> f64 {
    let s = c.shape;
    let d = s.d as f64;
    let scale = c.params.scale.abs() as f64;
    let n = d * (1.0 + scale * d) + s.tq as f64 + s.tk as f64 + mask_mag + 16.0;
    let max_ref = reference
        .iter()
        .filter(|x| x.is_finite())
        .fold(0.0f64, |m, &x| m.max(x.abs() as f64));
    4.0 * U * n * (1.0 + max_ref)
}

pub fn compare(what: &str, isa: Isa, c: &Case, got: &[f32], want: &[f32], mask_mag: f64) {
    let tol = tolerance(c, want, mask_mag);
    for (idx, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_finite() {
            g.is_finite() && ((g as f64) - (w as f64)).abs() <= tol
        } else {
            g == w // −inf lse of a fully hidden row
        };
        assert!(
            ok,
            "{what} on {isa}: element {idx} fused {g} vs reference {w} (tol {tol:e}); shape {:?} params {:?} mask {}",
            c.shape,
            c.params,
            c.mask.is_some()
        );
    }
}

pub fn check_case(c: &Case, mask_mag: f64) {
    let r = run_reference(c);
    for_each_isa(|isa| {
        let f = run_fused(isa, c);
        compare("out", isa, c, &f.out, &r.out, mask_mag);
        compare("lse", isa, c, &f.lse, &r.lse, mask_mag);
        compare("dq", isa, c, &f.dq, &r.dq, mask_mag);
        compare("dk", isa, c, &f.dk, &r.dk, mask_mag);
        compare("dv", isa, c, &f.dv, &r.dv, mask_mag);
    });
}

pub fn params(d: usize, causal: bool, dropout: f32, seed: u64) -> AttnParams {
    AttnParams {
        scale: 1.0 / (d as f32).sqrt(),
        causal,
        dropout,
        seed,
    }
}
