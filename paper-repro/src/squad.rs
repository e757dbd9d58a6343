//! The SQuAD column (Table 5's last) as far as the data allows: only SQuAD v1.1 *dev* exists
//! here, so its 48 articles are split by article, half for fine-tuning and half held out. The
//! result is the **SQuAD-dev-split**, never "SQuAD v1.1 dev": its numbers are not comparable to
//! the paper's (less training data, and a different held-out set).
//!
//! Beside the fine-tuned span model there is a simple baseline: the context sentence with the
//! most content words in common with the question, scored with the same official EM / F1.

use crate::scale::SquadScale;
use crate::tasks::{carve_dev, subset, Baseline};
use anyhow::{bail, Context, Result};
#[cfg(test)]
use cloze::finetune::span::train_span;
use cloze::finetune::span::{
    normalize_answer, read_squad_json, squad_scores, SpanConfig, SquadArticle, SquadExample,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::HashSet;
use std::path::Path;

/// How results on this split are labelled.
pub const LABEL: &str = "SQuAD-dev-split";

/// The data file inside the SQuAD data folder.
pub const DEV_FILE: &str = "dev-v1.1.json";

/// The articles of each side: a seeded shuffle of the article order, the first half (rounded
/// down) for fine-tuning and the rest held out. The same seed always gives the same split.
pub fn split_articles(
    articles: &[SquadArticle],
    seed: u64,
) -> (Vec<&SquadArticle>, Vec<&SquadArticle>) {
    let mut order: Vec<usize> = (0..articles.len()).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
        seed ^ 0x5155_4144, // "SQUAD"
    ));
    let half = articles.len() / 2;
    let pick = |ix: &[usize]| ix.iter().map(|&i| &articles[i]).collect::<Vec<_>>();
    (pick(&order[..half]), pick(&order[half..]))
}

/// The seed of the 24/24 article split: the same split for every row, seed and scale.
pub const SPLIT_SEED: u64 = 1;

fn flatten(side: &[&SquadArticle]) -> Vec<SquadExample> {
    side.iter()
        .flat_map(|a| a.examples.iter().cloned())
        .collect()
}

/// The SQuAD-dev-split as the runner uses it: `train` and `dev` are questions of disjoint
/// articles of the fine-tune half (the learning rate is picked on `dev`), `eval` questions of
/// the held-out half, read once per fine-tuning.
pub struct SquadData {
    pub train: Vec<SquadExample>,
    pub dev: Vec<SquadExample>,
    pub eval: Vec<SquadExample>,
}

/// Reads `data_dir/dev-v1.1.json`, splits it by article ([`split_articles`] with
/// [`SPLIT_SEED`]), carves `dev_fraction` of the fine-tune half's articles off as dev (a fixed
/// seed), and caps each part at a fixed seeded sample of questions.
pub fn load_data(data_dir: &Path, s: &SquadScale) -> Result<SquadData> {
    Ok(split_data(&read_articles(data_dir)?, s))
}

/// [`load_data`] on articles already read.
pub fn split_data(articles: &[SquadArticle], s: &SquadScale) -> SquadData {
    let (finetune, heldout) = split_articles(articles, SPLIT_SEED);
    let (train, dev) = carve_dev(finetune, s.dev_fraction, 5);
    SquadData {
        train: subset(flatten(&train), s.max_train, 5),
        dev: subset(flatten(&dev), s.max_dev, 6),
        eval: subset(flatten(&heldout), s.max_eval, 7),
    }
}

fn read_articles(data_dir: &Path) -> Result<Vec<SquadArticle>> {
    let path = data_dir.join(DEV_FILE);
    let articles = read_squad_json(&path).with_context(|| format!("reading {}", path.display()))?;
    if articles.len() < 4 {
        bail!(
            "{} has {} articles; a split by article (fine-tune / dev / held-out) needs at least 4",
            path.display(),
            articles.len()
        );
    }
    Ok(articles)
}

/// [`split_articles`] flattened to the examples of each side (article order as shuffled,
/// questions in file order within an article).
#[cfg(test)]
pub fn split_by_article(
    articles: &[SquadArticle],
    seed: u64,
) -> (Vec<SquadExample>, Vec<SquadExample>) {
    let (a, b) = split_articles(articles, seed);
    (flatten(&a), flatten(&b))
}

/// Words the overlap baseline ignores (beyond the articles the normalisation already drops).
const STOP_WORDS: &[&str] = &[
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "is", "are", "was",
    "were", "be", "been", "did", "do", "does", "of", "in", "on", "at", "to", "for", "by", "with",
    "from", "and", "or", "as", "that", "this", "it", "its", "their", "his", "her", "they", "he",
    "she", "has", "have", "had", "not", "into", "than", "there", "s",
];

fn content_words(text: &str) -> HashSet<String> {
    normalize_answer(text)
        .split_whitespace()
        .filter(|w| !STOP_WORDS.contains(w))
        .map(str::to_owned)
        .collect()
}

/// The sentences of `text`: cut after `.`, `!` or `?` followed by whitespace, trimmed.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') && chars.peek().is_some_and(|(_, n)| n.is_whitespace()) {
            let end = i + c.len_utf8();
            let s = text[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let s = text[start..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// The overlap baseline's answer: the context sentence sharing the most content words
/// (normalised, stop words removed) with the question; the first such sentence on ties.
pub fn overlap_baseline(example: &SquadExample) -> String {
    let q = content_words(&example.question);
    let mut best: Option<(usize, &str)> = None;
    for s in sentences(&example.context) {
        let n = content_words(s).intersection(&q).count();
        if best.is_none_or(|(b, _)| n > b) {
            best = Some((n, s));
        }
    }
    best.map_or_else(String::new, |(_, s)| s.to_string())
}

/// EM and F1 (fractions) of the overlap baseline.
pub fn baseline_scores(examples: &[SquadExample]) -> Result<(f64, f64)> {
    let preds: Vec<String> = examples.iter().map(overlap_baseline).collect();
    Ok(squad_scores(&preds, examples)?)
}

/// The overlap baseline on the evaluation split, as the report lists baselines (F1, with EM).
pub fn baseline(d: &SquadData) -> Result<Baseline> {
    let (em, f1) = baseline_scores(&d.eval)?;
    Ok(Baseline {
        name: "question-overlap sentence (the sentence sharing most content words)".into(),
        score: f1,
        exact_match: Some(em),
    })
}

/// cloze's span settings for fine-tuning the model in `model_dir` with `seed` at one learning
/// rate of a scale's grid: the scale's windows, batch and epochs, the rest the paper's
/// recipe ([`SpanConfig::paper`]).
pub fn span_config(s: &SquadScale, learning_rate: f32, model_dir: &Path, seed: u64) -> SpanConfig {
    SpanConfig {
        max_seq_length: s.max_seq_length,
        doc_stride: s.doc_stride,
        max_query_length: s.max_query_length,
        batch_size: s.batch_size,
        epochs: s.epochs,
        learning_rate,
        seed,
        ..SpanConfig::paper(model_dir)
    }
}

/// Reads `data_dir/dev-v1.1.json`, splits it by article with `seed` and caps each side at a
/// seeded sample of `max_train` / `max_eval` questions (all if `None`). The by-hand test's
/// split (no dev part); the runner uses [`load_data`].
#[cfg(test)]
pub fn load_split(
    data_dir: &Path,
    max_train: Option<usize>,
    max_eval: Option<usize>,
    seed: u64,
) -> Result<(Vec<SquadExample>, Vec<SquadExample>)> {
    let articles = read_articles(data_dir)?;
    let (mut train, mut eval) = split_by_article(&articles, seed);
    let cap = |v: &mut Vec<SquadExample>, max: Option<usize>, salt: u64| {
        if let Some(m) = max {
            if m < v.len() {
                v.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ salt));
                v.truncate(m);
            }
        }
    };
    cap(&mut train, max_train, 0x7472);
    cap(&mut eval, max_eval, 0x6576);
    Ok((train, eval))
}

/// Fine-tunes the model in `cfg.model_dir` (HF folder with vocab.txt) on the fine-tuning half
/// of the SQuAD-dev-split (split with `cfg.seed`) and returns its (EM, F1) on the held-out
/// half, as fractions (one fixed learning rate: the by-hand test; the runner picks the rate
/// on dev).
#[cfg(test)]
pub fn run_squad(
    data_dir: &Path,
    max_train: Option<usize>,
    max_eval: Option<usize>,
    cfg: &SpanConfig,
) -> Result<(f64, f64)> {
    let (train, eval) = load_split(data_dir, max_train, max_eval, cfg.seed)?;
    let s = train_span(cfg, &train, &eval).with_context(|| {
        format!(
            "{LABEL}: fine-tuning {} on {} questions",
            cfg.model_dir.display(),
            train.len()
        )
    })?;
    Ok((s.exact_match, s.f1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(title: &str, n: usize) -> SquadArticle {
        SquadArticle {
            title: title.into(),
            examples: (0..n)
                .map(|i| SquadExample {
                    id: format!("{title}-{i}"),
                    question: "q".into(),
                    context: format!("context of {title}"),
                    answers: vec![(0, "context".into())],
                })
                .collect(),
        }
    }

    #[test]
    fn split_is_by_article_disjoint_and_deterministic() {
        let articles: Vec<SquadArticle> = (0..48)
            .map(|i| article(&format!("a{i}"), 1 + i % 3))
            .collect();
        let (a, b) = split_articles(&articles, 1);
        assert_eq!((a.len(), b.len()), (24, 24));
        let ta: HashSet<&str> = a.iter().map(|x| x.title.as_str()).collect();
        let tb: HashSet<&str> = b.iter().map(|x| x.title.as_str()).collect();
        assert!(ta.is_disjoint(&tb));
        assert_eq!(ta.len() + tb.len(), 48);
        // flattened: every question of an article is on its article's side
        let (train, eval) = split_by_article(&articles, 1);
        assert_eq!(
            train.len() + eval.len(),
            articles.iter().map(|a| a.examples.len()).sum::<usize>()
        );
        let side = |id: &str| id.split('-').next().unwrap().to_string();
        assert!(train.iter().all(|e| ta.contains(side(&e.id).as_str())));
        assert!(eval.iter().all(|e| tb.contains(side(&e.id).as_str())));
        // the same seed gives the same split, another seed another one; not the file order
        assert_eq!(
            split_by_article(&articles, 1),
            (train.clone(), eval.clone())
        );
        let (train2, _) = split_by_article(&articles, 2);
        assert_ne!(train, train2);
        let first_half: Vec<&str> = articles[..24].iter().map(|a| a.title.as_str()).collect();
        assert_ne!(
            a.iter().map(|x| x.title.as_str()).collect::<Vec<_>>(),
            first_half
        );
    }

    #[test]
    fn dev_is_carved_by_article_from_the_fine_tune_half() {
        let articles: Vec<SquadArticle> = (0..48)
            .map(|i| article(&format!("a{i}"), 2 + i % 3))
            .collect();
        let mut s = crate::scale::Scale::full().squad.unwrap();
        s.max_train = None;
        s.max_eval = None;
        let d = split_data(&articles, &s);
        let titles = |v: &[SquadExample]| -> HashSet<String> {
            v.iter()
                .map(|e| e.id.split('-').next().unwrap().to_string())
                .collect()
        };
        let (tr, dv, ev) = (titles(&d.train), titles(&d.dev), titles(&d.eval));
        assert_eq!((tr.len(), dv.len(), ev.len()), (19, 5, 24));
        assert!(tr.is_disjoint(&dv) && tr.is_disjoint(&ev) && dv.is_disjoint(&ev));
        // the held-out half is the by-hand test's held-out half
        assert_eq!(ev, titles(&split_by_article(&articles, SPLIT_SEED).1));
        // caps take seeded samples, the same every time
        s.max_train = Some(10);
        s.max_dev = Some(3);
        let a = split_data(&articles, &s);
        let b = split_data(&articles, &s);
        assert_eq!((a.train.len(), a.dev.len()), (10, 3));
        assert_eq!(a.train, b.train);
        assert!(titles(&a.train).is_subset(&tr) && titles(&a.dev).is_subset(&dv));
    }

    #[test]
    fn overlap_baseline_picks_the_sentence_sharing_most_question_words() {
        let context = "The castle was built in 1204 by King John. It burned down in 1349! \
                       Who rebuilt it? The monks of Ely rebuilt the castle in 1360.";
        assert_eq!(
            sentences(context),
            [
                "The castle was built in 1204 by King John.",
                "It burned down in 1349!",
                "Who rebuilt it?",
                "The monks of Ely rebuilt the castle in 1360."
            ]
        );
        let ex = SquadExample {
            id: "x".into(),
            question: "Who rebuilt the castle in 1360?".into(),
            context: context.into(),
            answers: vec![(
                context[..context.find("The monks").unwrap()]
                    .chars()
                    .count(),
                "The monks of Ely".into(),
            )],
        };
        // sentence 4 shares {rebuilt, castle, 1360}; sentence 1 {castle}; 3 {rebuilt}
        assert_eq!(
            overlap_baseline(&ex),
            "The monks of Ely rebuilt the castle in 1360."
        );
        ex.validate().unwrap();
        // scored by hand: normalised pred {monks, of, ely, rebuilt, castle, in, 1360} (7) vs
        // gold {monks, of, ely} (3): 3 shared → P 3/7, R 1, F1 = (6/7)/(10/7) = 0.6; EM 0
        let (em, f1) = baseline_scores(&[ex]).unwrap();
        assert_eq!(em, 0.0);
        assert!((f1 - 0.6).abs() < 1e-12, "{f1}");
    }

    fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
        std::env::var(name).ok().and_then(|v| v.parse().ok())
    }

    /// The real numbers: the baseline on the held-out half and, with `CLOZE_SQUAD_MODEL=<dir>`
    /// or `CLOZE_SQUAD_RANDOM_L2H128=1` (a random-init L2/H128 model with a WordPiece vocab
    /// learned from the fine-tuning half), a fine-tune. Caps: `SQUAD_MAX_TRAIN`,
    /// `SQUAD_MAX_EVAL`, `SQUAD_EPOCHS`, `SQUAD_LR`, `SQUAD_SEQ`.
    #[test]
    #[ignore = "reads the SQuAD dev file and may fine-tune for minutes; run by hand"]
    fn squad_dev_split_numbers() {
        let shared = std::env::var_os("CLOZE_SHARED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
        let data = shared.join("data/squad");
        let seed = env("SQUAD_SEED").unwrap_or(1);
        let max_eval = env("SQUAD_MAX_EVAL");
        let (train, eval) = load_split(&data, None, max_eval, seed).unwrap();
        let (em, f1) = baseline_scores(&eval).unwrap();
        eprintln!(
            "{LABEL} (seed {seed}): {} fine-tune / {} held-out questions; overlap baseline EM {:.2} F1 {:.2}",
            train.len(),
            eval.len(),
            100.0 * em,
            100.0 * f1
        );
        let model = if let Ok(d) = std::env::var("CLOZE_SQUAD_MODEL") {
            std::path::PathBuf::from(d)
        } else if env::<u8>("CLOZE_SQUAD_RANDOM_L2H128") == Some(1) {
            let dir = std::env::temp_dir().join(format!("squad-l2h128-{}", std::process::id()));
            let mut t = cloze::tokenizer::Trainer::new(cloze::tokenizer::TrainerConfig {
                vocab_size: 8000,
                ..Default::default()
            });
            let mut seen = HashSet::new();
            for e in &train {
                if seen.insert(e.context.clone()) {
                    t.feed(&e.context);
                }
                t.feed(&e.question);
            }
            let vocab = t.train().unwrap();
            let mut config = cloze::bert::config::BertConfig::with_shape(2, 128, 2, 512);
            config.vocab_size = vocab.len();
            let mut store = cloze::ParamStore::new();
            cloze::bert::model::BertModel::new(&config, &mut store, seed).unwrap();
            cloze::bert::checkpoint::save_pretrained(&dir, &config, &store).unwrap();
            vocab.save(dir.join("vocab.txt")).unwrap();
            dir
        } else {
            return;
        };
        // 256-piece windows (cheaper on CPUs; the paper uses 384) and a rate of 5e-5
        let cfg = SpanConfig {
            epochs: env("SQUAD_EPOCHS").unwrap_or(2),
            learning_rate: env("SQUAD_LR").unwrap_or(5e-5),
            max_seq_length: env("SQUAD_SEQ").unwrap_or(256),
            progress: true,
            seed,
            ..SpanConfig::paper(&model)
        };
        let t0 = std::time::Instant::now();
        let (em, f1) = run_squad(&data, env("SQUAD_MAX_TRAIN"), max_eval, &cfg).unwrap();
        eprintln!(
            "{LABEL}: {} fine-tuned ({cfg:?}): EM {:.2} F1 {:.2} in {:.0} s",
            model.display(),
            100.0 * em,
            100.0 * f1,
            t0.elapsed().as_secs_f64()
        );
    }
}
