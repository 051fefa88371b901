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
use clap::{CommandFactory, FromArgMatches};

use cli::{Cli, Command};
use run::RunDir;

fn main() -> ExitCode {
    keep_freed_memory();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    if let Err(message) = cli::refuse_settings_beside_config(&matches) {
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
    device::set_process_default(cli.global.device);
    match device::check_simd_request().and_then(|()| run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Asks glibc to keep the memory of freed tensors for the next ones instead of returning it to
/// the kernel. By default a block over 128 KiB (every activation at 224²) is its own `mmap`, and
/// the top of the heap is trimmed once 128 KiB lie free there: every layer of every pass then
/// faults its output's pages in again, one per 4 KiB, on both threads at once. Measured with
/// `kdlens bench --synthetic 224` (5 interleaved runs each, 2 threads): the student's Grad-CAM
/// took 21.5–28.6 ms with glibc's defaults and 17.1–19.8 ms with these settings, the page faults
/// of the whole bench fell from 596,000 to 116,000. The process keeps its peak memory until it
/// exits, which is what a command that runs one model many times wants. Other platforms'
/// allocators (and the page's) keep freed memory already.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// glibc's ceiling for the mmap threshold on 64-bit targets (half its 64 MiB arena heap).
        const LARGEST_HEAP_BLOCK: libc::c_int = 32 << 20;
        // SAFETY: `mallopt` only sets allocator parameters; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LARGEST_HEAP_BLOCK);
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
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
        Command::PoolAudits(args) => {
            let run = RunDir::open(global.run_dir.as_deref(), "pool-audits")?;
            commands::pool::run_pool(args, global, &run)?;
        }
        Command::Export(args) => {
            let run = RunDir::open(global.run_dir.as_deref(), "export")?;
            commands::export::run_export(args, global, &run, &device::select(global.device)?)?;
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
