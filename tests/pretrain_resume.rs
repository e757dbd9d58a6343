//! Resuming a pre-training: a resumed run is bit-identical to an uninterrupted one (also
//! after SIGKILL in the middle of a checkpoint write), and a checkpoint that does not belong
//! to the run (another config, a changed vocabulary, a flipped bit, a locked folder) is
//! refused with its reason.

mod common;

use cloze::pretrain::config::PretrainConfig;
use cloze::pretrain::trainer::Pretrainer;
use common::assert_mentions;
use common::pretrain::{losses, setup, trainer, workdir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A run of 10 steps set up in `dir` and stopped after step 5 (its first checkpoint); returns
/// its config's path.
fn stopped_at_step_5(dir: &Path) -> PathBuf {
    let path = setup(dir, 10, "");
    trainer(&path).run_until(5).unwrap();
    path
}

/// The error with which resuming the run of the config at `path` stops (`why` it must).
fn resume_error(path: &Path, why: &str) -> String {
    trainer(path).run().expect_err(why).to_string()
}

#[test]
fn resumed_run_is_bit_identical() {
    let a = workdir("full");
    let b = workdir("resumed");
    let cfg_a = setup(&a, 20, "");
    let first = trainer(&cfg_a).run().unwrap();
    assert!(
        first.lm_count > 0.0,
        "a finished run reports its held-out evaluation"
    );
    // rerunning a finished run trains nothing and reports the same evaluation, not zeros
    let again = trainer(&cfg_a).run().unwrap();
    assert_eq!(first, again);
    let cfg_b = setup(&b, 20, "");
    trainer(&cfg_b).run_until(10).unwrap();
    let mut resumed = trainer(&cfg_b);
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
    common::wait_for(
        &tmp_model,
        Duration::from_secs(240),
        "the run never reached its first checkpoint",
    );
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
fn resuming_with_a_different_config_is_refused() {
    let dir = workdir("mismatch");
    let path = stopped_at_step_5(&dir);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("learning_rate = 2e-3", "learning_rate = 1e-3");
    std::fs::write(&path, text).unwrap();
    let err = resume_error(&path, "a changed config must not be resumed");
    assert!(err.contains("different config"), "{err}");
    // the message names the one key that differs, and only it
    assert_mentions(
        &err,
        &["train.learning_rate: checkpoint 0.002", "now 0.001"],
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
    stopped_at_step_5(&dir);
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
fn a_flipped_bit_in_a_checkpoint_is_refused_on_resume_naming_the_file() {
    for file in [
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        let dir = workdir(&format!("flip-{}", file.replace('.', "-")));
        let path = stopped_at_step_5(&dir);
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
        let err = resume_error(&path, "a corrupt checkpoint must not be resumed");
        assert_mentions(&err, &[file, "checksum mismatch"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_second_run_on_a_locked_output_dir_is_refused_and_leaves_it_untouched() {
    let dir = workdir("locked");
    let path = stopped_at_step_5(&dir);
    let metrics = std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    // another process's run holds the folder
    let held = cloze::train::lock::RunLock::acquire(&dir.join("run")).unwrap();
    let err = resume_error(&path, "a locked output_dir must be refused");
    assert!(err.contains("in use by another cloze run"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap(),
        metrics,
        "the refused run touched the metrics log"
    );
    drop(held);
    let mut t = trainer(&path);
    t.run().unwrap();
    assert_eq!(t.step, 10);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_changed_vocabulary_is_refused_on_resume() {
    let dir = workdir("vocab-changed");
    let path = stopped_at_step_5(&dir);
    // same tokens, two of them swapped: same size, other ids
    let v = std::fs::read_to_string(dir.join("vocab.txt")).unwrap();
    let mut lines: Vec<&str> = v.lines().collect();
    let n = lines.len();
    lines.swap(n - 1, n - 2);
    std::fs::write(dir.join("vocab.txt"), lines.join("\n") + "\n").unwrap();
    let err = resume_error(&path, "a changed vocabulary must not be resumed");
    assert!(err.contains("vocab.txt has changed"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
