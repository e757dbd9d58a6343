//! The experiments as rows, and the rows as jobs: one pre-training per distinct (model,
//! objective, masking, seed) and one fine-tuning per (pre-training, checkpoint, task).
//! Rows that are the same pre-training (Table 5's MLM+NSP is Table 8's 80/10/10 and Table 6's
//! default size) share one run.

use crate::scale::{Scale, Size};
use crate::tasks::Task;
use serde::{Deserialize, Serialize};

/// Pre-training objective (cloze's `Objective`, by name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Objective {
    MlmNsp,
    Mlm,
    Ltr,
    /// No pre-training: the control row. The random initialisation of the default model
    /// (same architecture, the run's seed) is saved as the "pre-trained" model.
    None,
}

impl Objective {
    /// cloze's objective name. The control builds its (untrained) model and held-out data as
    /// an MLM+NSP run would, so its held-out MLM loss is that of a random model.
    pub fn toml(self) -> &'static str {
        match self {
            Objective::MlmNsp | Objective::None => "mlm+nsp",
            Objective::Mlm => "mlm",
            Objective::Ltr => "ltr",
        }
    }
}

/// MASK / SAME / RND percentages of the chosen 15%.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Masking {
    pub mask: u32,
    pub same: u32,
    pub random: u32,
}

impl Masking {
    pub const DEFAULT: Masking = Masking {
        mask: 80,
        same: 10,
        random: 10,
    };
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.mask, self.same, self.random)
    }
}

/// What one pre-training run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PretrainSpec {
    pub size: Size,
    pub objective: Objective,
    pub masking: Masking,
}

/// The four experiments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Experiment {
    Table5,
    Table8,
    Figure5,
    Table6,
}

impl Experiment {
    pub const ALL: [Experiment; 4] = [
        Experiment::Table5,
        Experiment::Table8,
        Experiment::Figure5,
        Experiment::Table6,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            Experiment::Table5 => "table5",
            Experiment::Table8 => "table8",
            Experiment::Figure5 => "figure5",
            Experiment::Table6 => "table6",
        }
    }

    pub fn from_slug(s: &str) -> Option<Experiment> {
        Experiment::ALL.into_iter().find(|e| e.slug() == s)
    }

    pub fn title(self) -> &'static str {
        match self {
            Experiment::Table5 => "Table 5: pre-training tasks",
            Experiment::Table8 => "Table 8: masking strategies",
            Experiment::Figure5 => "Figure 5: MLM vs LTR over pre-training",
            Experiment::Table6 => "Table 6: model size",
        }
    }

    /// The downstream columns at a scale: [`Experiment::tasks`], with Table 5's SQuAD column
    /// where the scale runs it.
    pub fn tasks_at(self, scale: &Scale) -> Vec<Task> {
        let mut t = self.tasks().to_vec();
        if self == Experiment::Table5 && scale.squad.is_some() {
            t.push(Task::Squad);
        }
        t
    }

    /// The downstream columns every scale has.
    pub fn tasks(self) -> &'static [Task] {
        match self {
            Experiment::Table5 => &[Task::Rte, Task::Qnli, Task::Mrpc, Task::Sst2],
            Experiment::Table8 => &[Task::Qnli, Task::PosFinetune, Task::PosFeature],
            Experiment::Figure5 => &[Task::Qnli],
            Experiment::Table6 => &[Task::Qnli, Task::Mrpc, Task::Sst2],
        }
    }
}

/// One row of an experiment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub experiment: Experiment,
    /// The paper's row label (e.g. "No NSP", "80/10/10", "L2/H128/A2").
    pub label: String,
    /// Folder name.
    pub slug: String,
    pub spec: PretrainSpec,
    /// The row every other row is compared with.
    pub is_default: bool,
}

impl Row {
    /// The no-pre-training control (random initialisation, same fine-tuning).
    pub fn is_control(&self) -> bool {
        self.spec.objective == Objective::None
    }
}

/// The control's label in every table.
pub const CONTROL_LABEL: &str = "No pre-training (random init)";

/// Every row of every experiment at a scale.
pub fn rows(scale: &Scale) -> Vec<Row> {
    let base = PretrainSpec {
        size: scale.default_size,
        objective: Objective::MlmNsp,
        masking: Masking::DEFAULT,
    };
    let mut out = Vec::new();
    let mut push = |experiment, label: &str, slug: &str, spec: PretrainSpec, is_default| {
        out.push(Row {
            experiment,
            label: label.into(),
            slug: slug.into(),
            spec,
            is_default,
        })
    };
    let obj = |o| PretrainSpec {
        objective: o,
        ..base
    };
    let control = obj(Objective::None);
    push(Experiment::Table5, "BERT (MLM+NSP)", "mlm-nsp", base, true);
    push(
        Experiment::Table5,
        "No NSP",
        "no-nsp",
        obj(Objective::Mlm),
        false,
    );
    push(
        Experiment::Table5,
        "LTR & No NSP",
        "ltr",
        obj(Objective::Ltr),
        false,
    );
    push(Experiment::Table5, CONTROL_LABEL, "none", control, false);
    for (m, s, r) in [
        (80, 10, 10),
        (100, 0, 0),
        (80, 0, 20),
        (80, 20, 0),
        (0, 20, 80),
        (0, 0, 100),
    ] {
        let masking = Masking {
            mask: m,
            same: s,
            random: r,
        };
        push(
            Experiment::Table8,
            &masking.label(),
            &format!("mask{m}-same{s}-rnd{r}"),
            PretrainSpec { masking, ..base },
            masking == Masking::DEFAULT,
        );
    }
    push(Experiment::Table8, CONTROL_LABEL, "none", control, false);
    // Figure 5 compares the two objectives without NSP, so that only the LM differs.
    push(
        Experiment::Figure5,
        "MLM (No NSP)",
        "mlm",
        obj(Objective::Mlm),
        true,
    );
    push(
        Experiment::Figure5,
        "LTR (No NSP)",
        "ltr",
        obj(Objective::Ltr),
        false,
    );
    push(Experiment::Figure5, CONTROL_LABEL, "none", control, false);
    for size in &scale.sizes {
        push(
            Experiment::Table6,
            &size.label(),
            &size.slug(),
            PretrainSpec {
                size: *size,
                ..base
            },
            *size == scale.default_size,
        );
    }
    push(
        Experiment::Table6,
        &format!("{CONTROL_LABEL}, {}", scale.default_size.label()),
        "none",
        control,
        false,
    );
    out
}

/// Which checkpoint a fine-tuning starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Checkpoint {
    Final,
    Step(u64),
}

/// The (owner row, seed) folder of each pre-training: the first row that uses it.
pub fn owner<'r>(rows: &'r [Row], spec: &PretrainSpec) -> &'r Row {
    rows.iter()
        .find(|r| r.spec == *spec)
        .expect("every spec comes from a row")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_share_pretraining_where_the_paper_rows_coincide() {
        let s = Scale::quick();
        let r = rows(&s);
        let mut specs: Vec<PretrainSpec> = r.iter().map(|x| x.spec).collect();
        specs.dedup();
        let distinct: std::collections::HashSet<_> = r.iter().map(|x| x.spec).collect();
        // 3 objectives + 5 other maskings + 2 other sizes + the no-pre-training control
        assert_eq!(distinct.len(), 11);
        for e in Experiment::ALL {
            assert_eq!(
                r.iter()
                    .filter(|x| x.experiment == e && x.is_default)
                    .count(),
                1,
                "{e:?} has one default row"
            );
        }
        // the masking table's default is Table 5's first row
        let t8 = r
            .iter()
            .find(|x| x.experiment == Experiment::Table8 && x.is_default)
            .unwrap();
        assert_eq!(owner(&r, &t8.spec).experiment, Experiment::Table5);
        // SQuAD-dev-split is Table 5's last column where the scale runs it
        assert_eq!(Experiment::Table5.tasks_at(&s), Experiment::Table5.tasks());
        assert_eq!(
            Experiment::Table5.tasks_at(&Scale::toy()).last(),
            Some(&Task::Squad)
        );
        assert!(!Experiment::Table8
            .tasks_at(&Scale::full())
            .contains(&Task::Squad));
        // every experiment has the control, all sharing Table 5's run
        for e in Experiment::ALL {
            let c: Vec<&Row> = r
                .iter()
                .filter(|x| x.experiment == e && x.is_control())
                .collect();
            assert_eq!(c.len(), 1, "{e:?} has one control row");
            assert_eq!(c[0].spec.size, s.default_size);
            assert_eq!(owner(&r, &c[0].spec).experiment, Experiment::Table5);
        }
    }
}
