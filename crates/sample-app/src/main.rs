use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = sample_app::cli::Args::parse();
    args.log.init();
    meshbench_cli::exit("sample-app", sample_app::cli::run(args))
}
