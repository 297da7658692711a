use std::process::ExitCode;

use clap::Parser;

/// hyper allocates several times per request (an 8 KiB read buffer while the previous answer
/// still holds the old one, the dispatch's channel slots and callbacks); under callgrind,
/// mimalloc cut the user-space instructions per request by 7% against glibc's allocator
/// (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    trafficgen::main_with(trafficgen::Args::parse())
}
