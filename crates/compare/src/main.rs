use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    compare::main_with(compare::Args::parse())
}
