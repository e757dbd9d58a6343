//! Bad pre-training configs fail before any training, naming the key.

mod common;

use cloze::pretrain::config::PretrainConfig;
use cloze::pretrain::trainer::Pretrainer;
use common::pretrain::{corpus, setup, setup_replacing, workdir};

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
