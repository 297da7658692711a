use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = top_parse::Args::parse();
    args.log.init();
    meshbench_cli::exit("top-parse", top_parse::run(args))
}
