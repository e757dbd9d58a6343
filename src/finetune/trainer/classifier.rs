//! A fine-tuned classifier: prediction over examples, and saving it as an HF folder.

use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::Tape;
use crate::bert::model::{BertForSequenceClassification, BertInput, ForwardOptions};
use crate::error::{invalid, Result};
use crate::finetune::data::Example;
use crate::tokenizer::{EncodeOptions, Encoding, PaddedBatch, PairTruncation, Tokenizer};
use std::path::Path;

pub(super) struct Encoded {
    pub(super) enc: Vec<Encoding>,
    pub(super) labels: Vec<usize>,
}

pub(super) fn encode(
    tok: &Tokenizer,
    ex: &[Example],
    max_len: usize,
    pair_rule: PairTruncation,
    num_labels: usize,
    what: &str,
) -> Result<Encoded> {
    let opts = EncodeOptions::truncate(max_len).with_pair_truncation(pair_rule);
    let mut enc = Vec::with_capacity(ex.len());
    for (i, e) in ex.iter().enumerate() {
        if e.label >= num_labels {
            return invalid(
                "finetune",
                format!(
                    "{what} example {i} has label {} but num_labels is {num_labels}",
                    e.label
                ),
            );
        }
        enc.push(tok.encode_with(&e.text_a, e.text_b.as_deref(), &opts)?);
    }
    Ok(Encoded {
        enc,
        labels: ex.iter().map(|e| e.label).collect(),
    })
}

/// A fine-tuned classifier.
pub struct Classifier {
    /// The encoder with its pooler and classification head.
    pub model: BertForSequenceClassification,
    /// All weights.
    pub store: ParamStore,
    /// The model folder's tokenizer.
    pub tokenizer: Tokenizer,
    /// Examples are truncated to this many tokens.
    pub max_seq_length: usize,
    /// How a pair is cut to `max_seq_length` when both texts must lose tokens.
    pub pair_truncation: PairTruncation,
}

impl Classifier {
    /// Runs the model over `ex` in batches of `batch` and hands each example's logits row
    /// (`num_labels` values), in order, to `row`.
    fn for_each_logits_row(
        &self,
        ex: &[Example],
        batch: usize,
        mut row: impl FnMut(&[f32]),
    ) -> Result<()> {
        let nl = self.model.classifier.num_labels;
        let data = encode(
            &self.tokenizer,
            ex,
            self.max_seq_length,
            self.pair_truncation,
            usize::MAX,
            "eval",
        )?;
        let pad = self.tokenizer.vocab().pad_id();
        let mut tape = Tape::new();
        tape.set_training(false);
        tape.set_grad_enabled(false);
        for chunk in data.enc.chunks(batch.max(1)) {
            let refs: Vec<&Encoding> = chunk.iter().collect();
            let padded = PaddedBatch::new(&refs, pad);
            let input = BertInput::from_padded(&padded);
            tape.reset();
            let logits =
                self.model
                    .forward(&mut tape, &self.store, &input, &ForwardOptions::default())?;
            logits.value().data().chunks_exact(nl).for_each(&mut row);
        }
        Ok(())
    }

    /// The first head output of each example: the predicted score of a regression head
    /// (`num_labels` 1).
    pub fn predict_scores(&self, ex: &[Example], batch: usize) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(ex.len());
        self.for_each_logits_row(ex, batch, |r| out.push(r[0]))?;
        Ok(out)
    }

    /// Predicted classes of examples.
    pub fn predict(&self, ex: &[Example], batch: usize) -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(ex.len());
        self.for_each_logits_row(ex, batch, |r| out.push(crate::tensor::argmax(r)))?;
        Ok(out)
    }
}

impl Classifier {
    /// Saves the classifier as HF's `BertForSequenceClassification` folder: `config.json` with
    /// `architectures: ["BertForSequenceClassification"]`, `num_labels`, `id2label` /
    /// `label2id` (from `label_names`, one per class; `LABEL_i` when empty) and `problem_type`
    /// (`regression` for one output, else `single_label_classification`), `model.safetensors`
    /// (`bert.*`, `classifier.weight`/`bias`) and `vocab.txt`.
    pub fn save_pretrained(&self, dir: &Path, label_names: &[String]) -> Result<()> {
        let k = self.model.classifier.num_labels;
        let names: Vec<String> = if label_names.is_empty() {
            (0..k).map(|i| format!("LABEL_{i}")).collect()
        } else if label_names.len() == k {
            label_names.to_vec()
        } else {
            return invalid(
                "Classifier::save_pretrained",
                format!("{} label names for {k} classes", label_names.len()),
            );
        };
        let mut config = self.model.bert.config().clone();
        config.architectures = vec!["BertForSequenceClassification".into()];
        crate::bert::save_pretrained(dir, &config, &self.store)?;
        let mut v: serde_json::Value =
            serde_json::from_str(&config.to_json_string()).expect("a config serialises");
        let obj = v.as_object_mut().expect("an object");
        obj.insert("num_labels".into(), k.into());
        obj.insert(
            "id2label".into(),
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (i.to_string(), serde_json::Value::from(n.clone())))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
        obj.insert(
            "label2id".into(),
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), serde_json::Value::from(i)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
        let problem = if k == 1 {
            "regression"
        } else {
            "single_label_classification"
        };
        obj.insert("problem_type".into(), problem.into());
        let mut text = serde_json::to_string_pretty(&v).expect("serialises");
        text.push('\n');
        crate::train::checkpoint::write_atomic(&dir.join("config.json"), text.as_bytes())?;
        self.tokenizer.vocab().save(dir.join("vocab.txt"))?;
        crate::bert::folder::save_tokenizer_config(
            dir,
            self.tokenizer.basic(),
            Some(self.max_seq_length),
        )
    }
}
