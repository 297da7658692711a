//! sample-app: the HTTP target of meshbench's tests, benchmarks and offline demo.
//!
//! Every request is answered `200` with a body of the configured size, after the configured added
//! latency (none, fixed, uniform or exponential, seeded). Two paths are special:
//!
//! - `/__stall?ms=N` stalls the whole server for N milliseconds from now: requests being served
//!   or arriving meanwhile are answered only when it ends, as a server in a GC pause or a
//!   rescheduled pod would. The stall request itself is answered at once. This is how the
//!   coordinated-omission tests make a stall happen at a known moment; [`Server::stall`] does the
//!   same from a test.
//! - `/status/NNN` answers with status NNN (for error-classification tests).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::{Rng, SeedableRng};

pub mod cli;
use rand_distr::{Distribution, Exp};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Added latency per request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delay {
    None,
    Fixed(Duration),
    /// Uniform between the two bounds.
    Uniform(Duration, Duration),
    /// Exponential with this mean.
    Exponential(Duration),
}

impl std::str::FromStr for Delay {
    type Err = String;

    /// `0`, `2ms`, `uniform:1ms-5ms`, `exp:2ms`.
    fn from_str(s: &str) -> Result<Delay, String> {
        let duration = |t: &str| {
            parse_duration(t)
                .ok_or_else(|| format!("{t:?} is not a duration such as 2ms, 150us or 1s"))
        };
        if let Some(range) = s.strip_prefix("uniform:") {
            let (low, high) = range
                .split_once('-')
                .ok_or_else(|| format!("{s:?}: expected uniform:LOW-HIGH, e.g. uniform:1ms-5ms"))?;
            let (low, high) = (duration(low)?, duration(high)?);
            if low > high {
                return Err(format!("{s:?}: the lower bound is above the upper"));
            }
            return Ok(Delay::Uniform(low, high));
        }
        if let Some(mean) = s.strip_prefix("exp:") {
            return Ok(Delay::Exponential(duration(mean)?));
        }
        let d = duration(s)?;
        Ok(if d.is_zero() {
            Delay::None
        } else {
            Delay::Fixed(d)
        })
    }
}

use meshbench_cli::parse_duration;

/// How the server answers.
#[derive(Debug, Clone)]
pub struct Config {
    pub response_size: usize,
    pub delay: Delay,
    pub seed: u64,
    /// Serve HTTPS (HTTP/2 or HTTP/1.1 by ALPN) instead of plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Close an HTTP/1 connection after this many answers, the last one saying
    /// `Connection: close`, as nginx's `keepalive_requests` does (1000 by default there).
    /// `None`: keep it open.
    pub keepalive_requests: Option<u64>,
}

/// A TLS configuration from PEM files' contents: the certificate chain and its private key.
pub fn tls_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = rustls_pemfile::certs(&mut &*cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate: not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("certificate: no CERTIFICATE block".to_owned());
    }
    let key = rustls_pemfile::private_key(&mut &*key_pem)
        .map_err(|e| format!("key: not PEM: {e}"))?
        .ok_or_else(|| "key: no PRIVATE KEY block".to_owned())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Default for Config {
    fn default() -> Config {
        Config {
            response_size: 612, // nginx's default page, the seed's target
            delay: Delay::None,
            seed: 1,
            tls: None,
            keepalive_requests: None,
        }
    }
}

/// The shared state of a running server.
#[derive(Debug)]
struct State {
    config: Config,
    body: Bytes,
    epoch: Instant,
    /// Nanoseconds after `epoch` until which the server stalls.
    stalled_until: AtomicU64,
    requests: AtomicU64,
}

impl State {
    fn stall(&self, length: Duration) {
        let until = self.epoch.elapsed() + length;
        let nanos = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
        self.stalled_until.fetch_max(nanos, Ordering::SeqCst);
    }

    async fn wait_out_stall(&self) {
        let until = Duration::from_nanos(self.stalled_until.load(Ordering::SeqCst));
        let now = self.epoch.elapsed();
        if until > now {
            meshbench_timer::sleep_until(self.epoch + until).await;
        }
    }

    fn delay(&self, rng: &mut rand::rngs::StdRng) -> Duration {
        match self.config.delay {
            Delay::None => Duration::ZERO,
            Delay::Fixed(d) => d,
            Delay::Uniform(low, high) => {
                Duration::from_secs_f64(rng.random_range(low.as_secs_f64()..=high.as_secs_f64()))
            }
            Delay::Exponential(mean) => match Exp::new(1.0 / mean.as_secs_f64().max(1e-9)) {
                Ok(exp) => Duration::try_from_secs_f64(exp.sample(rng)).unwrap_or(Duration::ZERO),
                Err(_) => Duration::ZERO,
            },
        }
    }

    async fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        // Each request draws from its own generator, seeded from the configured seed and its
        // arrival number: reproducible for a given order of arrival, and nothing shared to lock.
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let mut rng = rand::rngs::StdRng::seed_from_u64(
            self.config.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let path = req.uri().path();
        if path == "/__stall" {
            let ms = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
                .and_then(|v| v.parse::<u64>().ok());
            return match ms {
                Some(ms) => {
                    self.stall(Duration::from_millis(ms));
                    text(StatusCode::OK, format!("stalled for {ms} ms\n"))
                }
                None => text(
                    StatusCode::BAD_REQUEST,
                    "expected /__stall?ms=N\n".to_owned(),
                ),
            };
        }
        let delay = self.delay(&mut rng);
        if !delay.is_zero() {
            // Not tokio's sleep, which rounds up to its next 1 ms tick: a 1 ms delay would
            // last 1.5 ms on average, and `exp:1ms` would average over 2 ms.
            meshbench_timer::sleep(delay).await;
        }
        self.wait_out_stall().await;
        if let Some(code) = path.strip_prefix("/status/") {
            return match code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
            {
                Some(status) => text(status, format!("{status}\n")),
                None => text(StatusCode::BAD_REQUEST, "expected /status/NNN\n".to_owned()),
            };
        }
        Response::new(Full::new(self.body.clone()))
    }
}

/// Serves one connection, HTTP/1.1 or HTTP/2, until it closes or the server stops.
async fn serve<I>(io: I, state: Arc<State>, mut stopped: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let answered = Arc::new(AtomicU64::new(0));
    let service = service_fn(move |req: Request<Incoming>| {
        let state = Arc::clone(&state);
        let answered = Arc::clone(&answered);
        async move {
            let mut response = state.answer(&req).await;
            let n = answered.fetch_add(1, Ordering::Relaxed) + 1;
            if req.version() <= Version::HTTP_11
                && state.config.keepalive_requests.is_some_and(|max| n >= max)
            {
                // hyper closes the connection after an answer that says so.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(response)
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(io, service);
    tokio::select! {
        result = conn => if let Err(e) = result {
            tracing::debug!("connection: {e}");
        },
        _ = stopped.changed() => {}
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// A running sample-app, serving on the Tokio runtime it was started on.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `addr` (port 0 for any free port) and starts serving HTTP/1.1 and h2c.
    pub async fn start(addr: SocketAddr, config: Config) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let tls = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let state = Arc::new(State {
            body: Bytes::from(vec![b'x'; config.response_size]),
            config,
            epoch: Instant::now(),
            stalled_until: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        });
        let (shutdown, mut stopped) = watch::channel(false);
        let accept_state = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(conn) => conn,
                        Err(e) => {
                            tracing::warn!("accept: {e}");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                    _ = stopped.changed() => break,
                };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&accept_state);
                let stopped = stopped.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(TokioIo::new(stream), state, stopped).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => serve(TokioIo::new(stream), state, stopped).await,
                            Err(e) => tracing::debug!("TLS handshake: {e}"),
                        },
                    }
                });
            }
        });
        Ok(Server {
            addr,
            state,
            shutdown,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/`
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stalls every request for `length` from now.
    pub fn stall(&self, length: Duration) {
        self.state.stall(length);
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.accept.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts a server with `config` on a loopback port, connects to it, runs `test` on the
    /// connection, and shuts the server down.
    fn with_connection<F, Fut>(config: Config, test: F)
    where
        F: FnOnce(tokio::net::TcpStream) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let server = Server::start("127.0.0.1:0".parse().unwrap(), config)
                .await
                .unwrap();
            let stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
            test(stream).await;
            server.shutdown().await;
        });
    }

    #[test]
    fn added_delays_are_the_configured_ones_not_rounded_up_to_a_timer_tick() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let config = Config {
            response_size: 0,
            delay: Delay::Exponential(Duration::from_millis(1)),
            ..Config::default()
        };
        with_connection(config, |mut stream| async move {
            stream.set_nodelay(true).unwrap();
            let n = 200u32;
            let mut total = Duration::ZERO;
            let mut buf = Vec::new();
            for _ in 0..n {
                let start = Instant::now();
                stream
                    .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await
                    .unwrap();
                // An empty body: the answer ends with its headers.
                buf.clear();
                while !buf.ends_with(b"\r\n\r\n") {
                    let mut chunk = [0u8; 512];
                    let read = stream.read(&mut chunk).await.unwrap();
                    assert!(read > 0, "the server closed the connection");
                    buf.extend_from_slice(&chunk[..read]);
                }
                total += start.elapsed();
            }
            // The mean of 200 draws of exp:1ms is 1 ms within ±15% (two standard errors);
            // loopback adds a few tens of µs. tokio's sleep, rounding each draw up to its next
            // 1 ms tick, made it 2.0-2.6 ms.
            let mean = total / n;
            assert!(
                (Duration::from_micros(700)..Duration::from_micros(1500)).contains(&mean),
                "mean answer time {mean:?}"
            );
        });
    }

    #[test]
    fn delays_parse() {
        assert_eq!("0".parse::<Delay>(), Ok(Delay::None));
        assert_eq!(
            "2ms".parse::<Delay>(),
            Ok(Delay::Fixed(Duration::from_millis(2)))
        );
        assert_eq!(
            "uniform:1ms-5ms".parse::<Delay>(),
            Ok(Delay::Uniform(
                Duration::from_millis(1),
                Duration::from_millis(5)
            ))
        );
        assert_eq!(
            "exp:150us".parse::<Delay>(),
            Ok(Delay::Exponential(Duration::from_micros(150)))
        );
        assert!("uniform:5ms-1ms".parse::<Delay>().is_err());
        assert!("soon".parse::<Delay>().is_err());
        assert!("-1s".parse::<Delay>().is_err());
    }

    #[test]
    fn a_connection_closes_after_keepalive_requests_answers() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let config = Config {
            keepalive_requests: Some(2),
            ..Config::default()
        };
        with_connection(config, |mut stream| async move {
            // Three requests in one write: the second answer closes the connection.
            let request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3);
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answers = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answers))
                .await
                .expect("the server closes the connection")
                .unwrap();
            let answers = String::from_utf8_lossy(&answers).to_ascii_lowercase();
            assert_eq!(answers.matches("http/1.1 200 ok").count(), 2, "{answers}");
            assert_eq!(answers.matches("connection: close").count(), 1, "{answers}");
            let second = answers.rfind("http/1.1 200").unwrap();
            assert!(answers[second..].contains("connection: close"), "{answers}");
        });
    }
}
