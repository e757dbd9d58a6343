//! Pre-training end to end on the tiny real corpus: the MLM loss falls, a resumed run is
//! bit-identical to an uninterrupted one (also after SIGKILL in the middle of a checkpoint
//! write), and bad configs fail before training.

mod common;

use cloze::pretrain::config::PretrainConfig;
use cloze::pretrain::trainer::Pretrainer;
use cloze::tokenizer::{Trainer, TrainerConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn corpus() -> PathBuf {
    common::shared_path("data/fixtures/tiny-corpus.txt")
}

fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cloze-pt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small vocabulary learned from the corpus, and a config for a very small model.
fn setup(dir: &Path, steps: u64, extra_train: &str) -> PathBuf {
    let mut t = Trainer::new(TrainerConfig {
        vocab_size: 600,
        min_frequency: 2,
        ..TrainerConfig::default()
    });
    t.feed_file(corpus()).unwrap();
    t.train().unwrap().save(dir.join("vocab.txt")).unwrap();
    let cfg = format!(
        r#"
output_dir = "run"
[model]
preset = "tiny"
num_hidden_layers = 2
hidden_size = 64
num_attention_heads = 2
intermediate_size = 128
[data]
vocab = "vocab.txt"
train = "{corpus}"
heldout_every = 2
max_seq_length = 48
max_predictions_per_seq = 8
dupe_factor = 3
[train]
objective = "mlm+nsp"
batch_size = 16
steps = {steps}
learning_rate = 2e-3
warmup_steps = 5
seed = 11
log_every = 5
eval_every = 0
checkpoint_every = 5
{extra_train}
"#,
        corpus = corpus().display()
    );
    let p = dir.join("pretrain.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

/// [`setup`] with one line of the config replaced.
fn setup_replacing(dir: &Path, steps: u64, from: &str, to: &str) -> PathBuf {
    let p = setup(dir, steps, "");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{from:?} is not in the test config");
    std::fs::write(&p, text.replace(from, to)).unwrap();
    p
}

/// The deterministic fields of the metrics log (timing fields dropped).
fn losses(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("run/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("tokens_per_second");
            o.remove("comm_seconds");
            serde_json::to_string(&v).unwrap()
        })
        .collect()
}

#[test]
fn mlm_loss_falls_on_the_tiny_corpus() {
    let dir = workdir("smoke");
    let cfg = PretrainConfig::from_file(setup(&dir, 60, "")).unwrap();
    let initial = Pretrainer::single(cfg.clone())
        .unwrap()
        .evaluate()
        .unwrap()
        .lm_loss();
    let last = Pretrainer::single(cfg).unwrap().run().unwrap();
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
    assert!(
        end < first - 0.8,
        "training MLM loss did not fall: {first} -> {end}"
    );
    // the held-out split is two documents of another text: it must improve, if only a little
    assert!(
        last.lm_loss() < initial - 0.1,
        "held-out MLM loss {initial} -> {}",
        last.lm_loss()
    );
    assert!(last.nsp_count > 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resumed_run_is_bit_identical() {
    let a = workdir("full");
    let b = workdir("resumed");
    let cfg_a = PretrainConfig::from_file(setup(&a, 20, "")).unwrap();
    let first = Pretrainer::single(cfg_a.clone()).unwrap().run().unwrap();
    assert!(
        first.lm_count > 0.0,
        "a finished run reports its held-out evaluation"
    );
    // rerunning a finished run trains nothing and reports the same evaluation, not zeros
    let again = Pretrainer::single(cfg_a).unwrap().run().unwrap();
    assert_eq!(first, again);
    let cfg_b = PretrainConfig::from_file(setup(&b, 20, "")).unwrap();
    Pretrainer::single(cfg_b.clone())
        .unwrap()
        .run_until(10)
        .unwrap();
    let mut resumed = Pretrainer::single(cfg_b).unwrap();
    resumed.run().unwrap();
    assert_eq!(losses(&a), losses(&b));
    // and the final parameters are bit-identical
    let fa = std::fs::read(a.join("run/final/model.safetensors")).unwrap();
    let fb = std::fs::read(b.join("run/final/model.safetensors")).unwrap();
    assert!(fa == fb, "final weights differ after resume");
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

#[test]
fn sigkill_during_a_checkpoint_write_loses_nothing() {
    let exe = env!("CARGO_BIN_EXE_cloze");
    let a = workdir("kill-ref");
    let b = workdir("kill");
    let run = |dir: &Path, pause: bool| {
        let mut c = Command::new(exe);
        c.args(["pretrain", "--config"])
            .arg(dir.join("pretrain.toml"))
            .current_dir(dir);
        if pause {
            c.env("CLOZE_CHECKPOINT_PAUSE_MS", "60000");
        }
        c
    };
    setup(&a, 15, "");
    assert!(run(&a, false).status().unwrap().success());
    setup(&b, 15, "");
    // Pause inside every checkpoint write; kill during the second one (step 10), after the
    // model file of that checkpoint has been written but before the optimiser state.
    let mut child = run(&b, true).spawn().unwrap();
    let tmp_model = b.join("run/checkpoints/step-00000005.tmp/model.safetensors");
    let start = Instant::now();
    while !tmp_model.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "the run never reached its first checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        b.join("run/checkpoints/step-00000005.tmp").exists(),
        "killed mid-write"
    );
    assert!(
        !b.join("run/checkpoints/latest").exists(),
        "no checkpoint was complete"
    );
    // Restart without pausing: it starts over (no complete checkpoint) and must match.
    assert!(run(&b, false).status().unwrap().success());
    assert_eq!(losses(&a), losses(&b));
    // Now kill a run in the middle of a later checkpoint, after a complete one exists.
    let c = workdir("kill2");
    setup(&c, 15, "");
    let mut child = run(&c, false)
        .env("CLOZE_CHECKPOINT_PAUSE_MS", "0")
        .spawn()
        .unwrap();
    child.wait().unwrap();
    // the finished run's checkpoints: corrupt the newest by simulating a half-written one
    std::fs::create_dir_all(c.join("run/checkpoints/step-00000020.tmp")).unwrap();
    std::fs::write(
        c.join("run/checkpoints/step-00000020.tmp/model.safetensors"),
        b"partial",
    )
    .unwrap();
    let ck = cloze::train::checkpoint::CheckpointDir::new(c.join("run/checkpoints"), 2).unwrap();
    assert_eq!(ck.latest().unwrap().unwrap().0, 15);
    for d in [a, b, c] {
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn bad_configs_fail_before_training() {
    let dir = workdir("bad");
    let path = setup(&dir, 10, "");
    let text = std::fs::read_to_string(&path).unwrap();
    let cases = [
        (
            text.replace("batch_size = 16", "batch_size = 16\nbatch_sise = 3"),
            "batch_sise",
        ),
        (
            text.replace("num_attention_heads = 2", "num_attention_heads = 3"),
            "3",
        ),
        (
            text.replace("dupe_factor = 3", "dupe_factor = 3\nmask = 0.7"),
            "100%",
        ),
        (
            text.replace("steps = 10", "steps = 10\nmicro_batch_size = 5"),
            "micro_batch_size",
        ),
        (
            text.replace(
                "max_predictions_per_seq = 8",
                "max_predictions_per_seq = 8\nheldout_max_predictions_per_seq = 0",
            ),
            "heldout_max_predictions_per_seq is 0",
        ),
        (
            text.replace("max_predictions_per_seq = 8", "max_predictions_per_seq = 0"),
            "data.max_predictions_per_seq is 0",
        ),
    ];
    for (cfg, needle) in cases {
        std::fs::write(&path, &cfg).unwrap();
        let err = match PretrainConfig::from_file(&path)
            .and_then(|c| Pretrainer::single(c).map(|_| ()))
        {
            Ok(()) => panic!("config accepted but should fail on {needle}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(needle), "error for {needle}: {err}");
    }
    // a vocabulary without [MASK]
    std::fs::write(&path, &text).unwrap();
    let v = std::fs::read_to_string(dir.join("vocab.txt"))
        .unwrap()
        .replace("[MASK]\n", "[MASKX]\n");
    std::fs::write(dir.join("vocab.txt"), v).unwrap();
    let err = Pretrainer::single(PretrainConfig::from_file(&path).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("[MASK]"), "{err}");
    // a corpus with one document under NSP
    let one = dir.join("one.txt");
    std::fs::write(&one, "Just one document.\nWith two sentences.\n").unwrap();
    std::fs::write(
        dir.join("vocab.txt"),
        std::fs::read_to_string(dir.join("vocab.txt"))
            .unwrap()
            .replace("[MASKX]", "[MASK]"),
    )
    .unwrap();
    std::fs::write(
        &path,
        text.replace(&corpus().display().to_string(), &one.display().to_string()),
    )
    .unwrap();
    let err = Pretrainer::single(PretrainConfig::from_file(&path).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("one document") || err.contains("documents"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resuming_with_a_different_config_is_refused() {
    let dir = workdir("mismatch");
    let path = setup(&dir, 10, "");
    Pretrainer::single(PretrainConfig::from_file(&path).unwrap())
        .unwrap()
        .run_until(5)
        .unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("learning_rate = 2e-3", "learning_rate = 1e-3");
    std::fs::write(&path, text).unwrap();
    let mut t = Pretrainer::single(PretrainConfig::from_file(&path).unwrap()).unwrap();
    let err = t.run().unwrap_err().to_string();
    assert!(err.contains("different config"), "{err}");
    // the message names the one key that differs, and only it
    assert!(
        err.contains("train.learning_rate: checkpoint 0.002") && err.contains("now 0.001"),
        "{err}"
    );
    assert!(
        !err.contains("output_dir") && !err.contains("train.steps"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_same_config_through_another_path_spelling_resumes() {
    let dir = workdir("spelling");
    let path = setup(&dir, 10, "");
    Pretrainer::single(PretrainConfig::from_file(&path).unwrap())
        .unwrap()
        .run_until(5)
        .unwrap();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    // `<dir>/./sub/../pretrain.toml`: output_dir and data paths are spelled differently
    let other = dir.join(".").join("sub").join("..").join("pretrain.toml");
    let cfg = PretrainConfig::from_file(&other).unwrap();
    assert_ne!(cfg.output_dir, dir.join("run"));
    let mut t = Pretrainer::single(cfg).unwrap();
    t.run().expect("the same config must resume");
    assert_eq!(t.step, 10);
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
        let cfg = PretrainConfig::from_file(&path).unwrap();
        let mut t = Pretrainer::single(cfg).unwrap();
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
        assert!(
            last.lm_loss() < initial.lm_loss() - 0.2,
            "{objective}: held-out LM loss {} -> {}",
            initial.lm_loss(),
            last.lm_loss()
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
    let zeros = Pretrainer::single(PretrainConfig::from_file(setup(&dir, 10, "")).unwrap())
        .unwrap()
        .evaluate()
        .unwrap();
    let cfg = setup(
        &dir,
        10,
        "init_lm_bias = \"unigram\"\ninit_positions = \"sinusoidal\"",
    );
    let uni = Pretrainer::single(PretrainConfig::from_file(cfg).unwrap())
        .unwrap()
        .evaluate()
        .unwrap();
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
    assert!(
        uni.lm_context_free_loss() < uni.lm_unigram_loss() - 0.1,
        "floor {} vs unigram {}",
        uni.lm_context_free_loss(),
        uni.lm_unigram_loss()
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
    let t = Pretrainer::single(PretrainConfig::from_file(&p).unwrap()).unwrap();
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
    let cfg = PretrainConfig::from_file(&p).unwrap();
    let initial = Pretrainer::single(cfg.clone())
        .unwrap()
        .evaluate()
        .unwrap()
        .lm_loss();
    let last = Pretrainer::single(cfg).unwrap().run().unwrap();
    assert!(
        last.lm_loss() < initial - 0.2,
        "held-out MLM loss {initial} -> {}",
        last.lm_loss()
    );
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
        let cfg = PretrainConfig::from_file(&p).unwrap();
        let fresh = Pretrainer::single(cfg.clone()).unwrap();
        let mut trained = Pretrainer::single(cfg).unwrap();
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
    let err = Pretrainer::single(PretrainConfig::from_file(&path).unwrap())
        .unwrap()
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

#[test]
fn oversized_or_empty_sizes_in_the_toml_are_errors_naming_the_key() {
    let dir = workdir("sizes");
    let cases = [
        (
            "dupe_factor = 3",
            "dupe_factor = 1000000000",
            "dupe_factor 1000000000",
        ),
        (
            "batch_size = 16",
            "batch_size = 1000000000000",
            "train.batch_size 1000000000000",
        ),
        (
            "batch_size = 16",
            "batch_size = 9223372036854775807",
            "train.batch_size 9223372036854775807",
        ),
        (
            "eval_every = 0",
            "eval_every = 5\neval_batches = 0",
            "train.eval_batches is 0",
        ),
        (
            "hidden_size = 64",
            "hidden_size = 1099511627776",
            "hidden_size 1099511627776",
        ),
        (
            "num_hidden_layers = 2",
            "num_hidden_layers = 1000000000",
            "num_hidden_layers 1000000000",
        ),
    ];
    for (from, to, needle) in cases {
        let path = setup_replacing(&dir, 10, from, to);
        let err = match PretrainConfig::from_file(&path)
            .and_then(|c| Pretrainer::single(c).map(|_| ()))
        {
            Ok(()) => panic!("{to:?} accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(needle), "{to:?}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_flipped_bit_in_a_checkpoint_is_refused_on_resume_naming_the_file() {
    for file in [
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        let dir = workdir(&format!("flip-{}", file.replace('.', "-")));
        let path = setup(&dir, 10, "");
        Pretrainer::single(PretrainConfig::from_file(&path).unwrap())
            .unwrap()
            .run_until(5)
            .unwrap();
        let ck = dir.join("run/checkpoints/step-00000005");
        assert!(
            ck.join("checksums.sha256").is_file(),
            "no manifest in {}",
            ck.display()
        );
        let f = ck.join(file);
        let mut bytes = std::fs::read(&f).unwrap();
        let at = bytes.len() - 3; // a data byte (the last tensor, or the JSON's tail)
        bytes[at] ^= 0x01;
        std::fs::write(&f, bytes).unwrap();
        let err = Pretrainer::single(PretrainConfig::from_file(&path).unwrap())
            .unwrap()
            .run()
            .expect_err("a corrupt checkpoint must not be resumed")
            .to_string();
        assert!(
            err.contains(file) && err.contains("checksum mismatch"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_second_run_on_a_locked_output_dir_is_refused_and_leaves_it_untouched() {
    let dir = workdir("locked");
    let path = setup(&dir, 10, "");
    Pretrainer::single(PretrainConfig::from_file(&path).unwrap())
        .unwrap()
        .run_until(5)
        .unwrap();
    let metrics = std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    // another process's run holds the folder
    let held = cloze::train::lock::RunLock::acquire(&dir.join("run")).unwrap();
    let err = Pretrainer::single(PretrainConfig::from_file(&path).unwrap())
        .unwrap()
        .run()
        .expect_err("a locked output_dir must be refused")
        .to_string();
    assert!(err.contains("in use by another cloze run"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap(),
        metrics,
        "the refused run touched the metrics log"
    );
    drop(held);
    let mut t = Pretrainer::single(PretrainConfig::from_file(&path).unwrap()).unwrap();
    t.run().unwrap();
    assert_eq!(t.step, 10);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_changed_vocabulary_is_refused_on_resume() {
    let dir = workdir("vocab-changed");
    let path = setup(&dir, 10, "");
    Pretrainer::single(PretrainConfig::from_file(&path).unwrap())
        .unwrap()
        .run_until(5)
        .unwrap();
    // same tokens, two of them swapped: same size, other ids
    let v = std::fs::read_to_string(dir.join("vocab.txt")).unwrap();
    let mut lines: Vec<&str> = v.lines().collect();
    let n = lines.len();
    lines.swap(n - 1, n - 2);
    std::fs::write(dir.join("vocab.txt"), lines.join("\n") + "\n").unwrap();
    let err = Pretrainer::single(PretrainConfig::from_file(&path).unwrap())
        .unwrap()
        .run()
        .expect_err("a changed vocabulary must not be resumed")
        .to_string();
    assert!(err.contains("vocab.txt has changed"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
