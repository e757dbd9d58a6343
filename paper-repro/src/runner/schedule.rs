//! The workers: each takes the next ready job (evaluations of finished pre-trainings first)
//! and runs it in its own thread pool.

use crate::plan::Experiment;
use crate::runner::eval::run_eval;
use crate::runner::jobs::{describe, is_done, jobs, Job};
use crate::runner::pretrain::run_pretrain;
use crate::runner::{read_sittings, write_json, Ctx, WallTime, SITTINGS_FILE};
use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// Links each shared row's `seed-N` folder to its owner's, so every row has its folder.
pub fn link_rows(ctx: &Ctx) -> Result<()> {
    for r in &ctx.rows {
        for &seed in &ctx.scale.seeds {
            let target = ctx.run_dir(&r.spec, seed);
            let here = ctx.row_dir(r).join(format!("seed-{seed}"));
            if here == target {
                continue;
            }
            std::fs::create_dir_all(ctx.row_dir(r))?;
            if std::fs::symlink_metadata(&here).is_ok() {
                continue;
            }
            // relative: ../../<exp>/<row>/seed-N
            let rel = Path::new("../..").join(target.strip_prefix(&ctx.runs).unwrap_or(&target));
            #[cfg(unix)]
            std::os::unix::fs::symlink(&rel, &here)
                .with_context(|| format!("linking {} to {}", here.display(), rel.display()))?;
            #[cfg(not(unix))]
            std::fs::write(here.with_extension("link"), rel.display().to_string())?;
        }
    }
    Ok(())
}

struct State {
    pending: Vec<Job>,
    running: HashSet<Job>,
    finished: HashSet<Job>,
    failed: Vec<(Job, String)>,
}

impl State {
    /// A pending evaluation can start once its pre-training has finished.
    fn ready(&self, j: &Job) -> bool {
        match *j {
            Job::Pretrain { .. } => true,
            Job::Eval { spec, seed, .. } => self.finished.contains(&Job::Pretrain { spec, seed }),
        }
    }

    /// A pending evaluation never starts when its pre-training failed.
    fn blocked(&self, j: &Job) -> bool {
        match *j {
            Job::Eval { spec, seed, .. } => self
                .failed
                .iter()
                .any(|(f, _)| *f == Job::Pretrain { spec, seed }),
            _ => false,
        }
    }
}

/// What the workers share: the job lists, the signal that they changed, the progress bars.
struct Shared<'a> {
    state: Mutex<State>,
    /// The earlier sittings and this one, saved after every job.
    sittings: Mutex<Vec<WallTime>>,
    started: Instant,
    cv: Condvar,
    multi: MultiProgress,
    overall: ProgressBar,
    ctx: &'a Ctx,
}

impl Shared<'_> {
    /// A line above the bars (on stderr when they are hidden).
    fn say(&self, msg: String) {
        if self.overall.is_hidden() {
            eprintln!("{msg}");
        } else {
            let _ = self.multi.println(msg);
        }
    }

    /// The next job to run: the first evaluation whose pre-training is finished (so results
    /// land early), else the first pre-training; waits while only blocked-on evaluations
    /// remain; `None` when nothing is pending. Evaluations whose pre-training failed are
    /// marked failed on the way.
    fn next_job(&self) -> Option<Job> {
        let mut st = self.state.lock().unwrap();
        loop {
            if st.pending.is_empty() {
                return None;
            }
            if let Some(i) = st.pending.iter().position(|j| st.blocked(j)) {
                let j = st.pending.remove(i);
                st.failed.push((j, "its pre-training failed".into()));
                self.overall.inc(1);
                continue;
            }
            let pick = st
                .pending
                .iter()
                .position(|j| matches!(j, Job::Eval { .. }) && st.ready(j))
                .or_else(|| {
                    st.pending
                        .iter()
                        .position(|j| matches!(j, Job::Pretrain { .. }))
                });
            if let Some(i) = pick {
                let j = st.pending.remove(i);
                st.running.insert(j);
                return Some(j);
            }
            st = self.cv.wait(st).unwrap();
        }
    }

    /// Records a job's result, says it, and wakes the waiting workers.
    fn finish(&self, job: Job, what: &str, res: Result<String>) {
        let mut st = self.state.lock().unwrap();
        st.running.remove(&job);
        match res {
            Ok(summary) => {
                st.finished.insert(job);
                self.say(format!("done   {what}: {summary}"));
            }
            Err(e) => {
                self.say(format!("FAILED {what}: {e:#}"));
                st.failed.push((job, format!("{e:#}")));
            }
        }
        self.overall.inc(1);
        self.cv.notify_all();
        drop(st);
        self.record_sitting();
    }

    /// Counts a job run in this sitting (the last entry) and saves the sittings; a failure to
    /// save is said, not fatal.
    fn record_sitting(&self) {
        let mut s = self.sittings.lock().unwrap();
        if let Some(now) = s.last_mut() {
            now.jobs_run += 1;
            now.seconds = self.started.elapsed().as_secs_f64();
        }
        if let Err(e) = write_json(&self.ctx.runs.join(SITTINGS_FILE), &*s) {
            self.say(format!("cannot save the wall time: {e:#}"));
        }
    }

    /// Worker `w`: takes jobs until none is left, each run in the worker's own pool of
    /// `threads` threads, with its own bar.
    fn worker(&self, w: usize, threads: usize) {
        let ctx = self.ctx;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .expect("thread pool");
        let bar = self.multi.add(ProgressBar::new(1));
        bar.set_style(
            ProgressStyle::with_template("  {prefix} {bar:20} {pos}/{len} {msg}")
                .expect("valid template"),
        );
        while let Some(job) = self.next_job() {
            let what = describe(ctx, &job);
            // the job in the prefix: a pre-training writes its losses in the message
            bar.set_prefix(format!("#{w} {what}"));
            bar.set_message("");
            bar.set_position(0);
            bar.set_length(1);
            let res = pool.install(|| match job {
                Job::Pretrain { spec, seed } => run_pretrain(ctx, &spec, seed, &bar),
                Job::Eval {
                    spec,
                    seed,
                    checkpoint,
                    task,
                } => run_eval(ctx, &spec, seed, checkpoint, task),
            });
            self.finish(job, &what, res);
        }
        bar.finish_and_clear();
    }
}

/// Runs every job not already done; returns the failures (job, error).
pub fn run(
    ctx: &Ctx,
    experiments: &[Experiment],
    workers: usize,
    threads: usize,
) -> Result<Vec<(String, String)>> {
    link_rows(ctx)?;
    let all = jobs(ctx, experiments);
    let (finished, todo): (HashSet<Job>, Vec<Job>) = {
        let (done, todo): (Vec<Job>, Vec<Job>) = all.iter().partition(|j| is_done(ctx, j));
        (done.into_iter().collect(), todo)
    };
    let (cached, to_run) = (all.len() - todo.len(), todo.len());
    let multi = MultiProgress::new();
    let overall = multi.add(ProgressBar::new(to_run as u64));
    overall.set_style(
        ProgressStyle::with_template(
            "suite {bar:30} {pos}/{len} jobs  elapsed {elapsed}  eta {eta}",
        )
        .expect("valid template"),
    );
    let mut sittings = read_sittings(&ctx.runs);
    sittings.push(WallTime {
        seconds: 0.0,
        jobs_run: 0,
        jobs_cached: cached,
        workers,
        threads,
    });
    let shared = Shared {
        sittings: Mutex::new(sittings),
        started: Instant::now(),
        state: Mutex::new(State {
            pending: todo,
            running: HashSet::new(),
            finished,
            failed: Vec::new(),
        }),
        cv: Condvar::new(),
        multi,
        overall,
        ctx,
    };
    shared.say(format!(
        "{} jobs: {} already done, {} to run on {} worker(s) × {} thread(s)",
        all.len(),
        cached,
        to_run,
        workers,
        threads
    ));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..workers.max(1) {
            let shared = &shared;
            scope.spawn(move || shared.worker(w, threads));
        }
    });
    shared.overall.finish();
    let failed = std::mem::take(&mut shared.state.lock().unwrap().failed);
    shared.say(format!(
        "suite finished in {:.1} min; {} failed",
        started.elapsed().as_secs_f64() / 60.0,
        failed.len()
    ));
    Ok(failed
        .iter()
        .map(|(j, e)| (describe(ctx, j), e.clone()))
        .collect())
}
