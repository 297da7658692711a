//! What to send, how often and for how long: the arguments, checked once, before any load.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, HeaderName, HeaderValue, USER_AGENT};
use http::{HeaderMap, Method, Uri};
use meshbench_formats::trafficgen::Mode;

use crate::Error;

/// The highest `-r`, in requests per second.
const MAX_RATE: f64 = 10_000_000.0;

/// The seed's defaults: its target, 300 s, 50 workers.
pub const DEFAULT_URL: &str = "http://nginx-1.sample-app.svc.cluster.local";
pub const DEFAULT_SECONDS: u64 = 300;
pub const DEFAULT_CONNECTIONS: u32 = 50;

/// How intended send times are spaced in open-loop mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrival {
    /// Evenly spaced, as wrk2 does.
    Uniform,
    /// A Poisson process per connection (exponential gaps), seeded with --seed.
    Poisson,
}

impl From<Arrival> for meshbench_formats::trafficgen::Arrival {
    fn from(a: Arrival) -> Self {
        match a {
            Arrival::Uniform => Self::Uniform,
            Arrival::Poisson => Self::Poisson,
        }
    }
}

/// Which HTTP/1.1 client sends the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum H1Client {
    /// trafficgen's own, made for load: the request's bytes made once, the answer read in place
    Lean,
    /// hyper's client
    Hyper,
}

/// Load flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// How long to measure: 300, 30s, 5m (after --warmup).
    #[arg(short, long, value_name = "DURATION")]
    pub duration: Option<String>,

    /// Connections (each carries one request at a time).
    #[arg(short, long, value_name = "N")]
    pub connections: Option<u32>,

    /// Total requests per second, open loop (0.001 to 10,000,000); without it, a closed loop
    /// at full speed.
    #[arg(short, long, value_name = "RPS")]
    pub rate: Option<f64>,

    /// Stop after this many measured requests.
    #[arg(short = 'n', long, value_name = "N")]
    pub requests: Option<u64>,

    /// Send for this long first without recording.
    #[arg(long, value_name = "DURATION", default_value = "0")]
    pub warmup: String,

    /// Per-request timeout; a timed-out request is recorded at this latency and flagged.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub timeout: String,

    /// HTTP method.
    #[arg(short, long, default_value = "GET")]
    pub method: String,

    /// A request header, "Name: value" (repeatable). As with curl, it replaces a default of the
    /// same name (User-Agent); "Name:" removes the header, "Name;" sends it empty.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,

    /// Request body.
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,

    /// Request body from a file.
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,

    /// HTTP/2: negotiated by ALPN over TLS, prior knowledge (h2c) over plain TCP.
    #[arg(long)]
    pub http2: bool,

    /// The HTTP/1.1 client. Both frame answers alike; a request with a Transfer-Encoding
    /// header, or CONNECT, always goes through hyper, and so does HTTP/2.
    #[arg(long, value_enum, value_name = "CLIENT", default_value_t = H1Client::Lean)]
    pub h1_client: H1Client,

    /// Threads sending load (default: the number of cores; never more than connections).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,

    /// Seed of the Poisson arrivals (default: a fresh one each run, so that generators started
    /// together are independent). The summary records it (`seed`); pass it again to repeat a
    /// run's arrivals exactly.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Spacing of intended send times in open-loop mode.
    #[arg(long, value_enum, default_value_t = Arrival::Uniform)]
    pub arrival: Arrival,

    /// Do not verify TLS certificates (says so on stderr).
    #[arg(long, short = 'k')]
    pub insecure: bool,

    /// Trust this CA certificate (PEM) as well as the system's (repeatable).
    #[arg(long, value_name = "FILE")]
    pub cacert: Vec<PathBuf>,

    /// The client counts as saturated when its own scheduling lag (p99 over requests whose
    /// connection was free when they were due) exceeds this.
    #[arg(long, value_name = "DURATION", default_value = "1ms")]
    pub lag_threshold: String,
}

/// A checked plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub https: bool,
    /// Origin-form URI for HTTP/1.1 (`/path?query`).
    pub path_uri: Uri,
    /// Absolute URI for HTTP/2.
    pub full_uri: Uri,
    pub method: Method,
    /// Headers of every request (Host included for HTTP/1.1).
    pub headers: HeaderMap,
    pub body: Bytes,
    pub mode: Mode,
    pub rate: Option<f64>,
    pub arrival: Arrival,
    /// Measured duration; `None` with -n only.
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub warmup: Duration,
    pub timeout: Duration,
    pub connections: u32,
    pub threads: usize,
    pub http2: bool,
    pub seed: u64,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub lag_threshold: Duration,
    /// The request as the lean HTTP/1.1 client sends it; `None` where hyper sends it.
    pub lean: Option<Arc<crate::h1::Request>>,
}

/// The largest request body: it is held in memory, and shared by every request.
const MAX_BODY: u64 = 1 << 30;

/// Reads a `--body-file`, refusing one over [`MAX_BODY`] (or endless, as `/dev/zero` is) with a
/// message rather than running out of memory.
fn read_body(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    use std::io::Read as _;
    let read_err = |source| Error::Read {
        path: path.display().to_string(),
        source,
    };
    let too_large = || {
        Error::Usage(format!(
            "--body-file {}: over {MAX_BODY} bytes (1 GiB), the most a request body may be",
            path.display()
        ))
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    // A regular file says its size; a pipe or device is read up to the limit.
    if file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() > MAX_BODY)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    file.take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .map_err(read_err)?;
    if body.len() as u64 > MAX_BODY {
        return Err(too_large());
    }
    Ok(body)
}

/// `300` (seconds), `30s`, `5m`, `250ms`, `1.5s`; at most about 30 years.
pub fn parse_duration(flag: &str, text: &str) -> Result<Duration, Error> {
    meshbench_cli::parse_duration(text)
        .filter(|d| d.as_secs() < 1_000_000_000)
        .ok_or_else(|| {
            Error::Usage(format!(
                "{flag}: {text:?} is not a duration such as 300, 30s, 5m or 250ms"
            ))
        })
}

impl Plan {
    /// Checks the arguments: the original's positional form, then the flags, which win.
    pub fn from_args(
        url: Option<&str>,
        seconds: Option<&str>,
        concurrency: Option<u32>,
        load: &LoadArgs,
    ) -> Result<Plan, Error> {
        let url = url.unwrap_or(DEFAULT_URL);
        let uri: Uri = url.parse().map_err(|e: http::uri::InvalidUri| Error::Url {
            url: url.to_owned(),
            problem: e.to_string(),
        })?;
        let bad_url = |problem: &str| Error::Url {
            url: url.to_owned(),
            problem: problem.to_owned(),
        };
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(bad_url(&format!("scheme {other:?} is not http or https"))),
            None => return Err(bad_url("no scheme: write http://host/ or https://host/")),
        };
        let authority = uri.authority().ok_or_else(|| bad_url("no host"))?.clone();
        if authority.as_str().contains('@') {
            return Err(bad_url(
                "credentials in the URL are not supported; use -H Authorization",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path_and_query = uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        let path_uri: Uri = path_and_query.parse().map_err(|_| bad_url("bad path"))?;

        let method = Method::from_bytes(load.method.as_bytes())
            .map_err(|_| Error::Usage(format!("-m: {:?} is not an HTTP method", load.method)))?;
        let body = match (&load.body, &load.body_file) {
            (Some(text), _) => Bytes::from(text.clone()),
            (None, Some(path)) => Bytes::from(read_body(path)?),
            (None, None) => Bytes::new(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("meshbench-trafficgen/", env!("CARGO_PKG_VERSION"))),
        );
        // curl's conventions: `Name: value` replaces a default of that name, `Name:` removes
        // the header, `Name;` sends it empty.
        let mut given = Vec::new();
        for header in &load.headers {
            let bad = |problem: &str| Error::Header {
                header: header.clone(),
                problem: problem.to_owned(),
            };
            // `None`: remove the header.
            let (name, value) = match (header.split_once(':'), header.strip_suffix(';')) {
                (Some((name, value)), _) => (name, Some(value.trim()).filter(|v| !v.is_empty())),
                (None, Some(name)) => (name, Some("")),
                (None, None) => return Err(bad("no colon")),
            };
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| bad("invalid header name"))?;
            if !given.contains(&name) {
                headers.remove(&name);
                given.push(name.clone());
            }
            match value {
                Some(value) => {
                    let value =
                        HeaderValue::from_str(value).map_err(|_| bad("invalid header value"))?;
                    headers.append(name, value);
                }
                None if name == HOST => {
                    return Err(bad(
                        "HTTP/1.1 requires a Host header; give it a value instead",
                    ));
                }
                None => {}
            }
        }
        if !headers.contains_key(HOST) {
            let value =
                HeaderValue::from_str(authority.as_str()).map_err(|_| bad_url("bad host"))?;
            headers.insert(HOST, value);
        }
        if !body.is_empty() {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        // HTTP/2 has no Host header: its `:authority` comes from this URI, so a Host given
        // with -H goes there, as curl does (a virtual host behind an ingress's address, say).
        // (HTTP/1.1 sends any Host as given: a test may want the server to refuse it.)
        let h2_authority = match headers.get(HOST) {
            Some(host) if load.http2 && host.as_bytes() != authority.as_str().as_bytes() => host
                .to_str()
                .ok()
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
                .ok_or_else(|| Error::Header {
                    header: format!("Host: {}", String::from_utf8_lossy(host.as_bytes())),
                    problem: "not a host[:port], which HTTP/2's :authority needs".to_owned(),
                })?,
            _ => authority.clone(),
        };
        let full_uri = Uri::builder()
            .scheme(if https { "https" } else { "http" })
            .authority(h2_authority)
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| bad_url(&e.to_string()))?;

        let duration = match (&load.duration, seconds) {
            (Some(d), _) => Some(parse_duration("-d", d)?),
            (None, Some(s)) => Some(parse_duration("SECONDS", s)?),
            (None, None) if load.requests.is_some() => None,
            (None, None) => Some(Duration::from_secs(DEFAULT_SECONDS)),
        };
        if duration.is_some_and(|d| d.is_zero()) {
            return Err(Error::Usage("the duration must be above zero".to_owned()));
        }
        if load.requests == Some(0) {
            return Err(Error::Usage("-n must be at least 1".to_owned()));
        }
        let connections = load
            .connections
            .or(concurrency)
            .unwrap_or(DEFAULT_CONNECTIONS);
        if connections == 0 {
            return Err(Error::Usage("at least one connection is needed".to_owned()));
        }
        let rate = match load.rate {
            Some(r) if !r.is_finite() || r <= 0.0 => {
                return Err(Error::Usage(format!("-r: {r} is not a positive rate")));
            }
            Some(r) if r < 0.001 => {
                return Err(Error::Usage(format!(
                    "-r: {r} is below the lowest rate, 0.001 requests per second"
                )));
            }
            // Far past what one generator sends (~100,000/s a core), and below where a
            // connection's gap between requests rounds to nothing: a schedule that never moves
            // on would never end.
            Some(r) if r > MAX_RATE => {
                return Err(Error::Usage(format!(
                    "-r: {r} is above the highest rate, 10,000,000 requests per second: run \
                     several generators and merge their summaries"
                )));
            }
            other => other,
        };
        if rate.is_none() && load.arrival == Arrival::Poisson {
            // A closed loop has no schedule to space: refused rather than run as if uniform.
            return Err(Error::Usage(
                "--arrival poisson spaces an open loop's schedule: give its rate with -r"
                    .to_owned(),
            ));
        }
        let timeout = parse_duration("--timeout", &load.timeout)?;
        if timeout < Duration::from_millis(1) {
            return Err(Error::Usage(format!(
                "--timeout {}: below 1ms, the resolution of the timer that enforces it",
                load.timeout
            )));
        }
        let threads = load
            .threads
            .map(usize::from)
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            })
            .clamp(1, connections as usize);
        if load.insecure && https {
            tracing::warn!("--insecure: TLS certificates are NOT verified");
        }
        let tls = if https {
            Some(crate::tls::client_config(
                &load.cacert,
                load.insecure,
                load.http2,
            )?)
        } else {
            None
        };
        let lean = (load.h1_client == H1Client::Lean
            && !load.http2
            && crate::h1::can_send(&method, &headers))
        .then(|| Arc::new(crate::h1::Request::new(&method, &path_uri, &headers, &body)));
        Ok(Plan {
            lean,
            url: url.to_owned(),
            host,
            port,
            https,
            path_uri,
            full_uri,
            method,
            headers,
            body,
            mode: if rate.is_some() {
                Mode::Open
            } else {
                Mode::Closed
            },
            rate,
            arrival: load.arrival,
            duration,
            requests: load.requests,
            warmup: parse_duration("--warmup", &load.warmup)?,
            timeout,
            connections,
            threads,
            http2: load.http2,
            seed: load.seed.unwrap_or_else(rand::random),
            tls,
            lag_threshold: parse_duration("--lag-threshold", &load.lag_threshold)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        load: LoadArgs,
    }

    fn load(args: &[&str]) -> LoadArgs {
        let mut all = vec!["x"];
        all.extend_from_slice(args);
        Wrap::parse_from(all).load
    }

    #[test]
    fn the_originals_defaults() {
        let plan = Plan::from_args(None, None, None, &load(&[])).unwrap();
        assert_eq!(plan.url, DEFAULT_URL);
        assert_eq!(plan.duration, Some(Duration::from_secs(300)));
        assert_eq!(plan.connections, 50);
        assert_eq!(plan.mode, Mode::Closed);
        assert_eq!(plan.port, 80);
        assert_eq!(plan.path_uri, "/");
        assert_eq!(plan.headers[HOST], "nginx-1.sample-app.svc.cluster.local");
    }

    #[test]
    fn positional_form_and_flags() {
        let plan = Plan::from_args(
            Some("http://127.0.0.1:8080/x?y=1"),
            Some("30"),
            Some(8),
            &load(&[]),
        )
        .unwrap();
        assert_eq!(plan.duration, Some(Duration::from_secs(30)));
        assert_eq!(plan.connections, 8);
        assert_eq!(plan.path_uri, "/x?y=1");
        assert_eq!(plan.full_uri, "http://127.0.0.1:8080/x?y=1");
        // Flags win over positions.
        let plan = Plan::from_args(
            Some("http://h/"),
            Some("30"),
            Some(8),
            &load(&["-d", "5m", "-c", "3", "-r", "100"]),
        )
        .unwrap();
        assert_eq!(plan.duration, Some(Duration::from_secs(300)));
        assert_eq!(plan.connections, 3);
        assert_eq!(plan.mode, Mode::Open);
        // -n alone: no time limit.
        let plan = Plan::from_args(Some("http://h/"), None, None, &load(&["-n", "10"])).unwrap();
        assert_eq!(plan.duration, None);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for (url, args) in [
            ("ftp://h/", &[][..]),
            ("h:80", &[][..]),
            ("http://h/", &["-d", "soon"][..]),
            ("http://h/", &["-d", "0"][..]),
            ("http://h/", &["-r", "0"][..]),
            ("http://h/", &["-r", "NaN"][..]),
            ("http://h/", &["-r", "1e-300"][..]),
            ("http://h/", &["-c", "0"][..]),
            ("http://h/", &["--timeout", "0"][..]),
            ("http://h/", &["--timeout", "500us"][..]),
            ("http://h/", &["-H", "no colon"][..]),
            ("http://h/", &["-H", "Bad Name: x"][..]),
            ("http://h/", &["-m", "GE T"][..]),
            ("http://h/", &["--body-file", "/does/not/exist"][..]),
            ("http://h/", &["--arrival", "poisson"][..]),
        ] {
            assert!(
                Plan::from_args(Some(url), None, None, &load(args)).is_err(),
                "{url} {args:?}"
            );
        }
    }

    #[test]
    fn zero_threads_is_refused_by_the_parser() {
        assert!(Wrap::try_parse_from(["x", "--threads", "0"]).is_err());
        assert!(Wrap::try_parse_from(["x", "--threads", "3"]).is_ok());
    }

    #[test]
    fn headers_and_body() {
        let plan = Plan::from_args(
            Some("http://h:9/"),
            None,
            None,
            &load(&[
                "-m",
                "POST",
                "--body",
                "hello",
                "-H",
                "X-A: 1",
                "-H",
                "X-A: 2",
                "-H",
                "Host: other",
            ]),
        )
        .unwrap();
        assert_eq!(plan.method, Method::POST);
        assert_eq!(plan.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(plan.headers[HOST], "other");
        assert_eq!(plan.headers[CONTENT_LENGTH], "5");
        // HTTP/1.1 sends that Host header; HTTP/2 carries it as its :authority.
        assert_eq!(plan.full_uri, "http://h:9/");
        let h2 = |host: &str| {
            Plan::from_args(
                Some("http://h:9/"),
                None,
                None,
                &load(&["--http2", "-H", &format!("Host: {host}")]),
            )
        };
        assert_eq!(h2("other:8443").unwrap().full_uri, "http://other:8443/");
        assert!(h2("bad host").is_err());
        // HTTP/1.1 takes any value, as a test of the server may need.
        let args = load(&["-H", "Host: bad host"]);
        assert!(Plan::from_args(Some("http://h:9/"), None, None, &args).is_ok());
    }

    #[test]
    fn a_body_file_is_read_whole_up_to_1_gib() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"{\"a\": 1}").unwrap();
        let args = load(&["-m", "POST", "--body-file", small.to_str().unwrap()]);
        let plan = Plan::from_args(Some("http://h:9/"), None, None, &args).unwrap();
        assert_eq!(&plan.body[..], b"{\"a\": 1}");
        // A sparse file just over the limit: refused at once, without reading it.
        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_BODY + 1)
            .unwrap();
        let args = load(&["--body-file", big.to_str().unwrap()]);
        let e = Plan::from_args(Some("http://h:9/"), None, None, &args).unwrap_err();
        assert!(
            e.to_string().contains("over 1073741824 bytes (1 GiB)"),
            "{e}"
        );
    }

    #[test]
    fn given_headers_replace_defaults_as_curl_does() {
        let plan = |headers: &[&str]| {
            let mut args = Vec::new();
            for h in headers {
                args.extend(["-H", h]);
            }
            Plan::from_args(Some("http://h:9/"), None, None, &load(&args))
        };
        let default = plan(&[]).unwrap();
        assert!(
            default.headers[USER_AGENT]
                .to_str()
                .unwrap()
                .starts_with("meshbench-trafficgen/")
        );
        let given = plan(&["User-Agent: probe/1", "X-B: 1", "x-b: 2"]).unwrap();
        assert_eq!(
            given.headers.get_all(USER_AGENT).iter().collect::<Vec<_>>(),
            ["probe/1"]
        );
        assert_eq!(given.headers.get_all("x-b").iter().count(), 2);
        // `Name:` removes (wrk sends no User-Agent), `Name;` sends it empty.
        let removed = plan(&["User-Agent:"]).unwrap();
        assert!(!removed.headers.contains_key(USER_AGENT));
        assert_eq!(removed.headers.len(), 1, "{:?}", removed.headers);
        let empty = plan(&["X-Empty;"]).unwrap();
        assert_eq!(empty.headers["x-empty"], "");
        let host = plan(&["Host:"]).unwrap_err().to_string();
        assert!(host.contains("requires a Host header"), "{host}");
        assert!(plan(&["no-colon"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("-d", "300").unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            parse_duration("-d", "30s").unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(
            parse_duration("-d", "5m").unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            parse_duration("-d", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert!(parse_duration("-d", "-1").is_err());
        assert!(parse_duration("-d", "1e300").is_err());
    }
}
