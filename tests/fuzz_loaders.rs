//! A bounded byte-mutation fuzz of every loader of user input: `config.json`, safetensors,
//! `vocab.txt`, the tokenizer, pretrain TOML, JSON-lines and TSV task files. Each case starts
//! from a valid seed (the corpus, in `seeds()` below) and applies random byte flips,
//! insertions, deletions and truncations, or is random bytes; the loader must return `Ok` or
//! `Err`, never panic or abort. `CLOZE_FUZZ_CASES` sets the cases per target (64 by default,
//! so the suite stays quick; CI runs a larger bounded count). The committed corpus in
//! `tests/fuzz-corpus/<target>/` adds seeds of other shapes (see its README).

mod common;

use cloze::bert::checkpoint::{self, Checkpoint};
use cloze::bert::{BertConfig, BertModel};
use cloze::finetune::data::{read_jsonl, read_tsv, TsvSpec};
use cloze::pretrain::config::PretrainConfig;
use cloze::tokenizer::{EncodeOptions, Padding, Tokenizer, Vocab};
use cloze::ParamStore;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn cases() -> u32 {
    std::env::var("CLOZE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn scratch() -> &'static Path {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("cloze-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

/// Writes bytes to this thread's file of that name (overwritten by the next case) and
/// returns its path.
fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let id = format!("{:?}", std::thread::current().id());
    let id: String = id.chars().filter(char::is_ascii_digit).collect();
    let p = scratch().join(format!("{id}-{name}"));
    std::fs::write(&p, bytes).unwrap();
    p
}

const VOCAB: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\n##s\n.\n";

/// The pre-training config of the pre-training tests, on a training file beside it.
fn toml_seed() -> String {
    common::pretrain::config_text("train.txt", 10, "", "eval_batches = 2\n")
}

const JSONL: &str = "{\"text\": \"the cat\", \"label\": 1}\n{\"text\": \"a\", \"text_pair\": \"b\", \"label\": 0}\n";

const TSV: &str = "sentence\tlabel\nthe cat sat .\t1\nno\t0\n";

/// A small valid safetensors file of a BERT.
fn safetensors_seed() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| {
        let mut c = BertConfig::with_shape(1, 8, 2, 16);
        c.vocab_size = 12;
        c.max_position_embeddings = 8;
        let mut s = ParamStore::new();
        BertModel::new(&c, &mut s, 1).unwrap();
        let p = scratch().join("seed.safetensors");
        checkpoint::save_safetensors(&p, &s).unwrap();
        std::fs::read(p).unwrap()
    })
}

/// The committed seeds of one target (`tests/fuzz-corpus/<target>/`), by file name.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "fuzz corpus {} is empty", dir.display());
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// Seed `pick` of a target: the built-in seed first, then the committed corpus.
fn seed(target: &str, built_in: &[u8], pick: prop::sample::Index) -> Vec<u8> {
    let mut all = vec![built_in.to_vec()];
    all.extend(corpus(target));
    all[pick.index(all.len())].clone()
}

#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let e = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(e, 1..6)
}

/// A seed with the edits applied, or (one case in 8) random bytes.
fn mutate(seed: &[u8], edits: &[Edit], random: Option<&Vec<u8>>) -> Vec<u8> {
    if let Some(r) = random {
        return r.clone();
    }
    let mut v = seed.to_vec();
    for e in edits {
        let n = v.len().max(1);
        match *e {
            Edit::Flip(i, b) if !v.is_empty() => v[i % n] ^= b.max(1),
            Edit::Insert(i, b) => v.insert(i % (v.len() + 1), b),
            Edit::Delete(i) if !v.is_empty() => {
                v.remove(i % n);
            }
            // truncations keep most of the file (the header and early lines matter most)
            Edit::Truncate(i) => v.truncate(v.len() - (i % (v.len() / 8 + 1))),
            _ => {}
        }
    }
    v
}

/// Which seed, the edits, and (one case in 8) random bytes instead.
type Input = (prop::sample::Index, Vec<Edit>, Option<Vec<u8>>);

fn input() -> impl Strategy<Value = Input> {
    (
        any::<prop::sample::Index>(),
        edits(),
        prop::option::weighted(0.125, prop::collection::vec(any::<u8>(), 0..200)),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn config_json_never_panics((i, e, r) in input()) {
        let seed = seed("config_json", BertConfig::tiny().to_json_string().as_bytes(), i);
        let bytes = mutate(&seed, &e, r.as_ref());
        if let Ok(c) = BertConfig::from_file(file("config.json", &bytes)) {
            // whatever is accepted is buildable within the documented limits
            prop_assert!(c.validate().is_ok());
        }
    }

    #[test]
    fn safetensors_never_panics((i, e, r) in input()) {
        let bytes = mutate(&seed("safetensors", safetensors_seed(), i), &e, r.as_ref());
        if let Ok(ck) = Checkpoint::from_bytes(&bytes, Path::new("fuzz.safetensors")) {
            for n in ck.names() {
                prop_assert!(ck.get(n).unwrap().data().iter().all(|v| v.is_finite()));
            }
        }
    }

    #[test]
    fn vocab_and_tokenizer_never_panic((i, e, r) in input(), text in "\\PC{0,60}", pair in proptest::option::of("[a-z \\[\\]SEPCLMAK]{0,40}")) {
        let bytes = mutate(&seed("vocab", VOCAB.as_bytes(), i), &e, r.as_ref());
        let tok = Vocab::load(file("vocab.txt", &bytes))
            .map(Tokenizer::new)
            .unwrap_or_else(|_| Tokenizer::new(Vocab::load(file("vocab.txt", VOCAB.as_bytes())).unwrap()));
        for opts in [
            EncodeOptions::default(),
            EncodeOptions::truncate(5).with_padding(Padding::Fixed(8)),
            EncodeOptions::truncate(3),
        ] {
            if let Ok(enc) = tok.encode_with(&text, pair.as_deref(), &opts) {
                prop_assert_eq!(enc.input_ids.len(), enc.attention_mask.len());
            }
        }
        let _ = tok.tokenize_with_offsets(&text);
    }

    #[test]
    fn pretrain_toml_never_panics((i, e, r) in input()) {
        let bytes = mutate(&seed("pretrain_toml", toml_seed().as_bytes(), i), &e, r.as_ref());
        if let Ok(text) = String::from_utf8(bytes) {
            if let Ok(c) = PretrainConfig::from_toml_str(&text, "fuzz.toml") {
                let _ = c.validate();
                let _ = c.bert_config(600);
            }
        }
    }

    #[test]
    fn jsonl_and_tsv_task_files_never_panic((i, e, r) in input()) {
        let jsonl = seed("jsonl", JSONL.as_bytes(), i);
        let _ = read_jsonl(file("d.jsonl", &mutate(&jsonl, &e, r.as_ref())));
        let tsv = file("d.tsv", &mutate(&seed("tsv", TSV.as_bytes(), i), &e, r.as_ref()));
        for task in ["sst-2", "cola", "sts-b", "rte"] {
            let _ = read_tsv(&tsv, &TsvSpec::for_task(task).unwrap());
        }
    }
}

/// The committed seeds are valid inputs of their loaders, so the fuzzer starts from shapes
/// the loaders accept (a seed that is already rejected explores only the error paths).
#[test]
fn committed_seeds_load() {
    for (i, bytes) in corpus("config_json").iter().enumerate() {
        BertConfig::from_file(file("config.json", bytes))
            .unwrap_or_else(|e| panic!("config_json seed {i}: {e}"));
    }
    for (i, bytes) in corpus("safetensors").iter().enumerate() {
        Checkpoint::from_bytes(bytes, Path::new("seed.safetensors"))
            .unwrap_or_else(|e| panic!("safetensors seed {i}: {e}"));
    }
    for (i, bytes) in corpus("vocab").iter().enumerate() {
        Vocab::load(file("vocab.txt", bytes)).unwrap_or_else(|e| panic!("vocab seed {i}: {e}"));
    }
    for (i, bytes) in corpus("pretrain_toml").iter().enumerate() {
        PretrainConfig::from_toml_str(std::str::from_utf8(bytes).unwrap(), "seed.toml")
            .unwrap_or_else(|e| panic!("pretrain_toml seed {i}: {e}"));
    }
    for (i, bytes) in corpus("jsonl").iter().enumerate() {
        read_jsonl(file("d.jsonl", bytes)).unwrap_or_else(|e| panic!("jsonl seed {i}: {e}"));
    }
    // the TSV seeds, by file name order: cola-no-header, rte, sst-2, sts-b
    for (bytes, task) in corpus("tsv").iter().zip(["cola", "rte", "sst-2", "sts-b"]) {
        read_tsv(file("d.tsv", bytes), &TsvSpec::for_task(task).unwrap())
            .unwrap_or_else(|e| panic!("tsv seed for {task}: {e}"));
    }
}
