//! Matrix products: `matmul`, `matmul_t` (transpose flags), `bmm` (batched), and `linear`
//! (`x·Wᵀ + b`: the bias added by the GEMM's epilogue, its gradient the column sums of `dC`).
//!
//! For `C = op(A)·op(B)` the backward is, with `dC` the output gradient:
//!
//! | stored A | dA | stored B | dB |
//! |---|---|---|---|
//! | A (m×k) | dC·op(B)ᵀ | B (k×n) | op(A)ᵀ·dC |
//! | Aᵀ (k×m) | op(B)·dCᵀ | Bᵀ (n×k) | dCᵀ·op(A) |
//!
//! so every gradient is itself one GEMM with transpose flags, never a materialised transpose.
//!
//! With [`Precision::Bf16`] on the tape ([`Tape::set_precision`]) both operands of every
//! product, forward and backward, are rounded to bf16 and multiplied with f32 accumulation;
//! the backward saves the bf16 operands instead of the f32 inputs.
//!
//! Kernel: [`cloze_kernels::gemm::Gemm`] (`run_mixed` and `run_batched_mixed`, which take f32
//! or bf16 operands).

use crate::autodiff::tape::{Backward, Precision, Tape, Var};
use crate::error::{shape_err, Result};
use crate::tensor::Tensor;
use cloze_kernels::gemm::{Gemm, Operand};
use half::bf16;

/// One (possibly batched) product: `batch` products of op(A) (m×k) by op(B) (k×n).
#[derive(Clone, Copy, Debug)]
struct Product {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
}

impl Product {
    /// The same batch with sizes `[m, n, k]` and transpose flags `[ta, tb]`: the products the
    /// backward runs.
    fn with(self, [m, n, k]: [usize; 3], [ta, tb]: [bool; 2]) -> Product {
        Product {
            m,
            n,
            k,
            ta,
            tb,
            ..self
        }
    }
}

/// Computes `batch` products `op(A_i)·op(B_i)` into a new buffer of `batch·m·n` (f32 or bf16
/// operands, f32 accumulation).
fn gemm(p: &Product, a: Operand<'_>, b: Operand<'_>) -> Vec<f32> {
    gemm_bias(p, a, b, None)
}

/// [`gemm`], then `bias` (n values, one product only) added to every row of the result, as
/// the GEMM's epilogue: the same values as a separate add, without its pass over C.
fn gemm_bias(p: &Product, a: Operand<'_>, b: Operand<'_>, bias: Option<&[f32]>) -> Vec<f32> {
    let g = Gemm::new(p.m, p.n, p.k).transposes(p.ta, p.tb);
    let mut c = crate::tensor::pool::take(p.batch * p.m * p.n);
    if let Some(bias) = bias {
        debug_assert_eq!(p.batch, 1);
        g.run_bias(a, b, bias, &mut c);
    } else if p.batch == 1 {
        g.run_mixed(a, b, &mut c);
    } else {
        g.run_batched_mixed(p.batch, a, p.m * p.k, b, p.k * p.n, &mut c, p.m * p.n);
    }
    c
}

/// bf16 values held two to an f32 in a buffer of the tensor pool, so the operand copies of
/// one step reuse the memory of the last instead of faulting in fresh pages every time.
struct Bf16Buf {
    raw: Vec<f32>,
    len: usize,
}

impl Bf16Buf {
    /// The values rounded to bf16 (round to nearest even), converted on the rayon pool in
    /// chunks when there are many.
    fn from_f32(x: &[f32]) -> Bf16Buf {
        const CHUNK: usize = 1 << 15;
        let mut buf = Bf16Buf {
            raw: crate::tensor::pool::take(x.len().div_ceil(2)),
            len: x.len(),
        };
        let dst = buf.as_mut_slice();
        if x.len() <= CHUNK {
            cloze_kernels::convert::f32_to_bf16(x, dst);
        } else {
            use rayon::prelude::*;
            dst.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .for_each(|(d, s)| cloze_kernels::convert::f32_to_bf16(s, d));
        }
        buf
    }

    fn as_slice(&self) -> &[bf16] {
        &bytemuck::cast_slice(&self.raw)[..self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [bf16] {
        &mut bytemuck::cast_slice_mut(&mut self.raw)[..self.len]
    }
}

impl Drop for Bf16Buf {
    fn drop(&mut self) {
        crate::tensor::pool::recycle(std::mem::take(&mut self.raw));
    }
}

/// The operands a product's backward needs, in the format its products read.
enum Saved {
    /// f32 products: the input tensors themselves (shared, not copied).
    F32 { a: Tensor, b: Tensor },
    /// bf16 products: the operands as rounded in the forward (half the bytes of f32).
    Bf16 { a: Bf16Buf, b: Bf16Buf },
}

struct MatmulBackward {
    p: Product,
    saved: Saved,
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
    /// `linear`: a third input, the bias `[n]`, whose gradient is `dC`'s column sums.
    bias: bool,
}

/// The two input gradients as stored (`None` where not needed), each one product of the saved
/// operands `a`, `b` and the output gradient `dc`.
fn input_grads(p: Product, [a, b, dc]: [Operand<'_>; 3], needs: &[bool]) -> [Option<Vec<f32>>; 2] {
    let ga = needs[0].then(|| {
        if !p.ta {
            // dA (m×k) = dC (m×n) · op(B)ᵀ
            gemm(&p.with([p.m, p.k, p.n], [false, !p.tb]), dc, b)
        } else {
            // dA as stored (k×m) = op(B) (k×n) · dCᵀ
            gemm(&p.with([p.k, p.m, p.n], [p.tb, true]), b, dc)
        }
    });
    let gb = needs[1].then(|| {
        if !p.tb {
            // dB (k×n) = op(A)ᵀ (k×m) · dC (m×n)
            gemm(&p.with([p.k, p.n, p.m], [!p.ta, false]), a, dc)
        } else {
            // dB as stored (n×k) = dCᵀ (n×m) · op(A) (m×k)
            gemm(&p.with([p.n, p.k, p.m], [true, p.ta]), dc, a)
        }
    });
    [ga, gb]
}

impl Backward for MatmulBackward {
    fn name(&self) -> &'static str {
        if self.bias {
            "linear"
        } else {
            "matmul"
        }
    }

    fn backward(&self, dc: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let [ga, gb] = match &self.saved {
            Saved::F32 { a, b } => input_grads(
                self.p,
                [a.data().into(), b.data().into(), dc.data().into()],
                needs,
            ),
            Saved::Bf16 { a, b } => {
                let dc = Bf16Buf::from_f32(dc.data());
                let ops = [
                    a.as_slice().into(),
                    b.as_slice().into(),
                    dc.as_slice().into(),
                ];
                input_grads(self.p, ops, needs)
            }
        };
        let mut grads = vec![
            ga.map(|g| Tensor::from_parts(g, &self.a_shape)),
            gb.map(|g| Tensor::from_parts(g, &self.b_shape)),
        ];
        if self.bias {
            // The same column sums (and order) as `add`'s backward gives a broadcast bias.
            let db = needs[2].then(|| crate::ops::broadcast::reduce_to_shape(dc, &[self.p.n]));
            grads.push(db);
        }
        Ok(grads)
    }
}

impl Tape {
    /// Records `op(A)·op(B)` (plus `bias` on every row, for `linear`).
    fn product(
        &mut self,
        op: &'static str,
        a: &Var,
        b: &Var,
        p: Product,
        out_shape: Vec<usize>,
        bias: Option<&Var>,
    ) -> Result<Var> {
        let (a_shape, b_shape) = (a.shape().to_vec(), b.shape().to_vec());
        let mut inputs = vec![a, b];
        inputs.extend(bias);
        let bias_data = bias.map(|v| v.value().data());
        match self.precision() {
            Precision::F32 => {
                let data = gemm_bias(
                    &p,
                    a.value().data().into(),
                    b.value().data().into(),
                    bias_data,
                );
                let out = Tensor::from_parts(data, &out_shape);
                self.record(op, out, &inputs, || MatmulBackward {
                    p,
                    saved: Saved::F32 {
                        a: a.value().clone(),
                        b: b.value().clone(),
                    },
                    a_shape,
                    b_shape,
                    bias: bias.is_some(),
                })
            }
            Precision::Bf16 => {
                let ah = Bf16Buf::from_f32(a.value().data());
                let bh = Bf16Buf::from_f32(b.value().data());
                let out = Tensor::from_parts(
                    gemm_bias(&p, ah.as_slice().into(), bh.as_slice().into(), bias_data),
                    &out_shape,
                );
                self.record(op, out, &inputs, || MatmulBackward {
                    p,
                    saved: Saved::Bf16 { a: ah, b: bh },
                    a_shape,
                    b_shape,
                    bias: bias.is_some(),
                })
            }
        }
    }

    /// `A·B`. See [`Tape::matmul_t`].
    pub fn matmul(&mut self, a: &Var, b: &Var) -> Result<Var> {
        self.matmul_t(a, b, false, false)
    }

    /// `op(A)·op(B)` where `op` transposes the last two axes when its flag is set.
    ///
    /// Shapes: `B` is 2-D. `A` is 2-D, or, when `trans_a` is false, N-D `[..., m, k]` whose
    /// leading axes are kept in the result (`[..., m, n]`), as a linear layer over a batch of
    /// sequences needs (`x·Wᵀ` is `matmul_t(x, w, false, true)`).
    pub fn matmul_t(&mut self, a: &Var, b: &Var, trans_a: bool, trans_b: bool) -> Result<Var> {
        self.product_2d("matmul", a, b, trans_a, trans_b, None)
    }

    /// A linear layer, `x·Wᵀ + b`: `x [..., k]` (any leading axes), `W [n, k]` (PyTorch's
    /// `[out, in]`), `b [n]` → `[..., n]`. The same values as `matmul_t(x, w, false, true)`
    /// followed by `add(·, b)`, bit for bit, forward and backward, but the bias is added by the
    /// GEMM's epilogue while each tile of the output is still in cache, and the tape holds one
    /// node instead of two.
    pub fn linear(&mut self, x: &Var, w: &Var, b: &Var) -> Result<Var> {
        let (sw, sbias) = (w.shape(), b.shape());
        if sw.len() != 2 || sbias != [sw[0]] {
            return shape_err(
                "linear",
                format!(
                    "need W [out, in] and b [out]; got W {sw:?} and b {sbias:?} (x {:?})",
                    x.shape()
                ),
            );
        }
        self.product_2d("linear", x, w, false, true, Some(b))
    }

    /// `matmul_t`'s checks and product, with an optional bias `[n]` (already checked).
    fn product_2d(
        &mut self,
        op: &'static str,
        a: &Var,
        b: &Var,
        trans_a: bool,
        trans_b: bool,
        bias: Option<&Var>,
    ) -> Result<Var> {
        let (sa, sb) = (a.shape(), b.shape());
        if sb.len() != 2 || sa.len() < 2 || (trans_a && sa.len() != 2) {
            return shape_err(
                op,
                format!(
                    "need A 2-D (or N-D without trans_a) and B 2-D; got A {sa:?} (trans {trans_a}), B {sb:?} (trans {trans_b})"
                ),
            );
        }
        let (ar, ac) = (sa[sa.len() - 2], sa[sa.len() - 1]);
        let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
        let (kb, n) = if trans_b {
            (sb[1], sb[0])
        } else {
            (sb[0], sb[1])
        };
        if k != kb {
            return shape_err(
                op,
                format!("inner sizes differ: op(A) is {m}×{k} (A {sa:?}, trans {trans_a}), op(B) is {kb}×{n} (B {sb:?}, trans {trans_b})"),
            );
        }
        let lead: usize = sa[..sa.len() - 2].iter().product();
        let mut out_shape = sa[..sa.len() - 2].to_vec();
        out_shape.extend([m, n]);
        // The leading axes of A fold into its rows: one product of (lead·m)×k by k×n.
        let p = Product {
            batch: 1,
            m: lead * m,
            n,
            k,
            ta: trans_a,
            tb: trans_b,
        };
        self.product(op, a, b, p, out_shape, bias)
    }

    /// Batched `op(A_i)·op(B_i)` over identical leading axes: `A [..., m, k]`,
    /// `B [..., k, n]` (last two axes swapped where the flag is set) → `[..., m, n]`.
    pub fn bmm(&mut self, a: &Var, b: &Var, trans_a: bool, trans_b: bool) -> Result<Var> {
        const OP: &str = "bmm";
        let (sa, sb) = (a.shape(), b.shape());
        if sa.len() < 3 || sa.len() != sb.len() || sa[..sa.len() - 2] != sb[..sb.len() - 2] {
            return shape_err(
                OP,
                format!("need A and B with the same leading (batch) axes and ≥3 axes; got A {sa:?}, B {sb:?}"),
            );
        }
        let r = sa.len();
        let (m, k) = if trans_a {
            (sa[r - 1], sa[r - 2])
        } else {
            (sa[r - 2], sa[r - 1])
        };
        let (kb, n) = if trans_b {
            (sb[r - 1], sb[r - 2])
        } else {
            (sb[r - 2], sb[r - 1])
        };
        if k != kb {
            return shape_err(
                OP,
                format!("inner sizes differ: op(A) is {m}×{k} (A {sa:?}, trans {trans_a}), op(B) is {kb}×{n} (B {sb:?}, trans {trans_b})"),
            );
        }
        let batch: usize = sa[..r - 2].iter().product();
        let mut out_shape = sa[..r - 2].to_vec();
        out_shape.extend([m, n]);
        let p = Product {
            batch,
            m,
            n,
            k,
            ta: trans_a,
            tb: trans_b,
        };
        self.product(OP, a, b, p, out_shape, None)
    }
}
