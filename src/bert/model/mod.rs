//! The BERT model on the tape: embeddings, post-LN encoder, pooler and the task heads.
//!
//! Parameters live in a [`ParamStore`](crate::ParamStore) under HF `BertModel` names (no
//! `bert.` prefix; the checkpoint writer adds it for task models):
//! `embeddings.word_embeddings.weight`,
//! `encoder.layer.{i}.attention.self.query.weight` (`[out, in]`), …, `pooler.dense.weight`,
//! `cls.predictions.*`, `cls.seq_relationship.*`, `classifier.*`.
//!
//! One encoder layer, as the original TF code builds it (post-LN):
//!
//! ```text
//! q, k, v   = x·Wqᵀ + bq, x·Wkᵀ + bk, x·Wvᵀ + bv          split into A heads of H/A
//! ctx       = dropout(softmax(q·kᵀ/√d + mask)) · v          heads concatenated
//! a         = LayerNorm(x + dropout(ctx·Woᵀ + bo))
//! out       = LayerNorm(a + dropout(act(a·W1ᵀ + b1)·W2ᵀ + b2))
//! ```
//!
//! The attention mask is additive on the keys: 0 for real tokens, −10000 for padding (the TF
//! original; HF's dtype-minimum gives the same probabilities, as exp(−10000) is 0 in f32).
//! With `config.is_decoder` the encoder is causal (left-to-right).
//!
//! With `config.pre_layer_norm` (cloze's pre-LN option, not the paper's model) the two
//! LayerNorms of a layer move to the sub-layer inputs and a final `encoder.LayerNorm` follows
//! the last layer:
//!
//! ```text
//! a         = x + dropout(Attn(LayerNorm_attn(x)))      LayerNorm_attn = attention.output.LayerNorm
//! out       = a + dropout(FFN(LayerNorm_ffn(a)))        LayerNorm_ffn  = output.LayerNorm
//! encoder   = LayerNorm_final(out of the last layer)    encoder.LayerNorm
//! ```
//!
//! The pieces, one module each: [`input`] (the batch and its mask), [`embeddings`], [`layer`]
//! (one encoder layer and its [`Linear`]/[`LayerNorm`] blocks), [`encoder`] ([`BertModel`]:
//! the stack and the pooler) and [`heads`] (the task heads and the models built from them).

pub mod embeddings;
pub mod encoder;
pub mod heads;
pub mod input;
pub mod layer;

pub use embeddings::BertEmbeddings;
pub use encoder::{BertModel, BertOutput, ForwardOptions};
pub use heads::{
    BertForPreTraining, BertForSequenceClassification, ClassifierHead, MlmHead, NspHead,
    PreTrainingOutput,
};
pub use input::{BertInput, MASK_ADDER};
pub use layer::{BertLayer, LayerNorm, Linear};
