//! `cloze embed` on the real MiniLM model: every fixture text's embedding against
//! sentence-transformers' (cosine ≥ 0.99999), hidden states against HF's, and bad input;
//! on a tiny folder: each pooling mode the folder can ask for, `.npy` output, and the
//! truncation a folder's max_seq_length sets.

mod common;

use cloze::bert::folder::Pooling;
use common::{assert_mentions, cli, tiny};
use safetensors::SafeTensors;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn shared() -> PathBuf {
    common::shared_path("fixtures/minilm").join("../..")
}

fn model_dir() -> PathBuf {
    common::minilm_dir()
}

/// `cloze embed` with the real MiniLM from `dir/in.jsonl` to `dir/out.safetensors`.
fn embed_minilm(dir: &Path) -> cli::Cloze {
    cli::cloze("embed")
        .model(model_dir())
        .input(dir.join("in.jsonl"))
        .opt("--output", dir.join("out.safetensors"))
}

fn f32s(t: &safetensors::tensor::TensorView) -> Vec<f32> {
    t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cloze-embed-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn embeddings_match_sentence_transformers() {
    let sh = shared().join("fixtures/minilm");
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(sh.join("cases.json")).unwrap()).unwrap();
    let fx_bytes = std::fs::read(sh.join("fixtures.safetensors")).unwrap();
    let fx = SafeTensors::deserialize(&fx_bytes).unwrap();
    // one JSON line per text, remembering which fixture row it must match
    let mut lines = String::new();
    let mut want: Vec<(String, usize, Option<String>)> = Vec::new();
    for c in cases["cases"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let emb_key = c["tensors"]["sentence_embedding"]
            .as_str()
            .unwrap()
            .to_string();
        let hid_key = c["tensors"]["last_hidden_state"]
            .as_str()
            .map(str::to_string);
        match c["kind"].as_str().unwrap() {
            "batch" => {
                for (i, t) in c["texts"].as_array().unwrap().iter().enumerate() {
                    lines += &serde_json::json!({ "text": t }).to_string();
                    lines.push('\n');
                    want.push((emb_key.clone(), i, None));
                }
            }
            kind => {
                let mut o = serde_json::json!({ "text": c["text"] });
                if kind == "pair" {
                    o["text_pair"] = c["text_pair"].clone();
                }
                lines += &o.to_string();
                lines.push('\n');
                // case11's main tensors are for the text truncated to 128 tokens
                want.push((emb_key, 0, if id == "case11" { None } else { hid_key }));
            }
        }
    }
    let dir = tmp("ok");
    std::fs::write(dir.join("in.jsonl"), lines).unwrap();
    embed_minilm(&dir)
        .args([
            "--max-length",
            "128",
            "--hidden-states",
            "--batch-size",
            "7",
        ])
        .ok();
    let got_bytes = std::fs::read(dir.join("out.safetensors")).unwrap();
    let got = SafeTensors::deserialize(&got_bytes).unwrap();
    let mut worst_cos = 1.0f64;
    let mut worst_hidden = 0.0f32;
    let matrix = got.tensor("embeddings").unwrap();
    assert_eq!(matrix.shape(), &[want.len(), 384]);
    let matrix = f32s(&matrix);
    for (i, (key, row, hid)) in want.iter().enumerate() {
        let h = 384;
        let e = &matrix[i * h..(i + 1) * h];
        let r = f32s(&fx.tensor(key).unwrap());
        let r = &r[row * h..(row + 1) * h];
        let dot: f64 = e.iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum();
        let na: f64 = e.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = r.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (na * nb);
        worst_cos = worst_cos.min(cos);
        assert!(cos >= 0.99999, "input {i} ({key}): cosine {cos}");
        if let Some(hk) = hid {
            let gh = f32s(&got.tensor(&format!("last_hidden_state.{i}")).unwrap());
            let rh = f32s(&fx.tensor(hk).unwrap());
            assert_eq!(gh.len(), rh.len(), "{hk}: length");
            for (a, b) in gh.iter().zip(&rh) {
                worst_hidden = worst_hidden.max((a - b).abs());
            }
        }
    }
    eprintln!(
        "cloze embed: worst cosine {worst_cos:.9}, worst hidden-state |diff| {worst_hidden:.2e}"
    );
    assert!(
        worst_hidden < 1e-4,
        "hidden states differ by {worst_hidden}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_reported() {
    let dir = tmp("bad");
    let run = |input: &str, extra: &[&str]| {
        std::fs::write(dir.join("in.jsonl"), input).unwrap();
        embed_minilm(&dir).args(extra).err()
    };
    let err = run("{\"text\": \"fine\"}\n{\"txt\": \"oops\"}\n", &[]);
    assert!(err.contains("line 2"), "{err}");
    let err = run("\n\n", &[]);
    assert!(err.contains("no input lines"), "{err}");
    // an explicit --max-length beyond the model's positions still fails (the folder's
    // max_seq_length of 256 applies only without one)
    let long = format!("{{\"text\": \"{}\"}}\n", "word ".repeat(600));
    let err = run(&long, &["--max-length", "600"]);
    assert!(err.contains("max_position_embeddings"), "{err}");
    // the over-long input is named by its place in the input (input 1, the second line),
    // not by its place in the length-sorted batch (where it comes first)
    let mixed =
        format!("{{\"text\": \"a b c d\"}}\n{long}{{\"text\": \"x\"}}\n{{\"text\": \"y z\"}}\n");
    let err = run(&mixed, &["--batch-size", "8", "--max-length", "600"]);
    assert_mentions(&err, &["input 1:", "max_position_embeddings"]);
    // (the standard input of a run is empty)
    cli::cloze("embed")
        .model("/nonexistent/model")
        .input("-")
        .opt("--output", "/tmp/x.safetensors")
        .err();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    v.iter().map(|x| (*x as f64 / n) as f32).collect()
}

#[test]
fn embed_pools_as_the_folder_says_and_writes_one_matrix() {
    let dir = tiny::tmp("pool");
    tiny::tiny_mlm(&dir, None);
    std::fs::write(dir.join("in.txt"), "the cat sat\na good film on the mat\n").unwrap();
    let input = dir.join("in.txt");
    let run = |pool_json: &str, extra: &[&str]| {
        std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
        std::fs::write(dir.join("1_Pooling/config.json"), pool_json).unwrap();
        cli::cloze("embed")
            .model(&dir)
            .input(&input)
            .args(["--hidden-states", "--output", "-"])
            .args(extra)
            .ok_bytes()
    };
    for (json, mode) in [
        (r#"{"pooling_mode_cls_token": true}"#, Pooling::Cls),
        (r#"{"pooling_mode_max_tokens": true}"#, Pooling::Max),
        (r#"{"pooling_mode_mean_tokens": true}"#, Pooling::Mean),
    ] {
        let bytes = run(json, &[]);
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let m = st.tensor("embeddings").unwrap();
        assert_eq!(m.shape(), &[2, 16]);
        let m = f32s(&m);
        for i in 0..2 {
            let hid = st.tensor(&format!("last_hidden_state.{i}")).unwrap();
            let t = hid.shape()[0];
            let h = f32s(&hid);
            let raw: Vec<f32> = match mode {
                Pooling::Cls => h[..16].to_vec(),
                Pooling::Max => (0..16)
                    .map(|j| (0..t).map(|p| h[p * 16 + j]).fold(f32::MIN, f32::max))
                    .collect(),
                Pooling::Mean => (0..16)
                    .map(|j| (0..t).map(|p| h[p * 16 + j]).sum::<f32>() / t as f32)
                    .collect(),
            };
            let want = normalized(&raw);
            for (g, w) in m[i * 16..(i + 1) * 16].iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{mode:?} input {i}: {g} vs {w}");
            }
        }
    }
    // --pooling overrides the folder; --no-normalize leaves the norm alone
    let bytes = run(
        r#"{"pooling_mode_max_tokens": true}"#,
        &["--pooling", "cls", "--no-normalize"],
    );
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let m = f32s(&st.tensor("embeddings").unwrap());
    let h = f32s(&st.tensor("last_hidden_state.0").unwrap());
    assert_eq!(&m[..16], &h[..16]);
    // .npy output
    let npy = dir.join("out.npy");
    cli::cloze("embed")
        .model(&dir)
        .input(dir.join("in.txt"))
        .opt("--output", &npy)
        .ok();
    let b = std::fs::read(&npy).unwrap();
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hl]).unwrap();
    assert_mentions(header, &["'descr': '<f4'", "'shape': (2, 16)"]);
    assert_eq!((10 + hl) % 64, 0);
    assert_eq!(b.len(), 10 + hl + 2 * 16 * 4);
    // a folder with only pytorch_model.bin says how to convert it
    let pt = tiny::tmp("pt");
    std::fs::copy(dir.join("config.json"), pt.join("config.json")).unwrap();
    std::fs::copy(dir.join("vocab.txt"), pt.join("vocab.txt")).unwrap();
    std::fs::write(pt.join("pytorch_model.bin"), b"not really").unwrap();
    let e = cli::cloze("embed")
        .model(&pt)
        .input(dir.join("in.txt"))
        .opt("--output", "-")
        .err();
    assert_mentions(&e, &["pytorch_model.bin", "safetensors", "save_file"]);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&pt).unwrap();
}

#[test]
fn minilm_embed_truncates_to_the_folder_max_seq_length() {
    // sentence_bert_config.json says 256; a 600-word input used to run to 512 (or fail)
    let dir = tiny::tmp("long");
    let long = "word ".repeat(600);
    std::fs::write(dir.join("in.txt"), format!("{long}\nshort text\n")).unwrap();
    let bytes = cli::cloze("embed")
        .threads(1)
        .args(["--hidden-states", "--output", "-"])
        .model(common::minilm_dir())
        .input(dir.join("in.txt"))
        .ok_bytes();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("embeddings").unwrap().shape(), &[2, 384]);
    assert_eq!(
        st.tensor("last_hidden_state.0").unwrap().shape(),
        &[256, 384]
    );
    assert_eq!(st.tensor("last_hidden_state.1").unwrap().shape(), &[4, 384]);
    std::fs::remove_dir_all(&dir).unwrap();
}
