use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    trafficgen::main_with(trafficgen::Args::parse())
}
