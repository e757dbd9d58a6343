//! One batch forward (and backward when training), one optimisation step over the global
//! batch, and one held-out evaluation.

use crate::autodiff::tape::Var;
use crate::bert::model::{BertInput, ForwardOptions};
use crate::distributed::{shard, GradSync};
use crate::error::{invalid, Result};
use crate::pretrain::config::Objective;
use crate::pretrain::instances::Instance;
use crate::pretrain::trainer::data::make_batch;
use crate::pretrain::trainer::{mix, Pretrainer, Totals, IGNORE};
use crate::tensor::Tensor;

/// (Σ −log p(label), correct argmax count) over logits rows whose label is not [`IGNORE`]. The
/// loss comes from the cross-entropy kernel (its vector path, no gradient), so scoring costs
/// one pass over the logits rather than a scalar `exp` per logit.
fn score(logits: &Tensor, labels: &[i32]) -> (f64, f64) {
    let c = *logits.shape().last().unwrap_or(&1);
    let loss = cloze_kernels::cross_entropy::cross_entropy(logits.data(), c, labels, IGNORE, None);
    (loss.loss_sum, correct_count(logits, labels))
}

/// How many rows' argmax is their label (rows labelled [`IGNORE`] are skipped).
fn correct_count(logits: &Tensor, labels: &[i32]) -> f64 {
    let c = *logits.shape().last().unwrap_or(&1);
    let mut correct = 0.0;
    for (row, &l) in logits.data().chunks_exact(c).zip(labels) {
        if l >= 0 {
            correct += f64::from(crate::tensor::argmax(row) == l as usize);
        }
    }
    correct
}

impl Pretrainer<'_> {
    /// Forward (and, when training, backward) of instances; `lm_total` and `seq_total` are the
    /// global counts the losses are normalised by. With `reduce` (the last micro-batch of a
    /// step) the backward also sums the accumulated gradients over ranks, overlapped with the
    /// backward where the backend can; the flag returned says whether that happened.
    #[allow(clippy::too_many_arguments)]
    fn run_batch(
        &mut self,
        insts: &[&Instance],
        lm_total: f64,
        seq_total: f64,
        seed: u64,
        train: bool,
        reduce: bool,
    ) -> Result<(Totals, bool)> {
        let objective = self.cfg.train.objective;
        let b = make_batch(insts, objective, self.pad);
        self.tape.reset();
        self.tape.set_training(train);
        self.tape.set_grad_enabled(train);
        // Mixed precision trains only; held-out scores are always computed in f32, so a bf16
        // run's held-out loss compares with an f32 run's.
        self.tape.set_precision(if train {
            self.cfg.train.precision
        } else {
            crate::Precision::F32
        });
        let input = BertInput::new(&b.ids, b.batch, b.seq)
            .with_token_types(&b.types)
            .with_attention_mask(&b.mask);
        let opts = ForwardOptions {
            seed,
            output_hidden_states: false,
        };
        let tape = &mut self.tape;
        let out = self.model.bert.forward(tape, &self.store, &input, &opts)?;
        let mut totals = Totals {
            tokens: b.mask.iter().map(|&m| m as f64).sum(),
            ..Totals::default()
        };
        let mut loss: Option<Var> = None;
        if !b.lm_rows.is_empty() {
            let logits =
                self.model
                    .mlm
                    .forward(tape, &self.store, &out.last_hidden_state, &b.lm_rows)?;
            totals.lm_count = b.lm_labels.len() as f64;
            if train {
                // the loss the gradient comes from also gives the logged sum (the kernel's
                // pass over the logits is not run a second time)
                let mean = tape.cross_entropy(&logits, &b.lm_labels, IGNORE)?;
                totals.lm_loss_sum = f64::from(mean.value().item()?) * totals.lm_count;
                totals.lm_correct = correct_count(logits.value(), &b.lm_labels);
                loss = Some(tape.mul_scalar(&mean, (totals.lm_count / lm_total) as f32)?);
            } else {
                let (l, c) = score(logits.value(), &b.lm_labels);
                totals.lm_loss_sum = l;
                totals.lm_correct = c;
            }
            if !train {
                for (&row, &label) in b.lm_rows.iter().zip(&b.lm_labels) {
                    let label = label as u32;
                    totals.lm_unigram_loss_sum += self.baselines.unigram_loss(label);
                    totals.lm_context_free_loss_sum +=
                        self.baselines.context_free_loss(b.ids[row as usize], label);
                }
            }
        }
        if objective == Objective::MlmNsp {
            let pooled = out.pooled.clone().expect("pre-training model has a pooler");
            let logits = self.model.nsp.forward(tape, &self.store, &pooled)?;
            let (l, c) = score(logits.value(), &b.nsp_labels);
            totals.nsp_loss_sum = l;
            totals.nsp_correct = c;
            totals.nsp_count = b.batch as f64;
            let weight = f64::from(self.cfg.train.nsp_loss_weight);
            if train && weight > 0.0 {
                let mean = tape.cross_entropy(&logits, &b.nsp_labels, IGNORE)?;
                let scaled =
                    tape.mul_scalar(&mean, (weight * b.batch as f64 / seq_total) as f32)?;
                loss = Some(match loss {
                    Some(l) => tape.add(&l, &scaled)?,
                    None => scaled,
                });
            }
        }
        let mut reduced = false;
        if let (true, Some(loss)) = (train, loss) {
            if reduce {
                let s = self
                    .comm
                    .backward_and_reduce(&self.tape, &loss, &mut self.store)?;
                self.comm_seconds += s.seconds;
                reduced = true;
            } else {
                let grads = self.tape.backward(&loss)?;
                self.store.accumulate(&grads)?;
            }
        }
        Ok((totals, reduced))
    }

    /// One optimisation step; returns the global totals and the gradient norm before clipping.
    pub fn train_step(&mut self) -> Result<(Totals, f32)> {
        let step = self.step;
        let idx = self.batch_indices(step);
        let data = self.data.clone();
        let global: Vec<&Instance> = idx.iter().map(|&i| &data.train[i]).collect();
        let lm_total: f64 = match self.cfg.train.objective {
            Objective::Ltr => global.iter().map(|i| (i.tokens.len() - 1) as f64).sum(),
            _ => global.iter().map(|i| i.masked_positions.len() as f64).sum(),
        };
        let seq_total = global.len() as f64;
        let mine = shard(global.len(), self.comm.rank(), self.comm.size());
        let local: Vec<&Instance> = global[mine.clone()].to_vec();
        let micro = self
            .cfg
            .train
            .micro_batch_size
            .unwrap_or(local.len())
            .max(1);
        self.store.zero_grads();
        let mut totals = Totals::default();
        let chunks: Vec<&[&Instance]> = local.chunks(micro).collect();
        let mut reduced = false;
        for (k, chunk) in chunks.iter().enumerate() {
            // the dropout seed depends on the global position of the micro-batch
            let seed = mix(
                mix(self.cfg.train.seed, step),
                (mine.start / micro + k) as u64,
            );
            let last = k + 1 == chunks.len();
            let (t, r) = self.run_batch(chunk, lm_total.max(1.0), seq_total, seed, true, last)?;
            reduced |= r;
            totals.add(&t);
        }
        if !reduced {
            let s = GradSync::default().sync(self.comm, &mut self.store);
            self.comm_seconds += s.seconds;
        }
        let mut arr = totals.as_array();
        self.comm.all_reduce_sum_f64(&mut arr);
        let totals = Totals::from_array(arr);
        let norm = self.store.clip_grad_norm(self.cfg.train.max_grad_norm)?;
        crate::train::ensure_finite_step(
            step + 1,
            &[
                ("lm_loss", totals.lm_loss_sum),
                ("nsp_loss", totals.nsp_loss_sum),
            ],
            norm,
            &[&self.store],
        )?;
        let lr = self.schedule.lr(step);
        self.opt.step(&mut self.store, lr)?;
        self.step += 1;
        Ok((totals, norm))
    }

    /// Held-out evaluation over up to `eval_batches` batches (no dropout, no gradients).
    pub fn evaluate(&mut self) -> Result<Totals> {
        let b = self.cfg.train.batch_size;
        let n = self
            .data
            .heldout
            .len()
            .min(b.saturating_mul(self.cfg.train.eval_batches));
        let mine = shard(n, self.comm.rank(), self.comm.size());
        let mut totals = Totals::default();
        let data = self.data.clone();
        let held = &data.heldout[mine];
        for chunk in held.chunks(self.cfg.train.micro_batch_size.unwrap_or(b).max(1)) {
            let refs: Vec<&Instance> = chunk.iter().collect();
            let (t, _) = self.run_batch(&refs, 1.0, 1.0, 0, false, false)?;
            totals.add(&t);
        }
        self.tape.set_grad_enabled(true);
        let mut arr = totals.as_array();
        self.comm.all_reduce_sum_f64(&mut arr);
        let totals = Totals::from_array(arr);
        if totals.lm_count == 0.0 {
            // a loss over no positions would read as a perfect model (perplexity 1.00)
            return invalid(
                "evaluate",
                format!(
                    "the held-out evaluation covered no predicted positions ({n} held-out instances read, train.eval_batches {}, train.batch_size {b})",
                    self.cfg.train.eval_batches
                ),
            );
        }
        Ok(totals)
    }
}
