//! BERT on the cloze engine.
//!
//! - [`config`]: [`BertConfig`] under HF `config.json` names, presets, parameter counts.
//! - [`model`]: [`BertModel`] (embeddings, post-LN encoder, pooler), the MLM, NSP and
//!   classification heads, [`BertForPreTraining`], [`BertForSequenceClassification`]; one
//!   submodule each for the input, the embeddings, a layer, the encoder and the heads.
//! - [`checkpoint`]: HF safetensors + `config.json` read/write.
//! - [`folder`]: the folder's tokenizer, sentence-transformers and pooling settings.
//! - [`embed`]: sentence embeddings; [`predict`]: fill-mask and classifier predictions.
//! - [`init`]: per-parameter initialiser streams and dropout seeds.
//!
//! ```no_run
//! use cloze::bert::{checkpoint, BertInput, BertModel, ForwardOptions};
//! use cloze::{ParamStore, Tape};
//! let (config, ckpt) = checkpoint::load_pretrained("path/to/model").unwrap();
//! let mut store = ParamStore::new();
//! let model = BertModel::new(&config, &mut store, 0).unwrap();
//! ckpt.load_into(&mut store).unwrap();
//! let mut tape = Tape::new();
//! tape.set_training(false);
//! let ids = [101, 7592, 2088, 102];
//! let out = tape
//!     .no_grad(|t| model.forward(t, &store, &BertInput::new(&ids, 1, 4), &ForwardOptions::default()))
//!     .unwrap();
//! println!("{:?}", out.last_hidden_state.shape());
//! ```

pub mod checkpoint;
pub mod config;
pub mod embed;
pub mod folder;
pub mod init;
pub mod model;
pub mod predict;

pub use checkpoint::{load_pretrained, save_pretrained, Checkpoint, LoadOptions};
pub use config::{BertConfig, HiddenAct};
pub use model::{
    BertForPreTraining, BertForSequenceClassification, BertInput, BertModel, BertOutput,
    ClassifierHead, ForwardOptions, MlmHead, NspHead, PreTrainingOutput,
};
