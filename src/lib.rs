//! cloze: train BERT-style models from scratch on CPUs.
//!
//! The layers, bottom up:
//! - [`tensor`]: an f32, row-major, cheaply cloned [`Tensor`].
//! - [`autodiff`]: the [`Tape`] that records ops and runs reverse-mode backward, the
//!   [`ParamStore`] that keeps parameters and their gradients across steps, and [`gradcheck`].
//! - [`ops`]: every differentiable op, one module per op, each holding its forward, its backward
//!   and a link to the `cloze-kernels` kernel it calls; element-wise ops implement the
//!   [`ops::elementwise::Unary`] and [`ops::elementwise::Binary`] traits.
//! - [`fs`]: the file helpers every writer shares (atomic writes, checksums).
//!
//! All `unsafe` code lives in the kernels crate; this crate forbids it.
//!
//! ```
//! use cloze::{Tape, Tensor};
//! let mut tape = Tape::new();
//! let x = tape.leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]).unwrap());
//! let y = tape.mul(&x, &x).unwrap();
//! let loss = tape.sum(&y).unwrap();
//! let grads = tape.backward(&loss).unwrap();
//! assert_eq!(grads.get(&x).unwrap().data(), &[2.0, 4.0, 6.0]);
//! ```
//!
//! Using a model folder (HF layout: `config.json`, `model.safetensors`, `vocab.txt`; the
//! folder's tokenizer, sentence-transformers and pooling settings are honoured):
//!
//! ```no_run
//! use cloze::bert::embed::Embedder;
//! use cloze::bert::folder::load_tokenizer;
//! use cloze::bert::predict::{FillMask, Predictor};
//!
//! // tokenize with the folder's casing
//! let tok = load_tokenizer("all-MiniLM-L6-v2").unwrap();
//! println!("{:?}", tok.encode("Hello world").tokens);
//!
//! // sentence embeddings, as sentence-transformers computes them
//! let emb = Embedder::load("all-MiniLM-L6-v2").unwrap();
//! let out = emb.embed_batch(&[("Hello world", None)], None).unwrap();
//! println!("{}", out[0].embedding.len());
//!
//! // masked-token filling (needs the MLM head) and classifier predictions
//! let fm = FillMask::load("my-pretrained").unwrap();
//! println!("{:?}", fm.fill("paris is the [MASK] of france .", None, 3).unwrap());
//! let clf = Predictor::load("my-finetuned").unwrap();
//! println!("{:?}", clf.predict(&[("a fine film", None)], false).unwrap()[0].label);
//! ```
//!
//! Pre-training runs from a TOML config ([`pretrain::config::PretrainConfig`],
//! [`pretrain::trainer::Pretrainer`]); fine-tuning from a model folder and labelled examples
//! ([`finetune::trainer::FinetuneConfig`], [`finetune::trainer::finetune`]).

#![forbid(unsafe_code)]

/// Functions for serde's `#[serde(default = "name")]`, one line each:
/// `serde_defaults! { name: Type = value; … }`.
macro_rules! serde_defaults {
    ($($name:ident: $t:ty = $v:expr;)*) => {
        $(fn $name() -> $t { $v })*
    };
}

pub mod autodiff;
pub mod bert;
pub mod distributed;
pub mod error;
pub mod finetune;
pub mod fs;
pub mod ops;
pub mod optim;
pub mod pretrain;
pub mod tensor;
pub mod tokenizer;
pub mod train;

pub use autodiff::gradcheck::{gradcheck, GradcheckOptions, GradcheckReport};
pub use autodiff::params::{ParamId, ParamStore};
pub use autodiff::tape::{Backward, Gradients, Tape, Var};
pub use error::{Error, Result};
pub use tensor::Tensor;

/// The kernels crate, re-exported for users who want the raw slice functions.
pub use cloze_kernels as kernels;
