//! `kdlens`: the command-line shell over the kdlens core.

mod cli;
mod commands;
mod data;
mod device;
mod fsutil;
mod model_io;
mod report;
mod run;
mod train;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command};
use run::RunDir;

fn main() -> ExitCode {
    let cli = Cli::parse();
    device::set_process_default(cli.global.device);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let global = &cli.global;
    match &cli.command {
        Command::TrainTeacher(args) => {
            let config = commands::train_teacher::resolve(args, global)?;
            let run = RunDir::open(
                args.train.resume.as_deref().or(global.run_dir.as_deref()),
                "teacher",
            )?;
            let device = device::select(config.device)?;
            commands::train_teacher::train_teacher(
                &config,
                &run,
                &device,
                args.train.resume.is_some(),
            )?;
        }
        Command::Distill(args) => {
            let config = commands::distill::resolve(args, global)?;
            let run = RunDir::open(
                args.train.resume.as_deref().or(global.run_dir.as_deref()),
                "distill",
            )?;
            let device = device::select(config.device)?;
            commands::distill::distill(&config, &run, &device, args.train.resume.is_some())?;
        }
        Command::Evaluate(args) => {
            let run = RunDir::open(global.run_dir.as_deref(), "evaluate")?;
            commands::evaluate::run_evaluate(args, global, &run, &device::select(global.device)?)?;
        }
        Command::Explain(args) => {
            let run = RunDir::open(global.run_dir.as_deref(), "explain")?;
            commands::explain::run_explain(args, global, &run, &device::select(global.device)?)?;
        }
        Command::Audit(args) => {
            let run = RunDir::open(global.run_dir.as_deref(), "audit")?;
            commands::audit::run_audit(args, global, &run, &device::select(global.device)?)?;
        }
        Command::Export(args) => {
            let run = RunDir::open(global.run_dir.as_deref(), "export")?;
            commands::export::run_export(args, &run, &device::select(global.device)?)?;
        }
        Command::Bench(args) => {
            let run = RunDir::open(global.run_dir.as_deref(), "bench")?;
            commands::bench::run_bench(args, global, &run, &device::select(global.device)?)?;
        }
        Command::Demo(args) => {
            let run = RunDir::open(global.run_dir.as_deref(), "demo")?;
            commands::demo::run_demo(args, global, &run, &device::select(global.device)?)?;
        }
    }
    Ok(())
}
