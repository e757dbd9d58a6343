//! Checkpoint directories survive a crash mid-write, and optimiser state round-trips exactly.

mod common;

use cloze::optim::{AdamW, AdamWConfig};
use cloze::train::checkpoint::{load_optimizer, save_optimizer, CheckpointDir};
use cloze::{ParamStore, Tape, Tensor};
use common::assert_mentions;
use std::fs;

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cloze-test-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn latest_names_the_last_complete_checkpoint_and_old_ones_are_pruned() {
    let root = tmpdir("ckpt");
    let ck = CheckpointDir::new(&root, 2).unwrap();
    assert!(ck.latest().unwrap().is_none());
    for step in [10, 20, 30] {
        ck.save(step, |d| {
            fs::write(d.join("x.txt"), step.to_string()).map_err(|e| cloze::Error::Io {
                path: "x".into(),
                source: e,
            })
        })
        .unwrap();
    }
    let (step, dir) = ck.latest().unwrap().unwrap();
    assert_eq!(step, 30);
    assert_eq!(fs::read_to_string(dir.join("x.txt")).unwrap(), "30");
    assert!(
        !root.join("step-00000010").exists(),
        "oldest checkpoint should be pruned"
    );
    assert!(root.join("step-00000020").exists());

    // A save that fails half-way (as a crash would) leaves `latest` untouched.
    let err = ck.save(40, |d| {
        fs::write(d.join("half.txt"), "partial").unwrap();
        Err(cloze::Error::Invalid {
            op: "test",
            detail: "simulated crash".into(),
        })
    });
    assert!(err.is_err());
    assert_eq!(ck.latest().unwrap().unwrap().0, 30);
    assert!(!root.join("step-00000040").exists());
    // the next save cleans up the leftover temporary directory
    ck.save(50, |_| Ok(())).unwrap();
    assert!(!root.join("step-00000040.tmp").exists());
    assert_eq!(ck.latest().unwrap().unwrap().0, 50);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn optimizer_state_round_trips_bit_exactly() {
    let mut store = ParamStore::new();
    let w = store
        .add("w", Tensor::from_fn(&[3, 2], |i| i as f32 * 0.1 - 0.2))
        .unwrap();
    let b = store
        .add("b.bias", Tensor::from_fn(&[2], |i| i as f32))
        .unwrap();
    let mut opt = AdamW::new(AdamWConfig::bert(), &store, |n| !n.contains("bias")).unwrap();
    let mut tape = Tape::new();
    for _ in 0..3 {
        tape.reset();
        store.zero_grads();
        let (wv, bv) = (tape.param(&store, w), tape.param(&store, b));
        let y = tape
            .matmul(&wv, &cloze::Var::constant(Tensor::ones(&[2, 2])))
            .unwrap();
        let y = tape.add(&y, &bv).unwrap();
        let y2 = tape.mul(&y, &y).unwrap();
        let loss = tape.sum(&y2).unwrap();
        store.accumulate(&tape.backward(&loss).unwrap()).unwrap();
        opt.step(&mut store, 1e-3).unwrap();
    }
    let root = tmpdir("opt");
    let path = root.join("optimizer.safetensors");
    save_optimizer(&path, &store, &opt).unwrap();
    let mut fresh = AdamW::new(AdamWConfig::bert(), &store, |n| !n.contains("bias")).unwrap();
    load_optimizer(&path, &store, &mut fresh).unwrap();
    assert_eq!(fresh.steps(), 3);
    for id in store.ids() {
        assert_eq!(fresh.moments(id), opt.moments(id));
    }
    // a file for another model is refused with the tensor's name
    let mut other = ParamStore::new();
    other.add("w", Tensor::zeros(&[2, 3])).unwrap();
    let mut o2 = AdamW::new(AdamWConfig::bert(), &other, |_| true).unwrap();
    let err = load_optimizer(&path, &other, &mut o2)
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["w.m", "[2, 3]"]);
    // a truncated file is an error, not a panic
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(load_optimizer(&path, &store, &mut fresh).is_err());
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_corrupt_or_missing_checkpoint_file_is_named_by_latest() {
    let root = tmpdir("manifest");
    let ck = CheckpointDir::new(&root, 2).unwrap();
    let dir = ck
        .save(7, |d| {
            for (n, body) in [("a.bin", "alpha"), ("b.json", "{\"x\": 1}")] {
                fs::write(d.join(n), body).unwrap();
            }
            Ok(())
        })
        .unwrap();
    // sha256("alpha") from the standard, not from the code under test
    let manifest = fs::read_to_string(dir.join("checksums.sha256")).unwrap();
    assert!(
        manifest
            .contains("8ed3f6ad685b959ead7022518e1af76cd816f8e8ec7ccdda1ed4018e8f2223f8  a.bin"),
        "{manifest}"
    );
    assert_eq!(ck.latest().unwrap().unwrap().0, 7);
    fs::write(dir.join("b.json"), "{\"x\": 2}").unwrap();
    let e = ck.latest().unwrap_err().to_string();
    assert_mentions(&e, &["b.json", "checksum mismatch"]);
    fs::write(dir.join("b.json"), "{\"x\": 1}").unwrap();
    fs::remove_file(dir.join("a.bin")).unwrap();
    let e = ck.latest().unwrap_err().to_string();
    assert!(e.contains("a.bin"), "{e}");
    fs::remove_dir_all(&root).unwrap();
}
