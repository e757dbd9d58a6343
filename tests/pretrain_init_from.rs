//! Pre-training that starts from a Hugging Face folder (`model.init_from`): the folder's
//! tensors are loaded, the heads it lacks are initialised, and settings that would contradict
//! the folder are refused by name.

mod common;

use cloze::bert::{save_pretrained, BertConfig};
use cloze::ParamStore;
use common::assert_mentions;
use common::tiny::tmp;

#[test]
fn pretraining_continues_from_an_hf_folder() {
    use cloze::bert::model::BertModel;
    use cloze::pretrain::config::PretrainConfig;
    use cloze::pretrain::trainer::Pretrainer;
    let dir = tmp("init-from");
    let corpus = common::shared_path("data/fixtures/tiny-corpus.txt");
    let mut t = cloze::tokenizer::Trainer::new(cloze::tokenizer::TrainerConfig {
        vocab_size: 400,
        min_frequency: 2,
        ..cloze::tokenizer::TrainerConfig::default()
    });
    t.feed_file(&corpus).unwrap();
    let vocab = t.train().unwrap();
    // an encoder-only folder (no cls.* heads, as sentence encoders ship)
    let hf = dir.join("hf");
    let mut c = BertConfig::with_shape(2, 32, 2, 64);
    c.vocab_size = vocab.len();
    c.max_position_embeddings = 64;
    c.architectures = vec!["BertModel".into()];
    let mut store = ParamStore::new();
    BertModel::new(&c, &mut store, 99).unwrap();
    save_pretrained(&hf, &c, &store).unwrap();
    vocab.save(hf.join("vocab.txt")).unwrap();
    let toml = |model: &str| {
        format!(
            "output_dir = \"run\"\n[model]\n{model}\n[data]\ntrain = \"{}\"\nheldout_every = 2\n\
             max_seq_length = 48\nmax_predictions_per_seq = 8\ndupe_factor = 1\n[train]\n\
             objective = \"mlm\"\nbatch_size = 8\nsteps = 2\nlearning_rate = 1e-3\n\
             warmup_steps = 1\nseed = 3\nlog_every = 1\neval_every = 0\ncheckpoint_every = 0\n",
            corpus.display()
        )
    };
    let p = dir.join("pt.toml");
    std::fs::write(&p, toml("init_from = \"hf\"")).unwrap();
    let cfg = PretrainConfig::from_file(&p).unwrap();
    assert_eq!(cfg.data.vocab, hf.join("vocab.txt"));
    let mut tr = Pretrainer::single(cfg).unwrap();
    // the folder's tensors were loaded; the MLM head it lacks exists, freshly initialised
    let ck = cloze::bert::Checkpoint::read(hf.join("model.safetensors")).unwrap();
    for name in [
        "embeddings.word_embeddings.weight",
        "encoder.layer.1.attention.self.query.weight",
        "pooler.dense.weight",
    ] {
        let id = tr.store.id(name).unwrap();
        assert_eq!(
            tr.store.value(id).data(),
            ck.get(name).unwrap().data(),
            "{name}"
        );
    }
    assert!(tr
        .store
        .id("cls.predictions.transform.dense.weight")
        .is_some());
    let totals = tr.run().unwrap();
    assert!(totals.lm_loss().is_finite());
    // shape overrides and a preset are refused by name
    std::fs::write(&p, toml("init_from = \"hf\"\nhidden_size = 64")).unwrap();
    let e = Pretrainer::single(PretrainConfig::from_file(&p).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert_mentions(&e, &["model.hidden_size", "init_from"]);
    std::fs::write(&p, toml("init_from = \"hf\"\npreset = \"tiny\"")).unwrap();
    let e = PretrainConfig::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("model.preset"), "{e}");
    std::fs::write(&p, toml("")).unwrap();
    let e = PretrainConfig::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("model.preset"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
