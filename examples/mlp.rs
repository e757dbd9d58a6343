//! A two-layer MLP trained end to end with the tape: 3-class 2-D spirals, full-batch SGD.
//!
//! ```text
//! cargo run --release --example mlp
//! ```
//!
//! Model: `logits = W₂·gelu(W₁·x + b₁) + b₂` (hidden width 64). Loss: the mean negative
//! log-likelihood, built by hand from `log_softmax`, a constant weight tensor holding −1/N at
//! each row's label (0 elsewhere), `mul` and `sum`. The optimiser is plain SGD written here:
//! `param −= lr · grad` through `ParamStore::value_and_grad_mut`.
//!
//! Everything is seeded (ChaCha8), so every run prints the same numbers. The process fails
//! (before printing that the loss fell) if the loss does not fall to under a quarter of its
//! initial value.

use cloze::ops::gelu::GeluKind;
use cloze::{ParamStore, Tape, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CLASSES: usize = 3;
const PER_CLASS: usize = 100;
const HIDDEN: usize = 64;
const STEPS: usize = 1500;
const LR: f32 = 1.0;
const PRINT_EVERY: usize = 150;

/// CS231n-style spirals: class c's points wind out from the origin along an arm starting at
/// angle 4c, with a little angular noise. Returns inputs `[N, 2]` and labels.
fn spirals(rng: &mut ChaCha8Rng) -> (Tensor, Vec<usize>) {
    let mut xs = Vec::with_capacity(CLASSES * PER_CLASS * 2);
    let mut labels = Vec::with_capacity(CLASSES * PER_CLASS);
    for c in 0..CLASSES {
        for i in 0..PER_CLASS {
            let r = i as f32 / (PER_CLASS - 1) as f32;
            let theta = 4.0 * c as f32 + 4.0 * r + rng.random_range(-0.2f32..0.2);
            xs.extend([r * theta.sin(), r * theta.cos()]);
            labels.push(c);
        }
    }
    let n = labels.len();
    (
        Tensor::from_vec(xs, &[n, 2]).expect("2 values per point"),
        labels,
    )
}

struct Mlp {
    w1: cloze::ParamId,
    b1: cloze::ParamId,
    w2: cloze::ParamId,
    b2: cloze::ParamId,
}

impl Mlp {
    fn new(store: &mut ParamStore, rng: &mut ChaCha8Rng) -> cloze::Result<Mlp> {
        // He-style scale: std √(2 / fan_in), which is 1 for the 2 inputs. Weights are
        // [out, in] and used as x·Wᵀ.
        let w1 = Tensor::randn(&[HIDDEN, 2], 0.0, 1.0, rng)?;
        let w2 = Tensor::randn(&[CLASSES, HIDDEN], 0.0, (2.0 / HIDDEN as f32).sqrt(), rng)?;
        Ok(Mlp {
            w1: store.add("w1", w1)?,
            b1: store.add("b1", Tensor::zeros(&[HIDDEN]))?,
            w2: store.add("w2", w2)?,
            b2: store.add("b2", Tensor::zeros(&[CLASSES]))?,
        })
    }

    /// Logits `[N, CLASSES]`.
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: &Var) -> cloze::Result<Var> {
        let (w1, b1) = (tape.param(store, self.w1), tape.param(store, self.b1));
        let (w2, b2) = (tape.param(store, self.w2), tape.param(store, self.b2));
        let h = tape.matmul_t(x, &w1, false, true)?;
        let h = tape.add(&h, &b1)?;
        let h = tape.gelu(&h, GeluKind::Erf)?;
        let o = tape.matmul_t(&h, &w2, false, true)?;
        tape.add(&o, &b2)
    }
}

/// `[N, CLASSES]` with −1/N at each row's label: `sum(log_softmax ⊙ this)` is the mean NLL.
fn nll_weights(labels: &[usize]) -> Tensor {
    let n = labels.len();
    Tensor::from_fn(&[n, CLASSES], |i| {
        if labels[i / CLASSES] == i % CLASSES {
            -1.0 / n as f32
        } else {
            0.0
        }
    })
}

fn accuracy(logits: &Tensor, labels: &[usize]) -> f32 {
    let correct = logits
        .data()
        .chunks(CLASSES)
        .zip(labels)
        .filter(|(row, &label)| {
            let best = (0..CLASSES)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .expect("CLASSES > 0");
            best == label
        })
        .count();
    correct as f32 / labels.len() as f32
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let (x, labels) = spirals(&mut rng);
    // A second draw of the same spirals (fresh angular noise) to check generalisation.
    let (x_test, labels_test) = spirals(&mut rng);
    let weights = Var::constant(nll_weights(&labels));
    let x = Var::constant(x);

    let mut store = ParamStore::new();
    let model = Mlp::new(&mut store, &mut rng)?;
    println!(
        "spirals: {} points, {CLASSES} classes; MLP 2→{HIDDEN}→{CLASSES} (GELU), {} parameters; SGD lr {LR}, {STEPS} full-batch steps",
        labels.len(),
        store.num_elements()
    );

    let start = std::time::Instant::now();
    let mut tape = Tape::new();
    let mut first_loss = None;
    let mut last_loss = f32::NAN;
    for step in 0..=STEPS {
        tape.reset();
        let logits = model.forward(&mut tape, &store, &x)?;
        let logp = tape.log_softmax(&logits)?;
        let picked = tape.mul(&logp, &weights)?;
        let loss = tape.sum(&picked)?;
        let value = loss.value().item()?;
        first_loss.get_or_insert(value);
        last_loss = value;
        if step % PRINT_EVERY == 0 {
            println!(
                "step {step:5}  loss {value:.4}  accuracy {:.1}%",
                100.0 * accuracy(logits.value(), &labels)
            );
        }
        if step == STEPS {
            break;
        }
        let grads = tape.backward(&loss)?;
        store.zero_grads();
        store.accumulate(&grads)?;
        for id in store.ids() {
            let (value, grad) = store.value_and_grad_mut(id);
            if let Some(grad) = grad {
                for (p, g) in value.iter_mut().zip(grad.data()) {
                    *p -= LR * g;
                }
            }
        }
    }

    tape.reset();
    let train = tape.no_grad(|t| model.forward(t, &store, &x))?;
    let test = tape.no_grad(|t| model.forward(t, &store, &Var::constant(x_test)))?;
    let first = first_loss.expect("at least one step");
    if last_loss.is_nan() || last_loss >= 0.25 * first {
        return Err(format!("the loss did not fall clearly: {first} → {last_loss}").into());
    }
    println!(
        "loss fell clearly, from {first:.4} to {last_loss:.4} ({:.1}× lower), in {:.2} s",
        first / last_loss,
        start.elapsed().as_secs_f32()
    );
    println!(
        "final accuracy: {:.1}% on the training points, {:.1}% on a fresh draw of {} points",
        100.0 * accuracy(train.value(), &labels),
        100.0 * accuracy(test.value(), &labels_test),
        labels_test.len()
    );
    Ok(())
}
