//! HF-format checkpoints: save→load bit-identity, the `bert.` prefix, skipped buffers, tied
//! decoder aliases, dtype conversion, and a clear error for every kind of mismatch or damage.

mod common;

use cloze::bert::checkpoint::{self, Checkpoint, LoadOptions};
use cloze::bert::{BertConfig, BertForPreTraining, BertForSequenceClassification, BertModel};
use cloze::{Error, ParamStore, Tensor};
use common::assert_mentions;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn scratch_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cloze-bert-ckpt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh scratch folder `name` with `store` saved in it as `model.safetensors`: the folder
/// and the file.
fn saved_in(name: &str, store: &ParamStore) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(name);
    let path = dir.join("model.safetensors");
    checkpoint::save_safetensors(&path, store).unwrap();
    (dir, path)
}

/// A small config so every test builds in milliseconds.
fn small_config() -> BertConfig {
    let mut c = BertConfig::with_shape(2, 32, 4, 64);
    c.vocab_size = 100;
    c.max_position_embeddings = 16;
    c
}

fn bert_store(seed: u64) -> ParamStore {
    let mut s = ParamStore::new();
    BertModel::new(&small_config(), &mut s, seed).unwrap();
    s
}

fn pretraining_store(seed: u64) -> ParamStore {
    let mut s = ParamStore::new();
    BertForPreTraining::new(&small_config(), &mut s, seed).unwrap();
    s
}

fn assert_bit_identical(a: &ParamStore, b: &ParamStore) {
    assert_eq!(a.len(), b.len());
    for id in a.ids() {
        let name = a.name(id);
        let other = b.id(name).unwrap_or_else(|| panic!("{name} missing"));
        // Tensor's PartialEq compares shapes and bit patterns.
        assert!(a.value(id) == b.value(other), "{name} differs");
    }
}

/// Raw (name → (dtype, shape, bytes)) of a safetensors file.
fn raw_entries(path: &Path) -> BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                (v.dtype(), v.shape().to_vec(), v.data().to_vec()),
            )
        })
        .collect()
}

fn write_raw(path: &Path, entries: &BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>) {
    let views: Vec<(String, TensorView<'_>)> = entries
        .iter()
        .map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn load_err(path: &Path, store: &mut ParamStore) -> String {
    match Checkpoint::read(path).and_then(|c| c.load_into(store)) {
        Ok(_) => panic!("loading {} should fail", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bert_model_save_load_is_bit_identical_without_prefix() {
    let saved = bert_store(1);
    let (dir, path) = saved_in("plain", &saved);

    let raw = raw_entries(&path);
    assert!(raw.contains_key("embeddings.word_embeddings.weight"));
    assert!(raw.contains_key("pooler.dense.weight"));
    assert!(
        raw.keys().all(|k| !k.starts_with("bert.")),
        "{:?}",
        raw.keys()
    );
    assert!(raw.values().all(|(d, _, _)| *d == Dtype::F32));
    assert_eq!(raw.len(), saved.len());

    let mut loaded = bert_store(2);
    let report = Checkpoint::read(&path)
        .unwrap()
        .load_into(&mut loaded)
        .unwrap();
    assert_eq!(report.loaded.len(), saved.len());
    assert_bit_identical(&saved, &loaded);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pretraining_save_uses_bert_prefix_and_round_trips() {
    let saved = pretraining_store(3);
    let (dir, path) = saved_in("prefix", &saved);

    let raw = raw_entries(&path);
    assert!(raw.contains_key("bert.embeddings.word_embeddings.weight"));
    assert!(raw.contains_key("bert.encoder.layer.1.output.LayerNorm.bias"));
    assert!(raw.contains_key("bert.pooler.dense.bias"));
    assert!(raw.contains_key("cls.predictions.bias"));
    assert!(raw.contains_key("cls.predictions.transform.dense.weight"));
    assert!(raw.contains_key("cls.seq_relationship.weight"));
    assert!(
        !raw.contains_key("cls.predictions.decoder.weight"),
        "tied: not written"
    );
    assert_eq!(raw.len(), saved.len());
    // Linear weights are [out, in].
    assert_eq!(
        raw["bert.encoder.layer.0.intermediate.dense.weight"].1,
        vec![64, 32]
    );

    let mut loaded = pretraining_store(4);
    Checkpoint::read(&path)
        .unwrap()
        .load_into(&mut loaded)
        .unwrap();
    assert_bit_identical(&saved, &loaded);

    // The same file also loads the bare encoder when the heads are declared unused.
    let mut bare = bert_store(5);
    let opts = LoadOptions {
        allow_unused: vec!["cls.".into()],
        ..Default::default()
    };
    let report = Checkpoint::read(&path)
        .unwrap()
        .load_into_with(&mut bare, &opts)
        .unwrap();
    assert_eq!(report.unused.len(), 7); // 5 MLM + 2 NSP tensors
    for id in bare.ids() {
        let name = bare.name(id);
        assert!(
            bare.value(id) == saved.value(saved.id(name).unwrap()),
            "{name}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn save_pretrained_then_load_pretrained() {
    let dir = scratch_dir("pretrained");
    let config = small_config();
    let mut saved = ParamStore::new();
    BertForSequenceClassification::new(&config, &mut saved, 3, 7).unwrap();
    checkpoint::save_pretrained(&dir, &config, &saved).unwrap();
    // Saving twice overwrites atomically and leaves no temporary file.
    checkpoint::save_pretrained(&dir, &config, &saved).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["config.json", "model.safetensors"]);
    assert!(raw_entries(&dir.join("model.safetensors")).contains_key("classifier.weight"));
    assert!(raw_entries(&dir.join("model.safetensors")).contains_key("bert.pooler.dense.weight"));

    let (cfg2, ckpt) = checkpoint::load_pretrained(&dir).unwrap();
    assert_eq!(cfg2, config);
    let mut loaded = ParamStore::new();
    BertForSequenceClassification::new(&cfg2, &mut loaded, 3, 8).unwrap();
    ckpt.load_into(&mut loaded).unwrap();
    assert_bit_identical(&saved, &loaded);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fine_tuning_from_pretraining_checkpoint_needs_explicit_permission() {
    let (dir, path) = saved_in("finetune", &pretraining_store(1));
    let ckpt = Checkpoint::read(&path).unwrap();
    let mut cls = ParamStore::new();
    BertForSequenceClassification::new(&small_config(), &mut cls, 2, 0).unwrap();
    let before = cls.value(cls.id("classifier.weight").unwrap()).clone();
    let msg = ckpt.load_into(&mut cls).unwrap_err().to_string();
    assert!(
        msg.contains("missing tensor \"classifier.weight\""),
        "{msg}"
    );
    assert!(
        msg.contains("unexpected tensor \"cls.seq_relationship.weight\""),
        "{msg}"
    );
    let opts = LoadOptions {
        allow_missing: vec!["classifier.".into()],
        allow_unused: vec!["cls.".into()],
    };
    let report = ckpt.load_into_with(&mut cls, &opts).unwrap();
    assert_eq!(report.missing, vec!["classifier.weight", "classifier.bias"]);
    assert!(cls.value(cls.id("classifier.weight").unwrap()) == &before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn skips_position_ids_buffer_and_accepts_tied_decoder_and_half_precision() {
    let saved = pretraining_store(9);
    let (dir, path) = saved_in("buffers", &saved);
    let mut raw = raw_entries(&path);
    // HF buffers: I64 position ids (and token type ids in older checkpoints).
    let pos: Vec<u8> = (0..16i64).flat_map(|i| i.to_le_bytes()).collect();
    raw.insert(
        "bert.embeddings.position_ids".into(),
        (Dtype::I64, vec![1, 16], pos),
    );
    raw.insert(
        "bert.embeddings.token_type_ids".into(),
        (Dtype::I64, vec![1, 16], vec![0u8; 128]),
    );
    // The tied decoder as old PyTorch checkpoints carry it.
    let emb = raw["bert.embeddings.word_embeddings.weight"].clone();
    raw.insert("cls.predictions.decoder.weight".into(), emb);
    let bias = raw["cls.predictions.bias"].clone();
    raw.insert("cls.predictions.decoder.bias".into(), bias);
    // One tensor stored as BF16 holding exactly representable values.
    // Legacy TF-converted LayerNorm names (the original bert-base-uncased upload).
    let gamma = raw
        .remove("bert.encoder.layer.0.output.LayerNorm.weight")
        .unwrap();
    raw.insert("bert.encoder.layer.0.output.LayerNorm.gamma".into(), gamma);
    let beta = raw
        .remove("cls.predictions.transform.LayerNorm.bias")
        .unwrap();
    raw.insert("cls.predictions.transform.LayerNorm.beta".into(), beta);
    let ln: Vec<f32> = (0..32).map(|i| 1.0 + i as f32 / 8.0).collect();
    let ln_bf16: Vec<u8> = ln
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    raw.insert(
        "bert.embeddings.LayerNorm.weight".into(),
        (Dtype::BF16, vec![32], ln_bf16),
    );
    write_raw(&path, &raw);

    let ckpt = Checkpoint::read(&path).unwrap();
    let buffers: Vec<_> = ckpt.skipped_buffers().collect();
    assert_eq!(
        buffers,
        vec!["embeddings.position_ids", "embeddings.token_type_ids"]
    );
    let mut loaded = pretraining_store(10);
    ckpt.load_into(&mut loaded).unwrap();
    let got = loaded.value(loaded.id("embeddings.LayerNorm.weight").unwrap());
    assert_eq!(got.data(), ln.as_slice());
    for w in [
        "encoder.layer.1.attention.self.value.weight",
        "encoder.layer.0.output.LayerNorm.weight",
        "cls.predictions.transform.LayerNorm.bias",
    ] {
        assert!(
            loaded.value(loaded.id(w).unwrap()) == saved.value(saved.id(w).unwrap()),
            "{w}"
        );
    }

    // A mis-shaped tied decoder is an error naming it.
    raw.insert(
        "cls.predictions.decoder.weight".into(),
        (Dtype::F32, vec![99, 32], f32_bytes(&vec![0.0; 99 * 32])),
    );
    write_raw(&path, &raw);
    let msg = load_err(&path, &mut loaded);
    assert_mentions(
        &msg,
        &["cls.predictions.decoder.weight", "[99, 32]", "[100, 32]"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_extra_and_misshaped_tensors_are_named_with_shapes() {
    let saved = bert_store(1);
    let (dir, path) = saved_in("mismatch", &saved);
    let good = raw_entries(&path);

    // Missing.
    let mut raw = good.clone();
    raw.remove("encoder.layer.1.attention.self.key.bias");
    write_raw(&path, &raw);
    let mut store = bert_store(2);
    let before = store
        .value(store.id("pooler.dense.weight").unwrap())
        .clone();
    let msg = load_err(&path, &mut store);
    assert_mentions(
        &msg,
        &[
            "missing tensor \"encoder.layer.1.attention.self.key.bias\"",
            "[32]",
        ],
    );
    assert!(msg.contains("model.safetensors"), "{msg}");
    // A failed load changes nothing.
    assert!(store.value(store.id("pooler.dense.weight").unwrap()) == &before);

    // Each other damage, on the good file: (what is inserted under which name, what the
    // message must name).
    let dup = good["pooler.dense.bias"].clone();
    let cases = [
        // Extra.
        (
            "encoder.layer.2.attention.self.query.weight",
            (Dtype::F32, vec![32, 32], f32_bytes(&[0.5; 1024])),
            vec![
                "unexpected tensor \"encoder.layer.2.attention.self.query.weight\"",
                "[32, 32]",
            ],
        ),
        // Mis-shaped.
        (
            "pooler.dense.weight",
            (Dtype::F32, vec![32, 31], f32_bytes(&[0.5; 32 * 31])),
            vec!["\"pooler.dense.weight\"", "[32, 31]", "[32, 32]"],
        ),
        // A parameter stored as an integer buffer.
        (
            "embeddings.LayerNorm.bias",
            (Dtype::I64, vec![32], vec![0u8; 256]),
            vec!["embeddings.LayerNorm.bias", "I64"],
        ),
        // The same tensor with and without the prefix.
        (
            "bert.pooler.dense.bias",
            dup,
            vec!["pooler.dense.bias", "twice"],
        ),
        // An unsupported dtype.
        (
            "pooler.dense.bias",
            (Dtype::F8_E4M3, vec![32], vec![0u8; 32]),
            vec!["pooler.dense.bias", "F8_E4M3"],
        ),
    ];
    for (name, entry, needles) in cases {
        let mut raw = good.clone();
        raw.insert(name.into(), entry);
        write_raw(&path, &raw);
        assert_mentions(&load_err(&path, &mut store), &needles);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_or_corrupt_safetensors_is_a_clear_error() {
    let (dir, path) = saved_in("corrupt", &bert_store(1));
    let bytes = std::fs::read(&path).unwrap();
    for (what, data) in [
        ("truncated data", bytes[..bytes.len() - 100].to_vec()),
        ("truncated header", bytes[..40].to_vec()),
        ("shorter than the length prefix", bytes[..5].to_vec()),
        ("empty", Vec::new()),
        (
            "not safetensors",
            b"PK\x03\x04 this is a zip file, not a checkpoint".to_vec(),
        ),
    ] {
        std::fs::write(&path, &data).unwrap();
        let e = Checkpoint::read(&path)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(matches!(e, Error::Format { .. }), "{what}: {e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("model.safetensors") && msg.contains("not a valid safetensors file"),
            "{what}: {msg}"
        );
    }
    let e = Checkpoint::read(dir.join("absent.safetensors"))
        .err()
        .unwrap();
    common::assert_io_error_naming(&e, "absent.safetensors");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_config_in_a_checkpoint_folder_is_a_clear_error() {
    let dir = scratch_dir("badconfig");
    let config = small_config();
    checkpoint::save_pretrained(&dir, &config, &bert_store(1)).unwrap();
    std::fs::write(dir.join("config.json"), "{\"hidden_size\": 32,").unwrap();
    let msg = checkpoint::load_pretrained(&dir).err().unwrap().to_string();
    assert_mentions(&msg, &["config.json", "not a valid BERT config.json"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loaded_values_are_the_file_values() {
    // Independent of the writer: a hand-written file with known values.
    let dir = scratch_dir("known");
    let path = dir.join("model.safetensors");
    let store = bert_store(1);
    let mut raw = BTreeMap::new();
    for id in store.ids() {
        let t = store.value(id);
        let vals: Vec<f32> = (0..t.len()).map(|i| (i % 7) as f32 - 3.0).collect();
        raw.insert(
            format!("bert.{}", store.name(id)),
            (Dtype::F32, t.shape().to_vec(), f32_bytes(&vals)),
        );
    }
    write_raw(&path, &raw);
    let mut loaded = bert_store(2);
    Checkpoint::read(&path)
        .unwrap()
        .load_into(&mut loaded)
        .unwrap();
    let t: &Tensor = loaded.value(loaded.id("encoder.layer.0.output.dense.weight").unwrap());
    assert_eq!(t.shape(), &[32, 64]);
    assert_eq!(
        &t.data()[..9],
        &[-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor_on_load_and_on_save() {
    let dir = scratch_dir("nonfinite");
    let good = dir.join("good.safetensors");
    checkpoint::save_safetensors(&good, &bert_store(1)).unwrap();
    let name = "encoder.layer.1.attention.self.query.weight";
    for (bad, dtype) in [
        (f32::NAN, Dtype::F32),
        (f32::INFINITY, Dtype::F32),
        (f32::NEG_INFINITY, Dtype::F32),
        // finite in F64 but beyond f32's range: infinite once converted
        (0.0, Dtype::F64),
    ] {
        let mut e = raw_entries(&good);
        let (_, shape, bytes) = e.remove(name).unwrap();
        let mut v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        v[7] = bad;
        let entry = if dtype == Dtype::F64 {
            let mut d: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            d[7] = 1e300;
            (
                Dtype::F64,
                shape,
                d.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        } else {
            (Dtype::F32, shape, f32_bytes(&v))
        };
        e.insert(name.to_string(), entry);
        let p = dir.join("bad.safetensors");
        write_raw(&p, &e);
        let err = load_err(&p, &mut bert_store(2));
        assert_mentions(&err, &[name, "non-finite"]);
    }
    // saving a store with a NaN parameter is refused, naming it, and writes nothing
    let mut s = bert_store(3);
    let id = s.id(name).unwrap();
    s.value_mut(id)[3] = f32::NAN;
    let out = dir.join("out.safetensors");
    let err = checkpoint::save_safetensors(&out, &s)
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &[name, "non-finite"]);
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
