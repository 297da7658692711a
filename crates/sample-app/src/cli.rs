//! The `sample-app` command: serve until SIGINT or SIGTERM.

use std::net::SocketAddr;

use meshbench_cli::{Failure, LogArgs};

use crate::{Config, Delay, Server};

const EXAMPLES: &str = "\
Examples:
  # A target for trafficgen on loopback, 2 ms of added latency per request
  sample-app --listen 127.0.0.1:8080 --delay 2ms &
  trafficgen -r 2000 -d 10s http://127.0.0.1:8080/

  # Long-tailed latency, and a 1 s stall 5 s into a run (coordinated omission made visible)
  sample-app --listen 127.0.0.1:8080 --delay exp:1ms &
  (sleep 5; curl -s 'http://127.0.0.1:8080/__stall?ms=1000') &
  trafficgen -r 2000 -d 10s http://127.0.0.1:8080/";

/// A small HTTP server to point trafficgen at: fixed-size answers after a configurable delay,
/// and a stall switch (GET /__stall?ms=N stalls every request for N ms).
#[derive(Debug, clap::Parser)]
#[command(name = "sample-app", version, after_long_help = EXAMPLES)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Body size of every answer, in bytes (at most 1 GiB: the body is built once, in memory).
    #[arg(long, default_value_t = 612, value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    pub response_size: u64,

    /// Added latency: 0, a duration (2ms), uniform:LOW-HIGH or exp:MEAN.
    #[arg(long, default_value = "0")]
    pub delay: Delay,

    /// Seed for random delays.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Close each HTTP/1 connection after N answers, the last saying `Connection: close`, as
    /// nginx does (its keepalive_requests, 1000 by default). Default: never.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keepalive_requests: Option<u64>,

    /// Worker threads (default: the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Failure for Error {}

pub fn run(args: Args) -> Result<(), Error> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        runtime.worker_threads(usize::from(n));
    }
    let runtime = runtime.enable_all().build().map_err(Error::Runtime)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |p: &std::path::Path| {
                std::fs::read(p).map_err(|e| Error::Tls(format!("{}: {e}", p.display())))
            };
            Some(crate::tls_config(&read(cert)?, &read(key)?).map_err(Error::Tls)?)
        }
        _ => None,
    };
    runtime.block_on(async {
        let config = Config {
            response_size: usize::try_from(args.response_size).unwrap_or(usize::MAX),
            delay: args.delay,
            seed: args.seed,
            tls,
            keepalive_requests: args.keepalive_requests,
        };
        let server = Server::start(args.listen, config)
            .await
            .map_err(|source| Error::Listen {
                addr: args.listen,
                source,
            })?;
        println!("listening on {}", server.addr());
        wait_for_signal().await;
        tracing::info!("stopping after {} requests", server.requests());
        server.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn a_body_too_large_to_build_is_a_usage_error_not_an_abort() {
        let parse = |size: &str| Args::try_parse_from(["sample-app", "--response-size", size]);
        assert_eq!(parse("1073741824").unwrap().response_size, 1 << 30);
        let e = parse("100000000000").unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(e.to_string().contains("not in 0..=1073741824"), "{e}");
    }
}
