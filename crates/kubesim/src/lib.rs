//! kubesim: a simulated Kubernetes API server for tests, rehearsals and offline demos.
//!
//! It serves enough of the real API (discovery, OpenAPI v3, CRUD, server-side apply, watches,
//! tables, `metrics.k8s.io`) for kubectl and kube-rs to work against it, and simulates nodes,
//! controllers, scheduling, pod start-up, mesh injection and resource usage from a scenario file
//! (docs/kubesim.md).
//!
//! ```no_run
//! # async fn demo() -> Result<(), kubesim::Error> {
//! let scenario = kubesim::Scenario::load("fixtures/scenarios/tiny.yaml".as_ref())?;
//! let server = kubesim::Server::start(scenario, "127.0.0.1:0".parse().unwrap()).await?;
//! let client = server.client().await?;
//! # drop(client);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
pub mod apply;
mod discovery;
pub mod metrics;
pub mod resources;
pub mod scenario;
pub mod selector;
pub mod sim;
pub mod status;
pub mod store;
pub mod table;
mod tls;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use scenario::{Scenario, ScenarioError};
pub use sim::Cluster;

const EXAMPLES: &str = "Examples:
  # Serve the tiny scenario and point kubectl at it
  kubesim --scenario fixtures/scenarios/tiny.yaml --kubeconfig /tmp/kubesim.yaml &
  kubectl --kubeconfig /tmp/kubesim.yaml get nodes

  # Another repetition of the same cluster: other names, delays and noise
  kubesim --scenario fixtures/scenarios/article.yaml --seed 2 --kubeconfig /tmp/rep2.yaml &

  # Rehearse the pipeline offline: sample usage, then parse it
  kubectl --kubeconfig /tmp/kubesim.yaml top pods -A --containers | top-parse --run dry-1 -
  top-parse --from-cluster --kubeconfig /tmp/kubesim.yaml -A --containers --samples 3 --interval 15s";

/// Serve a simulated Kubernetes cluster on loopback.
#[derive(Debug, Parser)]
#[command(version, about, after_help = EXAMPLES)]
pub struct Args {
    /// The scenario: nodes, timings, usage models and initial objects (docs/kubesim.md).
    #[arg(long, value_name = "FILE")]
    pub scenario: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Where to write a kubeconfig for the server (context `kubesim`) once it listens; `-` for
    /// stdout (the address then goes to stderr).
    #[arg(long, value_name = "OUT")]
    pub kubeconfig: String,
    /// Zero the scenario's simulated delays: pods are Ready as soon as they are created.
    #[arg(long)]
    pub instant: bool,
    /// Seed instead of the scenario's: another repetition of the same cluster, with other
    /// names, delays and usage noise.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Requests per second through the workload instead of the scenario's `load.rps` (what
    /// per-1,000-req/s usage terms scale with).
    #[arg(long, value_name = "RPS", value_parser = rps_arg)]
    pub rps: Option<f64>,
    /// Serve HTTPS, as a real API server does, with a CA made at start-up whose certificate
    /// goes into the kubeconfig (certificate-authority-data).
    #[arg(long)]
    pub tls: bool,
    #[command(flatten)]
    pub log: meshbench_cli::LogArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("scenario: {0}")]
    Bootstrap(String),
    #[error("cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the kubeconfig {path}")]
    Kubeconfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build a client for the server")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot make the TLS identity: {0}")]
    Tls(String),
}

impl meshbench_cli::Failure for Error {}

/// A running kubesim: API server and simulator.
#[derive(Debug)]
pub struct Server {
    address: SocketAddr,
    /// The CA certificate (base64 PEM) when serving HTTPS.
    ca_data: Option<String>,
    cluster: Arc<Cluster>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Builds the cluster from the scenario and starts serving plain HTTP on `listen`.
    pub async fn start(scenario: Scenario, listen: SocketAddr) -> Result<Server, Error> {
        Server::start_with(scenario, listen, false).await
    }

    /// As `start`, serving HTTPS with a fresh CA (see [`Server::kubeconfig`]).
    pub async fn start_tls(scenario: Scenario, listen: SocketAddr) -> Result<Server, Error> {
        Server::start_with(scenario, listen, true).await
    }

    async fn start_with(
        scenario: Scenario,
        listen: SocketAddr,
        https: bool,
    ) -> Result<Server, Error> {
        let identity = if https {
            Some(tls::Identity::generate().map_err(Error::Tls)?)
        } else {
            None
        };
        let ca_data = identity.as_ref().map(tls::Identity::ca_data);
        let acceptor = identity.map(|i| i.acceptor);
        let cluster = Arc::new(Cluster::new(scenario).map_err(Error::Bootstrap)?);
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Listen {
                address: listen,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| Error::Listen {
            address: listen,
            source,
        })?;
        let (shutdown, stop) = watch::channel(false);
        let mut tasks = JoinSet::new();

        let simulator = sim::Simulator::new(Arc::clone(&cluster));
        let mut sim_stop = stop.clone();
        tasks.spawn(simulator.run(async move {
            let _ = sim_stop.changed().await;
        }));

        let ctx = api::Context {
            cluster: Arc::clone(&cluster),
            address: address.to_string(),
            shutdown: stop.clone(),
        };
        let mut accept_stop = stop;
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    _ = accept_stop.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        // As Go's net/http (the API server's): small watch events go out at
                        // once rather than waiting out Nagle against a delayed ACK (~40 ms).
                        let _ = stream.set_nodelay(true);
                        let ctx = ctx.clone();
                        let acceptor = acceptor.clone();
                        connections.spawn(async move {
                            match acceptor {
                                None => serve(ctx, stream).await,
                                Some(acceptor) => match acceptor.accept(stream).await {
                                    Ok(tls) => serve(ctx, tls).await,
                                    Err(e) => tracing::debug!("TLS handshake: {e}"),
                                },
                            }
                        });
                    }
                }
            }
            connections.shutdown().await;
        });
        tracing::info!("kubesim serving on http://{address}");
        Ok(Server {
            address,
            ca_data,
            cluster,
            shutdown,
            tasks,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:PORT`, or `https://` with `start_tls`.
    pub fn url(&self) -> String {
        let scheme = if self.ca_data.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.address)
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// A kubeconfig with one cluster, user and context, all named `kubesim`.
    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.url(), self.ca_data.as_deref())
    }

    /// A kube-rs client for the server, built from its kubeconfig as a user's would be.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig())
            .map_err(|e| Error::Client(Box::new(e)))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| Error::Client(Box::new(e)))?;
        kube::Client::try_from(config).map_err(|e| Error::Client(Box::new(e)))
    }

    /// Stops accepting, ends watches and connections, stops the simulator.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Serves the API on one connection (plain or TLS) until it closes or the server stops.
async fn serve<S>(ctx: api::Context, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut stop = ctx.shutdown.clone();
    let service = service_fn(move |req| api::handle(ctx.clone(), req));
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("connection: {e}");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn).await;
        }
    }
}

/// A kubeconfig for a server URL (cluster, user and context named `kubesim`), with the CA
/// certificate (base64 PEM) for an HTTPS server.
pub fn kubeconfig(url: &str, ca_data: Option<&str>) -> String {
    let ca = ca_data.map_or_else(String::new, |d| {
        format!("    certificate-authority-data: {d}\n")
    });
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kubesim
  cluster:
{ca}    server: {url}
users:
- name: kubesim
  user:
    token: kubesim
contexts:
- name: kubesim
  context:
    cluster: kubesim
    user: kubesim
    namespace: default
current-context: kubesim
preferences: {{}}
"
    )
}

fn rps_arg(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r >= 0.0)
        .ok_or_else(|| format!("{text:?}: expected requests per second, 0 or more"))
}

/// The command: serve until SIGINT or SIGTERM.
pub fn run(args: Args) -> Result<(), Error> {
    let mut scenario = Scenario::load(&args.scenario)?;
    if args.instant {
        scenario.timing = scenario::Timing::default();
    }
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if let Some(rps) = args.rps {
        scenario.load.rps = rps;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async move {
        let server = Server::start_with(scenario, args.listen, args.tls).await?;
        let write = |out: &mut meshbench_cli::Output| out.write_all(server.kubeconfig().as_bytes());
        let mut out = meshbench_cli::Output::create(&args.kubeconfig).map_err(|source| {
            Error::Kubeconfig {
                path: args.kubeconfig.clone(),
                source,
            }
        })?;
        write(&mut out)
            .and_then(|()| out.commit())
            .map_err(|source| Error::Kubeconfig {
                path: args.kubeconfig.clone(),
                source,
            })?;
        let line = format!("{}\n", server.url());
        if args.kubeconfig == "-" {
            let _ = std::io::stderr().write_all(line.as_bytes());
        } else {
            let mut stdout = std::io::stdout();
            let _ = stdout
                .write_all(line.as_bytes())
                .and_then(|()| stdout.flush());
        }
        wait_for_signal().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, serve until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
