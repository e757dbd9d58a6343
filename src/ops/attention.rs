//! Scaled dot-product attention over heads: `attention(q, k, v, opts)`.
//!
//! Shapes: `q [B, heads, Tq, d]`, `k` and `v [B, heads, Tk, d]`, output `[B, heads, Tq, d]`.
//! Per batch element and head, with `M` the additive key mask (`opts.mask`, shape `[B, Tk]`,
//! broadcast over heads and queries: BERT's padding mask, e.g. −10000 at pads) and `C` the
//! causal mask (`−∞` where key `j > ` query `i`, top-left aligned, when `opts.causal`):
//!
//! ```text
//! S = scale · Q·Kᵀ + M + C          [Tq, Tk]
//! P = softmax(S) over keys (rows)
//! P̃ = dropout(P)                    (training only, seeded as `Tape::dropout` over the flat
//!                                     index of P in [B, heads, Tq, Tk])
//! O = P̃·V                           [Tq, d]
//! ```
//!
//! # Fully masked rows
//!
//! A row whose every score is `−∞` (every key masked with `−∞`, or by the causal mask and `−∞`
//! padding together) has no softmax; its probabilities are **defined as 0**, so its output row
//! is 0 and it passes no gradient. With a finite mask such as −10000 a fully masked row is an
//! ordinary softmax: the common shift cancels, leaving the softmax of the unmasked scores up to
//! f32 rounding at that magnitude (uniform when those scores are equal). A mask holding NaN or
//! `+∞` is rejected.
//!
//! # Backward
//!
//! With `dO` the output gradient and `D` the dropout mask scaled by `1/(1 − p)` (all ones
//! without dropout):
//!
//! ```text
//! dV = P̃ᵀ·dO        dP = (dO·Vᵀ) ⊙ D        dS = P ⊙ (dP − rowsum(dP ⊙ P))
//! dQ = scale · dS·K   dK = scale · dSᵀ·Q
//! ```
//!
//! The forward saves `q`, `k`, `v`, `P` and the dropout mask bits. The mask is a `Tensor`, not a
//! `Var`, and gets no gradient.
//!
//! Kernels: `attention` runs the fused kernel [`cloze_kernels::attention`] (saves only the
//! output and the row log-sum-exp; the backward recomputes `P` in tiles). `attention_unfused`
//! computes the same thing with [`cloze_kernels::gemm::Gemm::run_batched`] for the four
//! products and [`cloze_kernels::softmax`], materialising `P`; it is the reference the fused
//! op is tested against and the baseline of `benches/attention.rs`.

use crate::autodiff::tape::{Backward, Tape, Var};
use crate::error::{invalid, shape_err, Result};
use crate::ops::dropout::{check_p, Mask};
use crate::tensor::pool;
use crate::tensor::Tensor;
use cloze_kernels::attention as fused;
use cloze_kernels::gemm::Gemm;
use cloze_kernels::softmax;

/// Options of [`Tape::attention`].
#[derive(Clone, Debug)]
pub struct AttentionOptions {
    /// Additive key mask `[B, Tk]` (0 for real tokens, e.g. −10000 or −∞ for padding).
    pub mask: Option<Tensor>,
    /// Exclude keys after the query (`j > i`).
    pub causal: bool,
    /// Multiplies `Q·Kᵀ`; usually `1/√d`.
    pub scale: f32,
    /// Dropout probability on the attention probabilities (training only).
    pub dropout: f32,
    /// Seed of the dropout mask.
    pub seed: u64,
}

impl AttentionOptions {
    /// Scale `1/√head_dim`, no mask, not causal, no dropout.
    pub fn new(head_dim: usize) -> AttentionOptions {
        AttentionOptions {
            mask: None,
            causal: false,
            scale: 1.0 / (head_dim as f32).sqrt(),
            dropout: 0.0,
            seed: 0,
        }
    }
}

/// Sizes of one attention problem.
#[derive(Clone, Copy, Debug)]
struct Dims {
    /// B · heads.
    bh: usize,
    tq: usize,
    tk: usize,
    d: usize,
}

/// `batch` products `C_i = alpha · op(A_i)·op(B_i)` of contiguous operands into a new buffer.
#[allow(clippy::too_many_arguments)]
fn batched(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    alpha: f32,
    a: &[f32],
    b: &[f32],
) -> Vec<f32> {
    let mut c = pool::take(batch * m * n);
    Gemm::new(m, n, k)
        .transposes(ta, tb)
        .alpha(alpha)
        .run_batched(batch, a, m * k, b, k * n, &mut c, m * n);
    c
}

struct AttentionBackward {
    dims: Dims,
    scale: f32,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    /// Softmax probabilities before dropout, `[B, heads, Tq, Tk]`.
    probs: Tensor,
    dropout: Option<Mask>,
}

impl Backward for AttentionBackward {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn backward(&self, d_out: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let Dims { bh, tq, tk, d } = self.dims;
        let go = d_out.data();
        let probs = self.probs.data();
        let dv = needs[2].then(|| {
            let data = match &self.dropout {
                None => batched(bh, tk, d, tq, true, false, 1.0, probs, go),
                Some(mask) => {
                    let mut dropped = pool::take(probs.len());
                    mask.apply(probs, &mut dropped);
                    let c = batched(bh, tk, d, tq, true, false, 1.0, &dropped, go);
                    pool::recycle(dropped);
                    c
                }
            };
            Tensor::from_parts(data, self.v.shape())
        });
        let (dq, dk) = if needs[0] || needs[1] {
            // dP̃ = dO·Vᵀ, then through dropout and softmax.
            let mut dp = batched(bh, tq, tk, d, false, true, 1.0, go, self.v.data());
            if let Some(mask) = &self.dropout {
                let mut masked = pool::take(dp.len());
                mask.apply(&dp, &mut masked);
                pool::recycle(std::mem::replace(&mut dp, masked));
            }
            let mut ds = pool::take(dp.len());
            softmax::softmax_backward_rows(probs, &dp, tk, &mut ds);
            pool::recycle(dp);
            let dq = needs[0].then(|| {
                let data = batched(bh, tq, d, tk, false, false, self.scale, &ds, self.k.data());
                Tensor::from_parts(data, self.q.shape())
            });
            let dk = needs[1].then(|| {
                let data = batched(bh, tk, d, tq, true, false, self.scale, &ds, self.q.data());
                Tensor::from_parts(data, self.k.shape())
            });
            pool::recycle(ds);
            (dq, dk)
        } else {
            (None, None)
        };
        Ok(vec![dq, dk, dv])
    }
}

/// Checks shapes and options; returns the sizes.
fn check(q: &Var, k: &Var, v: &Var, opts: &AttentionOptions) -> Result<Dims> {
    const OP: &str = "attention";
    let (sq, sk, sv) = (q.shape(), k.shape(), v.shape());
    if sq.len() != 4 || sk.len() != 4 || sk != sv || sq[..2] != sk[..2] || sq[3] != sk[3] {
        return shape_err(
            OP,
            format!(
                "need q [B, heads, Tq, d] and k, v [B, heads, Tk, d]; got q {sq:?}, k {sk:?}, v {sv:?}"
            ),
        );
    }
    let (b, tq, tk, d) = (sq[0], sq[2], sk[2], sq[3]);
    if tk == 0 || d == 0 {
        return shape_err(
            OP,
            format!("need at least one key and a head dim > 0; got q {sq:?}, k {sk:?}"),
        );
    }
    if let Some(m) = &opts.mask {
        if m.shape() != [b, tk] {
            return shape_err(
                OP,
                format!(
                    "mask {:?} must be [B, Tk] = [{b}, {tk}] for q {sq:?}, k {sk:?}",
                    m.shape()
                ),
            );
        }
        if let Some(i) = m
            .data()
            .iter()
            .position(|x| x.is_nan() || *x == f32::INFINITY)
        {
            return invalid(
                OP,
                format!(
                    "mask value {} at [{}, {}] (only finite values and −inf are allowed)",
                    m.data()[i],
                    i / tk,
                    i % tk
                ),
            );
        }
    }
    if !opts.scale.is_finite() {
        return invalid(OP, format!("scale = {} is not finite", opts.scale));
    }
    check_p(OP, opts.dropout)?;
    Ok(Dims {
        bh: b * sq[1],
        tq,
        tk,
        d,
    })
}

impl Tape {
    /// The unfused attention: the same definition as [`Tape::attention`], computed with
    /// batched GEMMs and a materialised `[B, heads, Tq, Tk]` probability matrix (kept for the
    /// backward). It is the engine-level reference the fused kernel is tested against, and the
    /// baseline of the attention bench.
    pub fn attention_unfused(
        &mut self,
        q: &Var,
        k: &Var,
        v: &Var,
        opts: &AttentionOptions,
    ) -> Result<Var> {
        let dims = check(q, k, v, opts)?;
        let Dims { bh, tq, tk, d } = dims;
        let heads = q.shape()[1];

        // S = scale · Q·Kᵀ (+ masks), then P = softmax(S) in place of S.
        let mut scores = batched(
            bh,
            tq,
            tk,
            d,
            false,
            true,
            opts.scale,
            q.value().data(),
            k.value().data(),
        );
        let mut dead_rows = Vec::new();
        for (r, row) in scores.chunks_exact_mut(tk).enumerate() {
            let i = r % tq; // query index
            if let Some(m) = &opts.mask {
                let b = r / tq / heads;
                for (s, &mv) in row.iter_mut().zip(&m.data()[b * tk..(b + 1) * tk]) {
                    *s += mv;
                }
            }
            if opts.causal {
                for s in row.iter_mut().skip(i + 1) {
                    *s = f32::NEG_INFINITY;
                }
            }
            if row.iter().all(|&s| s == f32::NEG_INFINITY) {
                dead_rows.push(r);
            }
        }
        let mut probs = pool::take(scores.len());
        softmax::softmax_rows(&scores, tk, &mut probs);
        pool::recycle(scores);
        for &r in &dead_rows {
            probs[r * tk..(r + 1) * tk].fill(0.0);
        }

        let dropout = (self.training() && opts.dropout > 0.0)
            .then(|| Mask::new(opts.seed, opts.dropout, probs.len()));
        let v_data = v.value().data();
        let out = match &dropout {
            None => batched(bh, tq, d, tk, false, false, 1.0, &probs, v_data),
            Some(mask) => {
                let mut dropped = pool::take(probs.len());
                mask.apply(&probs, &mut dropped);
                let o = batched(bh, tq, d, tk, false, false, 1.0, &dropped, v_data);
                pool::recycle(dropped);
                o
            }
        };
        let out = Tensor::from_parts(out, q.shape());
        let saved = AttentionBackward {
            dims,
            scale: opts.scale,
            q: q.value().clone(),
            k: k.value().clone(),
            v: v.value().clone(),
            probs: Tensor::from_parts(probs, &[q.shape()[0], heads, tq, tk]),
            dropout,
        };
        // `saved` is dropped (its buffers freed) when nothing is recorded.
        self.record("attention_unfused", out, &[q, k, v], || saved)
    }

    /// Scaled dot-product attention with an optional additive key mask, causal mask and
    /// dropout on the probabilities; see the module docs for the exact definition. Runs the
    /// fused flash-style kernel ([`cloze_kernels::attention`]): the `[Tq, Tk]` matrices are never
    /// materialised, the forward saves only its output and the per-row log-sum-exp, and the
    /// backward recomputes the probabilities tile by tile, so memory grows linearly with the
    /// sequence length.
    ///
    /// Errors: shapes that are not `q [B, heads, Tq, d]`, `k`, `v [B, heads, Tk, d]` (with
    /// `Tk, d > 0`); causal attention with `Tq ≠ Tk`; a mask that is not `[B, Tk]` or holds
    /// NaN/+∞; a non-finite scale; a dropout probability outside [0, 1).
    pub fn attention(&mut self, q: &Var, k: &Var, v: &Var, opts: &AttentionOptions) -> Result<Var> {
        let Dims { tq, tk, d, .. } = check(q, k, v, opts)?;
        if opts.causal && tq != tk {
            return shape_err(
                "attention",
                format!(
                    "causal attention needs as many queries as keys; got q {:?}, k {:?}",
                    q.shape(),
                    k.shape()
                ),
            );
        }
        let shape = fused::AttnShape {
            batch: q.shape()[0],
            heads: q.shape()[1],
            tq,
            tk,
            d,
        };
        let params = fused::AttnParams {
            scale: opts.scale,
            causal: opts.causal,
            dropout: if self.training() { opts.dropout } else { 0.0 },
            seed: opts.seed,
        };
        let mask = opts.mask.clone();
        let mut out = pool::take(q.value().len());
        let mut lse = pool::take(shape.batch * shape.heads * tq);
        let inputs = fused::AttnInputs {
            shape,
            params,
            q: q.value().data(),
            k: k.value().data(),
            v: v.value().data(),
            mask: mask.as_ref().map(|m| m.data()),
        };
        fused::forward(&inputs, &mut out, &mut lse);
        let out = Tensor::from_parts(out, q.shape());
        let lse = Tensor::from_parts(lse, &[shape.batch, shape.heads, tq]);
        let saved_out = out.clone();
        self.record("attention", out, &[q, k, v], || FusedBackward {
            shape,
            params,
            q: q.value().clone(),
            k: k.value().clone(),
            v: v.value().clone(),
            mask,
            out: saved_out,
            lse,
        })
    }
}

/// What the fused backward needs: the inputs, the output and the per-row log-sum-exp.
struct FusedBackward {
    shape: fused::AttnShape,
    params: fused::AttnParams,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Option<Tensor>,
    out: Tensor,
    lse: Tensor,
}

impl Backward for FusedBackward {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn backward(&self, d_out: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let mut dq = pool::take(self.q.len());
        let mut dk = pool::take(self.k.len());
        let mut dv = pool::take(self.v.len());
        let inputs = fused::AttnInputs {
            shape: self.shape,
            params: self.params,
            q: self.q.data(),
            k: self.k.data(),
            v: self.v.data(),
            mask: self.mask.as_ref().map(|m| m.data()),
        };
        let saved = fused::AttnSaved {
            out: self.out.data(),
            lse: self.lse.data(),
            dout: d_out.data(),
        };
        let grads = fused::AttnGrads {
            dq: &mut dq,
            dk: &mut dk,
            dv: &mut dv,
        };
        fused::backward(&inputs, &saved, grads);
        Ok(vec![
            Some(Tensor::from_parts(dq, self.q.shape())),
            Some(Tensor::from_parts(dk, self.k.shape())),
            Some(Tensor::from_parts(dv, self.v.shape())),
        ])
    }
}
