//! Pre-training end to end on the tiny real corpus: the MLM loss falls, every objective and
//! the recipe options train, and a diverging run stops without writing a non-finite model.
//! Resume is tested in `pretrain_resume.rs`, config errors in `pretrain_config_errors.rs`.

mod common;

use cloze::pretrain::config::PretrainConfig;
use cloze::pretrain::trainer::Pretrainer;
use common::pretrain::{assert_fell, setup, setup_replacing, trainer, workdir};
use std::path::{Path, PathBuf};

#[test]
fn mlm_loss_falls_on_the_tiny_corpus() {
    let dir = workdir("smoke");
    let p = setup(&dir, 60, "");
    let initial = trainer(&p).evaluate().unwrap().lm_loss();
    let last = trainer(&p).run().unwrap();
    let ln_v = (600f64).ln();
    assert!(
        (initial - ln_v).abs() < 0.5,
        "initial held-out loss {initial} should be near ln V = {ln_v}"
    );
    // training MLM loss over the first and last logging windows (5 steps of 16 sequences each)
    let log: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("run/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("lm_loss").is_some())
        .collect();
    let (first, end) = (
        log[0]["lm_loss"].as_f64().unwrap(),
        log.last().unwrap()["lm_loss"].as_f64().unwrap(),
    );
    assert_fell("training MLM loss", first, end, 0.8);
    // the held-out split is two documents of another text: it must improve, if only a little
    assert_fell("held-out MLM loss", initial, last.lm_loss(), 0.1);
    assert!(last.nsp_count > 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mlm_only_and_left_to_right_objectives_train() {
    for objective in ["mlm", "ltr"] {
        let dir = workdir(&format!("obj-{objective}"));
        let path = setup(&dir, 30, "");
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "objective = \"mlm+nsp\"",
            &format!("objective = \"{objective}\""),
        );
        std::fs::write(&path, text).unwrap();
        let mut t = trainer(&path);
        // LTR makes causal windows and predicts every next token; MLM-only draws no random B
        assert!(t.data.train.iter().all(|i| !i.is_random_next));
        if objective == "ltr" {
            assert!(t.bert_config.is_decoder, "LTR must use causal attention");
            assert!(t
                .data
                .train
                .iter()
                .all(|i| i.masked_positions.is_empty() && i.segment_ids.iter().all(|&s| s == 0)));
        }
        let initial = t.evaluate().unwrap();
        let last = t.run().unwrap();
        assert_eq!(last.nsp_count, 0.0, "{objective}: no NSP task");
        assert!(last.lm_count > 0.0);
        assert_fell(
            &format!("{objective}: held-out LM loss"),
            initial.lm_loss(),
            last.lm_loss(),
            0.2,
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn unigram_bias_starts_at_the_unigram_loss_and_the_baselines_are_ordered() {
    // Before any step: a zero LM bias scores about ln V, the unigram start scores its own
    // unigram baseline (the encoder's small random logits add a little), and the context-free
    // floor is below the unigram loss (80/10/10 masking lets a predictor copy a visible token).
    let dir = workdir("baselines");
    let zeros = trainer(setup(&dir, 10, "")).evaluate().unwrap();
    let cfg = setup(
        &dir,
        10,
        "init_lm_bias = \"unigram\"\ninit_positions = \"sinusoidal\"",
    );
    let uni = trainer(cfg).evaluate().unwrap();
    let ln_v = (600f64).ln();
    assert!((zeros.lm_loss() - ln_v).abs() < 0.5, "{}", zeros.lm_loss());
    // same held-out positions whatever the initialisation
    assert_eq!(zeros.lm_unigram_loss(), uni.lm_unigram_loss());
    assert!(
        (uni.lm_loss() - uni.lm_unigram_loss()).abs() < 0.15,
        "unigram start {} vs unigram loss {}",
        uni.lm_loss(),
        uni.lm_unigram_loss()
    );
    assert!(uni.lm_unigram_loss() < ln_v - 0.5);
    assert_fell(
        "unigram loss to the context-free floor",
        uni.lm_unigram_loss(),
        uni.lm_context_free_loss(),
        0.1,
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn heldout_masking_can_differ_from_training() {
    // 40% masked in training, the held-out set at 15% with its own cap: the held-out
    // instances carry at most 4 predictions, the training ones up to 16.
    let dir = workdir("heldout-mask");
    let p = setup_replacing(
        &dir,
        5,
        "max_predictions_per_seq = 8",
        "masked_lm_prob = 0.4\nmax_predictions_per_seq = 16\nheldout_masked_lm_prob = 0.15\nheldout_max_predictions_per_seq = 4",
    );
    let t = trainer(&p);
    let held_max = t.data.heldout.iter().map(|i| i.masked_labels.len()).max();
    let train_max = t.data.train.iter().map(|i| i.masked_labels.len()).max();
    assert_eq!(held_max, Some(4));
    assert!(train_max.unwrap() > 8, "{train_max:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pre_ln_model_trains_on_the_tiny_corpus() {
    let dir = workdir("preln");
    let p = setup_replacing(
        &dir,
        40,
        "intermediate_size = 128",
        "intermediate_size = 128\npre_layer_norm = true",
    );
    let initial = trainer(&p).evaluate().unwrap().lm_loss();
    let last = trainer(&p).run().unwrap();
    assert_fell("held-out MLM loss", initial, last.lm_loss(), 0.2);
    let saved = std::fs::read_to_string(dir.join("run/final/config.json")).unwrap();
    assert!(saved.contains("cloze-preln-bert"), "{saved}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nsp_loss_weight_zero_trains_the_lm_on_pairs_and_leaves_the_nsp_head_alone() {
    // weight decay 0, so a parameter with no gradient does not move at all under AdamW;
    // returns whether the NSP head and a query weight moved
    let moved = |weight: &str| {
        let dir = workdir(&format!("nspw{weight}"));
        let p = setup(
            &dir,
            10,
            &format!("weight_decay = 0.0\nnsp_loss_weight = {weight}"),
        );
        let fresh = trainer(&p);
        let mut trained = trainer(&p);
        let totals = trained.run().unwrap();
        assert!(totals.lm_loss().is_finite());
        let changed = |n: &str| {
            let value = |t: &Pretrainer| {
                let id = t.store.id(n).unwrap_or_else(|| panic!("no parameter {n}"));
                t.store.value(id).data().to_vec()
            };
            value(&fresh) != value(&trained)
        };
        let out = (
            changed("cls.seq_relationship.weight"),
            changed("encoder.layer.0.attention.self.query.weight"),
        );
        std::fs::remove_dir_all(&dir).unwrap();
        out
    };
    assert_eq!(
        moved("0"),
        (false, true),
        "with nsp_loss_weight 0 the NSP head must stay, the encoder must train"
    );
    assert_eq!(
        moved("1"),
        (true, true),
        "with nsp_loss_weight 1 both train"
    );

    let dir = workdir("nspw-bad");
    let p = setup(&dir, 10, "nsp_loss_weight = -0.5");
    let err = PretrainConfig::from_file(&p)
        .and_then(|c| c.validate().map(|_| c))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("nsp_loss_weight -0.5"), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every `model.safetensors` under `dir` (checkpoints and the final model).
fn weight_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(weight_files(&p));
            } else if p.file_name().is_some_and(|n| n == "model.safetensors") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_diverging_run_stops_naming_the_step_and_writes_no_non_finite_model() {
    let dir = workdir("diverge");
    let path = setup_replacing(&dir, 10, "learning_rate = 2e-3", "learning_rate = 1e6");
    let err = trainer(&path)
        .run()
        .expect_err("a run at learning rate 1e6 must stop on a non-finite loss")
        .to_string();
    eprintln!("diverge error: {err}");
    assert!(err.contains("step "), "{err}");
    assert!(
        err.contains("lm_loss is")
            || err.contains("nsp_loss is")
            || err.contains("gradient norm is"),
        "{err}"
    );
    assert!(!dir.join("run/final").exists(), "a final model was written");
    for f in weight_files(&dir.join("run")) {
        let ck = cloze::bert::Checkpoint::read(&f).unwrap();
        for name in ck.names() {
            assert!(
                ck.get(name).unwrap().data().iter().all(|v| v.is_finite()),
                "{}: {name} holds a non-finite value",
                f.display()
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
