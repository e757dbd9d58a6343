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
//! Above them, BERT itself and what it is used for:
//! - [`bert`]: the model ([`bert::BertModel`] and its heads), HF `config.json` /
//!   `model.safetensors` folders, sentence embeddings ([`bert::embed`]) and predictions
//!   ([`bert::predict`]);
//! - [`tokenizer`]: WordPiece tokenization identical to HF's `BertTokenizer`, and vocabulary
//!   training;
//! - [`pretrain`]: pre-training from a TOML config (masked LM, next sentence, the ablations);
//! - [`finetune`]: sentence(-pair) classification and regression, span extraction (SQuAD) and
//!   token tagging;
//! - [`optim`], [`train`], [`distributed`]: AdamW and its schedule, checkpoints, and
//!   data-parallel gradient sums.
//!
//! # Tokenizing
//!
//! ```
//! use cloze::tokenizer::{EncodeOptions, PairTruncation, Tokenizer, Vocab};
//! let vocab = Vocab::from_tokens([
//!     "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s",
//! ])?;
//! let tok = Tokenizer::new(vocab); // uncased BERT: lower-cases and strips accents
//! assert_eq!(tok.tokenize("The cats sat"), ["the", "cat", "##s", "sat"]);
//! let pair = tok.encode_pair("the cat", "sat on the mat");
//! assert_eq!(pair.input_ids, [2, 5, 6, 3, 7, 8, 5, 9, 3]);
//! assert_eq!(pair.token_type_ids, [0, 0, 0, 0, 1, 1, 1, 1, 1]);
//! // truncation to 8 tokens, with the fast (Rust `tokenizers`) rule for pairs
//! let opts = EncodeOptions::truncate(8).with_pair_truncation(PairTruncation::Fast);
//! assert_eq!(tok.encode_with("the cat", Some("sat on the mat"), &opts)?.len(), 8);
//! # Ok::<(), cloze::Error>(())
//! ```
//!
//! # Loading a model folder and embedding
//!
//! A model folder is HF's layout: `config.json`, `model.safetensors`, `vocab.txt`, and
//! optionally `tokenizer_config.json` (casing, maximum length) and sentence-transformers'
//! `sentence_bert_config.json`, `modules.json` and `1_Pooling/config.json`, all honoured.
//! This example saves a tiny random model to stand in for a downloaded one such as
//! `all-MiniLM-L6-v2` (whose embeddings cloze reproduces to within 2.5e-7):
//!
//! ```
//! use cloze::bert::embed::Embedder;
//! use cloze::bert::folder::load_tokenizer;
//! use cloze::bert::predict::FillMask;
//! use cloze::bert::{save_pretrained, BertConfig, BertForPreTraining};
//! use cloze::tokenizer::Vocab;
//! use cloze::ParamStore;
//!
//! let dir = std::env::temp_dir().join(format!("cloze-doc-model-{}", std::process::id()));
//! let vocab = Vocab::from_tokens([
//!     "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Paris", "paris", "is", "in", "france", ".",
//! ])?;
//! let mut config = BertConfig::with_shape(2, 16, 2, 32); // layers, hidden, heads, FFN width
//! config.vocab_size = vocab.len();
//! let mut store = ParamStore::new();
//! BertForPreTraining::new(&config, &mut store, 0)?; // random weights, HF parameter names
//! save_pretrained(&dir, &config, &store)?;
//! vocab.save(dir.join("vocab.txt"))?;
//! std::fs::write(dir.join("tokenizer_config.json"), r#"{"do_lower_case": false}"#)?;
//!
//! // the folder's tokenizer keeps case, as its tokenizer_config.json says
//! let tokens = load_tokenizer(&dir)?.tokenize("Paris is in france .");
//! assert_eq!(tokens, ["Paris", "is", "in", "france", "."]);
//!
//! // sentence embeddings: pooled last hidden states (mean unless the folder says otherwise),
//! // L2-normalised, one [H] vector per input
//! let emb = Embedder::load(&dir)?;
//! let out = emb.embed_batch(&[("Paris is in france .", None), ("paris", None)], None)?;
//! assert_eq!(out.len(), 2);
//! assert_eq!(out[0].embedding.len(), 16);
//! assert_eq!(out[0].last_hidden_state.shape(), [7, 16]); // [T, H] with [CLS] and [SEP]
//!
//! // masked-token filling with the pre-training head
//! let fm = FillMask::load(&dir)?;
//! let masks = fm.fill("Paris is in [MASK] .", None, 3)?;
//! assert_eq!(masks[0].candidates.len(), 3);
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Pre-training from a config
//!
//! Every setting of a run is in its TOML config ([`pretrain::config::PretrainConfig`]; the
//! `cloze pretrain` command reads the same file). Here a tiny model learns from a tiny corpus
//! for three steps; the vocabulary is learned from the corpus first because `data.vocab` does
//! not exist yet:
//!
//! ```
//! use cloze::pretrain::config::PretrainConfig;
//! use cloze::pretrain::trainer::Pretrainer;
//!
//! let dir = std::env::temp_dir().join(format!("cloze-doc-pretrain-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! // one sentence per line, a blank line between documents
//! let corpus: String = (0..30)
//!     .map(|i| format!("the cat sat on mat {i} .\nthe dog lay by door {} .\n\n", i % 7))
//!     .collect();
//! std::fs::write(dir.join("corpus.txt"), corpus)?;
//! let toml = format!(
//!     r#"
//! output_dir = '{dir}/run'
//! [model]
//! preset = "tiny"
//! num_hidden_layers = 1
//! hidden_size = 32
//! num_attention_heads = 2
//! intermediate_size = 64
//! max_position_embeddings = 32
//! [data]
//! vocab = '{dir}/vocab.txt'
//! train_vocab_size = 100
//! train = '{dir}/corpus.txt'
//! heldout_every = 5
//! max_seq_length = 32
//! max_predictions_per_seq = 4
//! [train]
//! objective = "mlm+nsp"
//! batch_size = 8
//! steps = 3
//! learning_rate = 1e-3
//! warmup_steps = 1
//! seed = 1
//! "#,
//!     dir = dir.display()
//! );
//! let cfg = PretrainConfig::from_toml_str(&toml, "example config")?;
//! let held_out = Pretrainer::single(cfg)?.run()?; // resumes from a checkpoint if there is one
//! assert!(held_out.lm_loss().is_finite() && held_out.lm_count > 0.0);
//! // run/final is an HF folder: it loads in `BertForPreTraining` and in cloze's own loaders
//! assert!(dir.join("run/final/model.safetensors").exists());
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Fine-tuning
//!
//! A classifier on the pooled `[CLS]` vector, trained with the paper's recipe
//! ([`finetune::trainer::FinetuneConfig::paper`]) or your own settings, and saved as HF's
//! `BertForSequenceClassification` folder:
//!
//! ```
//! use cloze::bert::predict::Predictor;
//! use cloze::bert::{save_pretrained, BertConfig, BertForPreTraining};
//! use cloze::finetune::data::Example;
//! use cloze::finetune::trainer::{finetune, FinetuneConfig};
//! use cloze::tokenizer::Vocab;
//! use cloze::ParamStore;
//!
//! // a tiny random model stands in for a pre-trained one
//! let dir = std::env::temp_dir().join(format!("cloze-doc-finetune-{}", std::process::id()));
//! let vocab = Vocab::from_tokens([
//!     "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "good", "bad", "film", "plot",
//! ])?;
//! let mut config = BertConfig::with_shape(1, 16, 2, 32);
//! config.vocab_size = vocab.len();
//! let mut store = ParamStore::new();
//! BertForPreTraining::new(&config, &mut store, 0)?;
//! save_pretrained(dir.join("base"), &config, &store)?;
//! vocab.save(dir.join("base/vocab.txt"))?;
//!
//! let example = |text: &str, label| Example {
//!     text_a: text.into(),
//!     text_b: None,
//!     label,
//!     score: None,
//! };
//! let train: Vec<Example> = (0..8)
//!     .flat_map(|_| [example("a good film", 1), example("a bad plot", 0)])
//!     .collect();
//! let cfg = FinetuneConfig {
//!     learning_rates: vec![1e-3], // without this, the paper's grid {5e-5, 3e-5, 2e-5}
//!     epochs: 2,
//!     batch_size: 4,
//!     max_seq_length: 16,
//!     ..FinetuneConfig::paper(dir.join("base"), 2) // 2 classes
//! };
//! let (classifier, scores) = finetune(&cfg, &train, &train[..4])?;
//! assert!((0.0..=1.0).contains(&scores[0].accuracy)); // dev scores per learning rate
//! assert_eq!(classifier.predict(&train[..2], 32)?.len(), 2);
//!
//! // saved with its label names, it loads back for predictions (and in transformers'
//! // AutoModelForSequenceClassification)
//! classifier.save_pretrained(&dir.join("sentiment"), &["negative".into(), "positive".into()])?;
//! let p = Predictor::load(dir.join("sentiment"))?.predict(&[("a good film", None)], false)?;
//! assert_eq!(p[0].probabilities.len(), 2);
//! assert!(p[0].label == "negative" || p[0].label == "positive");
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

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
pub use autodiff::tape::{Backward, Gradients, Precision, Tape, Var};
pub use error::{Error, Result};
pub use tensor::Tensor;

/// The kernels crate, re-exported for users who want the raw slice functions.
pub use cloze_kernels as kernels;
