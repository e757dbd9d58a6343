//! Continued pre-training (`model.init_from`) carries the source folder's tokenizer settings
//! into what it saves: a cased source gives a cased final model and cased checkpoints.

mod common;

use cloze::bert::folder::{load_tokenizer, FolderSettings};
use cloze::pretrain::config::PretrainConfig;
use cloze::pretrain::trainer::Pretrainer;
use common::tiny::{tiny_mlm, tmp};
use std::path::Path;

/// Pre-trains 2 steps from `dir/hf` (a tiny BertForPreTraining folder over the shared tiny
/// vocabulary, which holds both `Cat` and `cat`), checkpointing every step.
fn continue_from(dir: &Path) {
    let mut corpus = String::new();
    for i in 0..12 {
        corpus += "the Cat sat on the mat .\na good film .\nthe dog sat on a café mat .\n";
        if i % 2 == 1 {
            corpus += "\n";
        }
    }
    std::fs::write(dir.join("corpus.txt"), corpus).unwrap();
    let toml = "output_dir = \"run\"\n[model]\ninit_from = \"hf\"\n[data]\n\
                train = \"corpus.txt\"\nheldout_every = 3\nmax_seq_length = 16\n\
                max_predictions_per_seq = 3\ndupe_factor = 2\n[train]\nobjective = \"mlm\"\n\
                batch_size = 4\nsteps = 2\nlearning_rate = 1e-3\nwarmup_steps = 1\nseed = 5\n\
                log_every = 1\neval_every = 0\ncheckpoint_every = 1\n";
    let p = dir.join("pt.toml");
    std::fs::write(&p, toml).unwrap();
    let totals = Pretrainer::single(PretrainConfig::from_file(&p).unwrap())
        .unwrap()
        .run()
        .unwrap();
    assert!(totals.lm_loss().is_finite());
}

#[test]
fn pretraining_from_a_cased_folder_saves_a_cased_model() {
    let dir = tmp("init-from-cased");
    let hf = dir.join("hf");
    tiny_mlm(&hf, None);
    std::fs::write(
        hf.join("tokenizer_config.json"),
        r#"{"do_lower_case": false, "model_max_length": 24}"#,
    )
    .unwrap();
    assert_eq!(
        load_tokenizer(&hf).unwrap().tokenize("Cat café"),
        ["Cat", "café"]
    );
    continue_from(&dir);
    let run = dir.join("run");
    let last_checkpoint = run.join("checkpoints").join("step-00000002");
    for out in [run.join("final"), last_checkpoint] {
        let tok = load_tokenizer(&out).unwrap();
        assert_eq!(
            tok.tokenize("Cat café"),
            ["Cat", "café"],
            "{}",
            out.display()
        );
        let s = FolderSettings::read(&out).unwrap();
        assert_eq!(s.do_lower_case, Some(false), "{}", out.display());
        assert_eq!(s.model_max_length, Some(24), "{}", out.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pretraining_from_a_folder_without_tokenizer_settings_stays_uncased() {
    let dir = tmp("init-from-uncased");
    tiny_mlm(&dir.join("hf"), None);
    continue_from(&dir);
    let fin = dir.join("run").join("final");
    assert_eq!(
        load_tokenizer(&fin).unwrap().tokenize("Cat café"),
        ["cat", "cafe"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
