//! The `lediflow` command-line tool: train models, sample from them, inspect model files and
//! look at training data. One module per subcommand, each thin over the library.

mod args;
mod bench;
mod eval;
mod generate;
mod inspect;
mod train;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOC: bench::CountingAlloc = bench::CountingAlloc;

#[derive(Parser)]
#[command(name = "lediflow", version, about = "LeDiFlow image generation: train, sample, inspect")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a LeDiFlow model (auxiliary, latent flow, image FM) or its Gaussian-prior baseline.
    Train(train::TrainArgs),
    /// Sample images from a model file into a PNG grid and/or individual PNGs.
    Sample(generate::SampleArgs),
    /// Frames between two images (encoded) or two seeds, as a PNG strip and/or individual PNGs.
    Interpolate(generate::InterpolateArgs),
    /// Fill a region of an image: the masked-out part is generated, the rest kept exactly.
    Inpaint(generate::InpaintArgs),
    /// New images like a given one: more or less of the image kept by --strength.
    Vary(generate::VaryArgs),
    /// Measure sample quality against the held-out split (SWD, KID, precision/recall, memorisation).
    Eval(eval::EvalArgs),
    /// Sampling speed and peak memory per batch size, FM forward GFLOP/s (a benchmark, not a test).
    Bench(bench::BenchArgs),
    /// Print a model file's metadata.
    Info(inspect::InfoArgs),
    /// Rewrite a model file, optionally with f16 tensors (half the size).
    Convert(inspect::ConvertArgs),
    /// Write a model file from a training run's latest checkpoint (its image flow's EMA weights at
    /// that step), to sample or evaluate a long run before it ends; the run may keep running.
    Export(inspect::ExportArgs),
    /// Load a data set the way `train` does and write a contact sheet of it.
    Data(inspect::DataSheetArgs),
}

/// Tells glibc's malloc to keep freed memory for reuse instead of returning it to the kernel.
///
/// Every tensor op allocates its output afresh, and the buffers of a training step (up to a few
/// MiB each) are above glibc's default mmap threshold or get trimmed off the heap top, so each
/// step mapped and zero-faulted the same pages again: 2.2 million page faults and ~18% of the
/// wall time in a 60-step FM run (measured with perf). Only the tool does this; the library never
/// changes its host's allocator settings. An explicit `MALLOC_*_` or `GLIBC_TUNABLES`
/// environment setting wins.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let user_set = std::env::vars_os().any(|(k, _)| {
            let k = k.to_string_lossy();
            k == "GLIBC_TUNABLES" || (k.starts_with("MALLOC_") && k.ends_with('_'))
        });
        if !user_set {
            // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
            unsafe {
                // 32 MiB is the largest mmap threshold glibc accepts on 64-bit targets.
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
                libc::mallopt(libc::M_TOP_PAD, 64 << 20);
            }
        }
    }
}

fn main() {
    // Rust ignores SIGPIPE, so `lediflow info ... | head` made println! panic once the reader
    // closed the pipe. A command-line tool should end quietly there, like other Unix tools.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    keep_freed_memory();
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Train(a) => train::train(a),
        Command::Sample(a) => generate::sample(a),
        Command::Interpolate(a) => generate::interpolate(a),
        Command::Inpaint(a) => generate::inpaint(a),
        Command::Vary(a) => generate::vary(a),
        Command::Eval(a) => eval::eval(a),
        Command::Bench(a) => bench::bench(a),
        Command::Info(a) => inspect::info(a),
        Command::Convert(a) => inspect::convert(a),
        Command::Export(a) => inspect::export(a),
        Command::Data(a) => inspect::data_sheet(a),
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
