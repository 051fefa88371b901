//! `kdlens pool-audits`: the audits of one recipe trained with several seeds (`kdlens demo
//! --seed S`, or `kdlens audit` runs of such models), pooled into one answer with each run's own
//! difference beside it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use kdlens::trust::{AuditRecords, PooledAudit};

use super::audit::audit_sections;
use crate::{
    cli::{GlobalArgs, PoolArgs},
    report::markdown_table,
    run::RunDir,
};

/// The records of the audit in `dir`: an audit's run folder, or a demo's (its `audit/`).
fn records_in(dir: &Path) -> Result<AuditRecords> {
    let path = [
        dir.join("records.json"),
        dir.join("audit").join("records.json"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .with_context(|| {
        format!(
            "{} holds no audit records (records.json, or audit/records.json in a demo's run \
                 folder; written by kdlens audit)",
            dir.display()
        )
    })?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not an audit's records file", path.display()))
}

/// A run's name in the tables: its folder's name.
fn run_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// `kdlens pool-audits RUN…`: writes `pooled.json` and `pooled.md` to `run`.
pub fn run_pool(args: &PoolArgs, global: &GlobalArgs, run: &RunDir) -> Result<PooledAudit> {
    if args.runs.len() < 2 {
        bail!("pooling needs the audits of at least two runs");
    }
    let runs: Vec<(String, AuditRecords)> = args
        .runs
        .iter()
        .map(|dir: &PathBuf| Ok((run_name(dir), records_in(dir)?)))
        .collect::<Result<_>>()?;
    let pooled = PooledAudit::of(&runs, global.seed)?;
    run.write_json("pooled.json", &pooled)?;
    let markdown = pooled_markdown(&pooled);
    run.write_text("pooled.md", &markdown)?;
    println!("{markdown}");
    Ok(pooled)
}

/// The pooled audit as Markdown: the comparisons across runs first, then the pooled tables.
fn pooled_markdown(pooled: &PooledAudit) -> String {
    let mut header = vec![
        "measure",
        "method",
        "first − second",
        "pooled [95 % interval]",
    ];
    header.extend(pooled.runs.iter().map(String::as_str));
    header.push("runs clearly agreeing / opposing");
    header.push("reading");
    let rows: Vec<Vec<String>> = pooled
        .pooled
        .summary
        .comparisons
        .iter()
        .zip(&pooled.runs_agree)
        .map(|(c, runs)| {
            let mut row = vec![
                c.measure.label().into(),
                c.method.name().into(),
                format!("{} − {}", c.first, c.second),
                c.difference
                    .map_or_else(|| "—".into(), |d| format!("{} (n = {})", d.show(3), d.n)),
            ];
            row.extend(
                runs.per_run
                    .iter()
                    .map(|d| d.map_or_else(|| "—".into(), |d| d.show(3))),
            );
            row.push(format!("{} / {}", runs.agreeing, runs.opposing));
            row.push(c.reading.clone());
            row
        })
        .collect();
    format!(
        "# kdlens audits of {} runs, pooled\n\n\
         Runs: {}. Each image counts once per run; a pooled difference is taken image by image \
         over every run's images, with a percentile-bootstrap 95 % interval over those units. \
         Beside it, each run's own difference and interval, and how many runs' intervals clearly \
         agree with the pooled direction or oppose it.\n\n\
         ## Across runs\n\n{}\n{}",
        pooled.runs.len(),
        pooled.runs.join(", "),
        markdown_table(&header, &rows),
        audit_sections(&pooled.pooled, None)
    )
}
