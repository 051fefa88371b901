//! Several audits of one recipe — the same models by name, methods and classes, trained again
//! with other seeds — pooled: one conclusion that does not rest on one training run.
//!
//! The pooled audit counts every image once per run (images × runs are the units its bootstrap
//! resamples), and each of its comparisons keeps every run's own paired difference beside it, so
//! a reader sees whether the runs agree on the direction or one run carries the pooled figure.

use serde::{Deserialize, Serialize};

use super::{Audit, AuditPlan, ImageAudit};
use crate::{Error, Result, trust::PairedDifference};

/// One audit's plan and records, as `kdlens audit` keeps them (`records.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecords {
    /// The plan every record was made with.
    pub plan: AuditPlan,
    /// One record per audited image.
    pub records: Vec<ImageAudit>,
}

/// How the runs of a pooled comparison agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDifferences {
    /// Each run's own paired difference (`None` where it has no image with both values).
    pub per_run: Vec<Option<PairedDifference>>,
    /// Runs whose own interval excludes 0 on the pooled difference's side.
    pub agreeing: usize,
    /// Runs whose own interval excludes 0 on the other side.
    pub opposing: usize,
}

/// Audits of several runs, pooled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PooledAudit {
    /// The runs' names, in the order of every per-run list.
    pub runs: Vec<String>,
    /// The audit of all runs' records together.
    pub pooled: Audit,
    /// Per comparison of `pooled` (same order): how the runs agree.
    pub runs_agree: Vec<RunDifferences>,
}

impl PooledAudit {
    /// Pools `runs` (name, plan and records), which must share one plan; the bootstrap draws
    /// from `seed`.
    pub fn of(runs: &[(String, AuditRecords)], seed: u64) -> Result<Self> {
        let Some((_, first)) = runs.first() else {
            return Err(Error::InvalidRequest("no audit to pool".into()));
        };
        for (name, run) in runs {
            if run.plan != first.plan {
                return Err(Error::InvalidRequest(format!(
                    "the audit of {name} was made with another plan (models, stages, classes or \
                     request) than {}'s: only runs of one recipe can be pooled",
                    runs[0].0
                )));
            }
        }
        let audits: Vec<Audit> = runs
            .iter()
            .map(|(_, run)| Audit::of(&run.plan, run.records.clone(), &[], seed))
            .collect::<Result<_>>()?;
        let all: Vec<ImageAudit> = runs
            .iter()
            .flat_map(|(name, run)| {
                run.records.iter().map(move |record| ImageAudit {
                    image: format!("{name}/{}", record.image),
                    ..record.clone()
                })
            })
            .collect();
        let pooled = Audit::of(&first.plan, all, &[], seed)?;
        let runs_agree = pooled
            .summary
            .comparisons
            .iter()
            .enumerate()
            .map(|(k, comparison)| {
                let per_run: Vec<Option<PairedDifference>> = audits
                    .iter()
                    .map(|a| a.summary.comparisons[k].difference)
                    .collect();
                let side = comparison.difference.map_or(0.0, |d| d.mean.signum());
                let clear = |d: &&PairedDifference| d.is_clear();
                let agreeing = per_run
                    .iter()
                    .flatten()
                    .filter(clear)
                    .filter(|d| d.mean.signum() == side)
                    .count();
                let opposing = per_run
                    .iter()
                    .flatten()
                    .filter(clear)
                    .filter(|d| d.mean.signum() == -side)
                    .count();
                RunDifferences {
                    per_run,
                    agreeing,
                    opposing,
                }
            })
            .collect();
        Ok(Self {
            runs: runs.iter().map(|(name, _)| name.clone()).collect(),
            pooled,
            runs_agree,
        })
    }
}
