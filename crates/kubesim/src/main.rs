use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = kubesim::Args::parse();
    args.log.init();
    meshbench_cli::exit("kubesim", kubesim::run(args))
}
