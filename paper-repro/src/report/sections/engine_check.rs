//! The engine check: the default recipe trained in PyTorch beside cloze.

use crate::plan::Experiment;
use crate::report::markdown::md_table;
use crate::report::sections::Inputs;
use crate::runner::read_json;
use std::fmt::Write as _;

/// `results/<scale>/pytorch-reference.json`, written by `paper-repro/pytorch/engine_check.sh`.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct PytorchReference {
    pub recipe: String,
    pub steps: u64,
    pub heldout_mlm_loss: f64,
    /// The two context-free baselines on PyTorch's own held-out positions (it draws its
    /// held-out instances with its own generator, so they differ slightly from cloze's).
    #[serde(default)]
    pub heldout_unigram_loss: Option<f64>,
    #[serde(default)]
    pub heldout_context_free_loss: Option<f64>,
    #[serde(default)]
    pub cloze_heldout_mlm_loss: Option<f64>,
    pub command: String,
}

pub(crate) fn section_engine_check(out: &mut String, inp: &Inputs) {
    out.push_str("## Engine check: the same recipe in PyTorch\n\n");
    let path = inp.results.join("pytorch-reference.json");
    let Some(r) = read_json::<PytorchReference>(&path) else {
        out.push_str("Not run (no `pytorch-reference.json` beside this report).\n\n");
        return;
    };
    // cloze: the default row's seed 1 (PyTorch ran one seed), if it ran the same steps
    let def = inp
        .all
        .iter()
        .find(|x| x.row.experiment == Experiment::Table5 && x.row.is_default);
    let seed1 = def
        .and_then(|d| d.seeds.iter().find(|(s, _)| *s == 1))
        .and_then(|(_, s)| s.pretrain.as_ref())
        .filter(|p| p.steps == r.steps);
    let cloze = r
        .cloze_heldout_mlm_loss
        .or(seed1.map(|p| p.heldout_lm_loss));
    let _ = writeln!(
        out,
        "Recipe: {} ({} steps, seed 1). PyTorch (HF `BertForPreTraining`) command: `{}`. \
         Each engine draws its own held-out instances from the same held-out text, so each row gives its own baselines on its own positions; \
         compare the distances below them.\n",
        r.recipe, r.steps, r.command
    );
    let f = |v: Option<f64>| v.map_or("—".to_string(), |x| format!("{x:.3}"));
    let below = |l: Option<f64>, b: Option<f64>| match (l, b) {
        (Some(l), Some(b)) => format!("{:.3}", b - l),
        _ => "—".into(),
    };
    let (cu, ccf) = (
        seed1.and_then(|p| p.heldout_unigram_loss),
        seed1.and_then(|p| p.heldout_context_free_loss),
    );
    let body = vec![
        vec![
            "cloze".to_string(),
            r.steps.to_string(),
            f(cloze),
            f(cu),
            f(ccf),
            below(cloze, cu),
            below(cloze, ccf),
        ],
        vec![
            "PyTorch".to_string(),
            r.steps.to_string(),
            format!("{:.3}", r.heldout_mlm_loss),
            f(r.heldout_unigram_loss),
            f(r.heldout_context_free_loss),
            below(Some(r.heldout_mlm_loss), r.heldout_unigram_loss),
            below(Some(r.heldout_mlm_loss), r.heldout_context_free_loss),
        ],
    ];
    md_table(
        out,
        &[
            "engine".into(),
            "steps".into(),
            "held-out MLM loss (nats)".into(),
            "unigram".into(),
            "context-free floor".into(),
            "below unigram".into(),
            "below floor".into(),
        ],
        &body,
    );
    // How far apart seeds of the same engine and recipe land, for scale: one PyTorch seed
    // cannot separate an engine difference from when a run happened to leave the plateau.
    let spread: Vec<f64> = def
        .map(|d| d.pretrain_values(|p| p.heldout_lm_loss))
        .unwrap_or_default();
    if spread.len() > 1 {
        let (lo, hi) = crate::stats::min_max(&spread);
        let _ = writeln!(
            out,
            "For scale: cloze's {} seeds of this row end between {lo:.3} and {hi:.3} nats. PyTorch ran one seed, so a gap between the engines no larger than a few times that spread cannot tell an engine difference from when each run happened to leave the unigram plateau (see the recipe study); a gap of a whole nat or more, or one that repeats in the same direction over seeds, would point at an engine.\n",
            spread.len()
        );
    }
}
