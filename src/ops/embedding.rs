//! Embedding lookup: gathers rows of a table `[V, H]` by id into `[..ids_shape, H]`.
//!
//! # Backward
//!
//! `d table[v] = Σ_{p : ids[p] = v} dy[p]`: the output gradient's rows scatter-added into a zero
//! `[V, H]` gradient, in increasing position order, so an id used several times gets the sum of
//! its rows' gradients and the result is deterministic (bit-identical from run to run).
//!
//! Kernel: inline loops (row copies for the gather, row adds for the scatter).

use crate::autodiff::tape::{Backward, Tape, Var};
use crate::error::{invalid, shape_err, Result};
use crate::tensor::Tensor;

struct EmbeddingBackward {
    ids: Vec<u32>,
    vocab: usize,
    hidden: usize,
}

impl Backward for EmbeddingBackward {
    fn name(&self) -> &'static str {
        "embedding"
    }

    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let h = self.hidden;
        let gd = g.data();
        let out = Tensor::overwritten(&[self.vocab, h], |d| {
            d.fill(0.0);
            for (p, &id) in self.ids.iter().enumerate() {
                let row = &mut d[id as usize * h..(id as usize + 1) * h];
                for (a, &b) in row.iter_mut().zip(&gd[p * h..(p + 1) * h]) {
                    *a += b;
                }
            }
        });
        Ok(vec![Some(out)])
    }
}

impl Tape {
    /// `table [V, H]` gathered at `ids` (row-major, of shape `ids_shape`) → `[..ids_shape, H]`.
    ///
    /// Errors: a table that is not 2-D; `ids.len()` differing from the product of `ids_shape`;
    /// an id `≥ V` (naming the id, its position and `V`).
    pub fn embedding(&mut self, table: &Var, ids: &[u32], ids_shape: &[usize]) -> Result<Var> {
        const OP: &str = "embedding";
        let st = table.shape();
        if st.len() != 2 {
            return shape_err(OP, format!("the table must be 2-D [V, H], got {st:?}"));
        }
        let (vocab, h) = (st[0], st[1]);
        let n: usize = ids_shape.iter().product();
        if ids.len() != n {
            return shape_err(
                OP,
                format!(
                    "{} ids for ids_shape {ids_shape:?}, which holds {n}",
                    ids.len()
                ),
            );
        }
        for (p, &id) in ids.iter().enumerate() {
            if id as usize >= vocab {
                return invalid(
                    OP,
                    format!(
                        "id {id} at position {p} is outside the table's {vocab} rows (V = {vocab})"
                    ),
                );
            }
        }
        let mut out_shape = ids_shape.to_vec();
        out_shape.push(h);
        let td = table.value().data();
        let out = Tensor::overwritten(&out_shape, |d| {
            for (p, &id) in ids.iter().enumerate() {
                let id = id as usize;
                d[p * h..(p + 1) * h].copy_from_slice(&td[id * h..(id + 1) * h]);
            }
        });
        self.record(OP, out, &[table], || EmbeddingBackward {
            ids: ids.to_vec(),
            vocab,
            hidden: h,
        })
    }
}
