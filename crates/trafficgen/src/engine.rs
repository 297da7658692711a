//! The load: one current-thread Tokio runtime per thread, its share of the connections as local
//! tasks, nothing shared on the hot path but an atomic stop time.
//!
//! Open loop (wrk2's method): connection `k` of `C` at total rate `R` is due at
//! `t0 + (i·C + k) / R` (or at seeded Poisson times); it waits for that time, sends, and records
//! latency from the *intended* time, service time from the actual send, and the send lag between
//! them. A stalled server therefore shows in full: requests that come due during the stall queue
//! up on their connection and are charged the whole wait. Closed loop: each connection sends as
//! soon as its previous answer is in, and intended = actual.
//!
//! Accounting: every request due inside the measured window is counted `scheduled`, and ends as
//! exactly one of completed, error, unsent (still queued when the window closed) or in flight
//! (unanswered when the run ended).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderMap, Request, Version};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use meshbench_formats::trafficgen::{Mode, Requests, new_histogram};
use rand::SeedableRng;
use rand_distr::{Distribution, Exp};
use tokio::net::TcpStream;

use crate::h1;
use crate::plan::{Arrival, Plan};
use crate::report::Collector;
use crate::{Error, Output};

/// The first of Ctrl-C (SIGINT) and SIGTERM to come; `None` if neither can be watched.
async fn stop_signal() -> Option<nix::sys::signal::Signal> {
    use nix::sys::signal::Signal;
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            ctrl_c = tokio::signal::ctrl_c() => ctrl_c.ok().map(|()| Signal::SIGINT),
            Some(()) = term.recv() => Some(Signal::SIGTERM),
        },
        Err(_) => tokio::signal::ctrl_c().await.ok().map(|()| Signal::SIGINT),
    }
}

/// How long after the schedule ends in-flight requests may still finish when Ctrl-C or SIGTERM
/// stopped it.
const INTERRUPT_GRACE: Duration = Duration::from_secs(1);
/// Time to set up threads and connections before the first request is due.
const LEAD_IN: Duration = Duration::from_millis(100);

/// Everything the run produced.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub started_at: SystemTime,
    pub measured: Duration,
    /// The signal that stopped the run early (SIGINT, SIGTERM), by number: the run was
    /// interrupted.
    pub stopped_by: Option<i32>,
    pub requests: Requests,
    pub status_codes: BTreeMap<u16, u64>,
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
    pub lag: Histogram<u64>,
    /// Send lag of requests whose connection was free when they came due: the client's own delay.
    pub scheduler_lag: Histogram<u64>,
    pub timeline: Vec<crate::report::TimelineRow>,
    pub client: crate::report::ClientUse,
    /// Requests sent during the warm-up (not in `requests`).
    pub warmup_sent: u64,
}

/// What every thread shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub plan: Plan,
    pub addrs: Vec<SocketAddr>,
    pub t0: Instant,
    pub measure_start: Instant,
    /// Nanoseconds after `t0` at which the schedule stops: the end of the run, or earlier on
    /// Ctrl-C or SIGTERM, or when -n is used up.
    stop_ns: AtomicU64,
    /// The signal that interrupted the run, by number (0 before one comes).
    stopped_by: AtomicI32,
    stop: tokio::sync::Notify,
    /// Measured requests still allowed by -n.
    budget: Option<AtomicU64>,
    /// Problems already reported, so that 500 connections failing alike make one warning.
    warned: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Shared {
    pub(crate) fn stop_at(&self) -> Instant {
        self.t0 + Duration::from_nanos(self.stop_ns.load(Ordering::Acquire))
    }

    /// The signal that interrupted the run, if one has.
    fn stopped_by(&self) -> Option<i32> {
        Some(self.stopped_by.load(Ordering::Acquire)).filter(|&s| s != 0)
    }

    /// Stops the schedule at `at` (if earlier than planned) and wakes every waiting connection.
    fn stop_now(&self, at: Instant) {
        let ns =
            u64::try_from(at.saturating_duration_since(self.t0).as_nanos()).unwrap_or(u64::MAX);
        self.stop_ns.fetch_min(ns, Ordering::AcqRel);
        self.stop.notify_waiters();
    }

    /// Warns of a connection's problem the first time any connection has it; the summary's
    /// `errors_by_kind` counts every occurrence.
    fn warn_once(&self, k: u32, problem: String) {
        let mut warned = self
            .warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if warned.len() < 100 && warned.insert(problem.clone()) {
            tracing::warn!(
                "connection {k}: {problem} (other connections failing alike are only counted)"
            );
        }
    }

    /// Takes one request from the -n budget; false once it is used up.
    fn take_budget(&self) -> bool {
        match &self.budget {
            None => true,
            Some(b) => b
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

/// Counters of one second of the measured window.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SecondCounts {
    pub scheduled: u64,
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
}

/// One thread's statistics; its connection tasks share it through `Rc<RefCell<_>>`.
///
/// Recording runs once or twice per request, so the hot paths avoid the general structures:
/// status codes are counted in a table indexed by code, the current second's counters are
/// found by comparing instants, and zero send lags (every request of a closed loop) are counted
/// and added to the histograms at the end. [`ThreadStats::finish`] folds those in.
#[derive(Debug)]
pub(crate) struct ThreadStats {
    measure_start: Instant,
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
    pub lag: Histogram<u64>,
    pub scheduler_lag: Histogram<u64>,
    /// Latencies completed in the current second, for the timeline and interval log.
    pub second: Histogram<u64>,
    /// Errors in the current second, for the progress line.
    pub second_errors: u64,
    pub counts: Vec<SecondCounts>,
    pub requests: Requests,
    /// Complete after [`ThreadStats::finish`].
    pub status_codes: BTreeMap<u16, u64>,
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    /// Answers by status code (http's `StatusCode` is 100 to 999), until `finish`.
    code_counts: Vec<u64>,
    /// Requests sent during the warm-up: not counted, but their CPU time is the client's.
    pub warmup_sent: u64,
    /// Sends with no lag, on a free connection or not, until `finish`.
    zero_lags: u64,
    zero_lags_free: u64,
    /// The second `counts_at` found last: its index and the instants it spans.
    cached_second: (usize, Instant, Instant),
}

enum Answer {
    Status(u16),
    Timeout,
    Failed(&'static str),
}

impl ThreadStats {
    fn new(measure_start: Instant) -> ThreadStats {
        ThreadStats {
            measure_start,
            latency: new_histogram(),
            service: new_histogram(),
            lag: new_histogram(),
            scheduler_lag: new_histogram(),
            second: new_histogram(),
            second_errors: 0,
            counts: Vec::new(),
            requests: Requests::default(),
            status_codes: BTreeMap::new(),
            errors_by_kind: BTreeMap::new(),
            code_counts: vec![0; 1000],
            warmup_sent: 0,
            zero_lags: 0,
            zero_lags_free: 0,
            cached_second: (0, measure_start, measure_start),
        }
    }

    fn counts_at(&mut self, t: Instant) -> &mut SecondCounts {
        let (cached, from, until) = self.cached_second;
        let second = if from <= t && t < until {
            cached
        } else {
            let second = t.saturating_duration_since(self.measure_start).as_secs();
            let from = self.measure_start + Duration::from_secs(second);
            let second = usize::try_from(second).unwrap_or(usize::MAX);
            // An instant before the window belongs to second 0 but is not cached as it.
            if t >= self.measure_start {
                self.cached_second = (second, from, from + Duration::from_secs(1));
            }
            if self.counts.len() <= second {
                self.counts.resize(second + 1, SecondCounts::default());
            }
            second
        };
        &mut self.counts[second]
    }

    fn scheduled(&mut self, intended: Instant) {
        self.requests.scheduled += 1;
        self.counts_at(intended).scheduled += 1;
    }

    fn error(&mut self, kind: &'static str, at: Instant) {
        self.requests.errors += 1;
        self.second_errors += 1;
        *self.errors_by_kind.entry(kind).or_insert(0) += 1;
        self.counts_at(at).errors += 1;
    }

    fn sent(&mut self, intended: Instant, actual: Instant, connection_was_free: bool) {
        self.requests.sent += 1;
        self.requests.in_flight += 1;
        self.counts_at(actual).sent += 1;
        if actual <= intended {
            self.zero_lags += 1;
            self.zero_lags_free += u64::from(connection_was_free);
            return;
        }
        let lag = micros(actual - intended);
        let _ = self.lag.record(lag);
        if connection_was_free {
            let _ = self.scheduler_lag.record(lag);
        }
    }

    fn answered(
        &mut self,
        intended: Instant,
        actual: Instant,
        done: Instant,
        answer: &Answer,
        timeout: Duration,
    ) {
        self.requests.in_flight -= 1;
        let (latency, service) = match answer {
            Answer::Status(_) => {
                let service = micros(done.saturating_duration_since(actual));
                // A closed loop sends when it intends to: one subtraction serves both.
                let latency = if actual == intended {
                    service
                } else {
                    micros(done.saturating_duration_since(intended))
                };
                (latency, service)
            }
            // A timed-out request counts at the timeout: it took at least that long.
            Answer::Timeout => (
                micros((actual + timeout).saturating_duration_since(intended)),
                micros(timeout),
            ),
            Answer::Failed(_) => (0, 0),
        };
        match *answer {
            Answer::Status(code) => {
                match self.code_counts.get_mut(usize::from(code)) {
                    Some(n) => *n += 1,
                    None => *self.status_codes.entry(code).or_insert(0) += 1,
                }
                if code < 400 {
                    self.requests.completed += 1;
                    self.counts_at(done).completed += 1;
                } else {
                    self.error(if code < 500 { "http_4xx" } else { "http_5xx" }, done);
                }
            }
            Answer::Timeout => self.error("timeout", done),
            Answer::Failed(kind) => {
                self.error(kind, done);
                return;
            }
        }
        // The run's latency histogram is the sum of the seconds' (`end_second`).
        let _ = self.service.record(service);
        let _ = self.second.record(latency);
    }

    /// Ends the current second: its latencies join the run's (nothing else records into
    /// `latency`, so the interval log and the summary hold the same answers by construction),
    /// and go out with the second's error count, for the timeline and the log.
    fn end_second(&mut self) -> (Histogram<u64>, u64) {
        let second = std::mem::replace(&mut self.second, new_histogram());
        let _ = self.latency.add(&second);
        (second, std::mem::take(&mut self.second_errors))
    }

    /// Folds the counted status codes and zero lags into `status_codes` and the histograms, and
    /// a second not yet ended into `latency`.
    fn finish(mut self) -> ThreadStats {
        self.end_second();
        for (code, n) in self.code_counts.iter_mut().enumerate() {
            if *n > 0
                && let Ok(code) = u16::try_from(code)
            {
                *self.status_codes.entry(code).or_insert(0) += std::mem::take(n);
            }
        }
        for (histogram, n) in [
            (&mut self.lag, std::mem::take(&mut self.zero_lags)),
            (
                &mut self.scheduler_lag,
                std::mem::take(&mut self.zero_lags_free),
            ),
        ] {
            if n > 0 {
                let _ = histogram.record_n(0, n);
            }
        }
        self
    }
}

/// Messages from load threads to the collector.
pub(crate) enum Message {
    /// Latencies completed in second `second` of the measured window, on one thread.
    Second {
        second: u64,
        latency: Histogram<u64>,
        errors: u64,
    },
    /// A thread's totals, when it is done.
    Done(Box<ThreadStats>),
}

/// Resolves the target and opens a connection to each of its addresses, so that a wrong host or
/// port fails at once with a clear message instead of as a run of errors. The load is spread
/// over the addresses that answered (a headless Service's pods, say); one that did not (`::1`
/// for `localhost` with a server listening on 127.0.0.1 only, say) is left out with a warning.
fn preflight(plan: &Plan) -> Result<Vec<SocketAddr>, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    tokio::task::LocalSet::new().block_on(&runtime, async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((plan.host.as_str(), plan.port))
            .await
            .map_err(|e| Error::Resolve {
                host: plan.host.clone(),
                problem: e.to_string(),
            })?
            .collect();
        reachable(plan, addrs).await
    })
}

/// The addresses of `addrs` that take a connection (in order, without repeats), or why none did.
async fn reachable(plan: &Plan, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Error> {
    let mut good = Vec::new();
    let mut problems = Vec::new();
    for addr in addrs {
        if good.contains(&addr) || problems.iter().any(|(a, _)| *a == addr) {
            continue;
        }
        match tokio::time::timeout(plan.timeout, Connection::open(plan, addr)).await {
            Ok(Ok(_)) => good.push(addr),
            Ok(Err((_, problem))) => problems.push((addr, problem)),
            Err(_) => problems.push((
                addr,
                format!("{addr}: no connection within --timeout {:?}", plan.timeout),
            )),
        }
    }
    if good.is_empty() {
        let problem = if problems.is_empty() {
            "no addresses".to_owned()
        } else {
            problems
                .into_iter()
                .map(|(_, p)| p)
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(Error::Unreachable {
            target: plan.url.clone(),
            problem,
        });
    }
    for (_, problem) in &problems {
        tracing::warn!("{problem}: this address is left out");
    }
    tracing::info!("{}: {} address(es): {good:?}", plan.host, good.len());
    Ok(good)
}

/// Open files a run needs besides its connections: stdio, output files, each load thread's
/// epoll and wake-up descriptors, the preflight's connections, name resolution.
const OTHER_FILES: u64 = 64;

/// Makes room for every connection in the process's open-file limit, raising the soft limit as
/// far as the hard one allows (as Go's runtime does at start-up), or says why there is none.
/// Without this, connections past the limit fail one by one with EMFILE while the run goes on
/// with fewer than asked.
fn open_file_room(connections: u32) -> Result<(), Error> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let needed = u64::from(connections) + OTHER_FILES;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Ok(());
    };
    if soft >= needed
        || (hard >= needed && setrlimit(Resource::RLIMIT_NOFILE, needed, hard).is_ok())
    {
        return Ok(());
    }
    Err(Error::OpenFiles {
        connections,
        needed,
        limit: hard,
    })
}

/// Runs the plan; `hlog` receives the interval log as the run goes; `progress` shows a
/// progress line on stderr if it is a terminal.
pub(crate) fn run(plan: &Plan, hlog: Option<Output>, progress: bool) -> Result<Outcome, Error> {
    let began = Instant::now();
    open_file_room(plan.connections)?;
    let addrs = preflight(plan)?;
    let started_at = SystemTime::now();
    let t0 = Instant::now() + LEAD_IN;
    let measure_start = t0 + plan.warmup;
    // The schedule ends after the measured duration; with -n alone and a rate, when the budget
    // would be spent on schedule; with -n alone in a closed loop, when the budget is spent.
    let window = match (plan.duration, plan.requests, plan.rate) {
        (Some(d), _, _) => Some(d),
        #[allow(clippy::cast_precision_loss)]
        (None, Some(n), Some(rate)) => Duration::try_from_secs_f64(n as f64 / rate).ok(),
        (None, _, _) => None,
    };
    let stop_ns = window.map_or(u64::MAX, |w| {
        u64::try_from((plan.warmup + w).as_nanos()).unwrap_or(u64::MAX)
    });
    let shared = Arc::new(Shared {
        plan: plan.clone(),
        addrs,
        t0,
        measure_start,
        stop_ns: AtomicU64::new(stop_ns),
        stopped_by: AtomicI32::new(0),
        stop: tokio::sync::Notify::new(),
        budget: plan.requests.map(AtomicU64::new),
        warned: std::sync::Mutex::new(std::collections::HashSet::new()),
    });

    let (tx, rx) = mpsc::channel::<Message>();
    let mut collector = Collector::new(plan, &shared, started_at, hlog, progress)?;
    let threads = plan.threads;
    let result = std::thread::scope(|scope| -> Result<(), Error> {
        let mut handles = Vec::with_capacity(threads);
        for thread in 0..threads {
            let shared = Arc::clone(&shared);
            let tx = tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("trafficgen-{thread}"))
                .spawn_scoped(scope, move || load_thread(thread, &shared, &tx))
                .map_err(Error::Runtime)?;
            handles.push(handle);
        }
        drop(tx);
        collector.collect(&rx, threads)?;
        for h in handles {
            h.join()
                .map_err(|_| Error::Runtime(std::io::Error::other("a load thread panicked")))??;
        }
        Ok(())
    });
    result?;
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).ok();
    let cpu_seconds = usage.map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| {
            #[allow(clippy::cast_precision_loss)]
            let secs = tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            secs
        };
        t(u.user_time()) + t(u.system_time())
    });
    let max_rss_bytes = usage.map_or(0, |u| u64::try_from(u.max_rss()).unwrap_or(0) * 1024);
    // The cores the load threads could use: no more than there are threads, nor than the
    // process may run on (its CPU affinity, and its cgroup's quota as a pod's CPU limit sets
    // it, which the standard library rounds up to whole cores).
    let whole = plan
        .threads
        .min(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
    #[allow(clippy::cast_precision_loss)]
    let cores = crate::cgroup::quota().map_or(whole as f64, |q| q.min(whole as f64));
    let cpu_utilization = crate::report::utilization(cpu_seconds, began.elapsed(), cores);
    let stopped_by = shared.stopped_by();
    let interrupted = stopped_by.is_some();
    let measured = shared
        .stop_at()
        .min(collector.last_event().unwrap_or(measure_start))
        .saturating_duration_since(measure_start);
    let measured = match (interrupted, window) {
        (false, Some(w)) => w,
        _ => measured,
    };
    Ok(collector.finish(
        started_at,
        measured,
        stopped_by,
        crate::report::ClientUse {
            cpu_seconds,
            cpu_utilization,
            max_rss_bytes,
        },
    ))
}

/// Whether the connections have all ended, given `JoinSet::join_next`'s answer. A connection
/// task that panicked takes its thread down with it: carrying on with one connection fewer
/// would report numbers for a load nobody asked for. (Release builds abort on a panic anyway.)
fn all_done(next: Option<Result<(), tokio::task::JoinError>>) -> bool {
    match next {
        None => true,
        Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Some(_) => false,
    }
}

/// One load thread: its connections as local tasks on a current-thread runtime.
fn load_thread(
    thread: usize,
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<Message>,
) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let local = tokio::task::LocalSet::new();
    let stats = Rc::new(RefCell::new(ThreadStats::new(shared.measure_start)));
    local.block_on(&runtime, async {
        let plan = &shared.plan;
        let mut tasks = tokio::task::JoinSet::new();
        let connections = (0..plan.connections).filter(|k| *k as usize % plan.threads == thread);
        for k in connections {
            tasks.spawn_local(connection(k, Arc::clone(shared), Rc::clone(&stats)));
        }
        // Ctrl-C or SIGTERM (a pod being stopped): stop the schedule everywhere; answers may
        // still come in for a moment.
        let interrupt_shared = Arc::clone(shared);
        let ctrl_c = tokio::task::spawn_local(async move {
            if let Some(signal) = stop_signal().await {
                interrupt_shared
                    .stopped_by
                    .store(signal as i32, Ordering::Release);
                interrupt_shared.stop_now(Instant::now());
            }
        });
        let ticker =
            tokio::task::spawn_local(ticker(Arc::clone(shared), Rc::clone(&stats), tx.clone()));

        // Wait for every connection; after an interrupt, only for a grace period.
        let mut grace_until: Option<Instant> = None;
        loop {
            if grace_until.is_none() && shared.stopped_by().is_some() {
                grace_until = Some(Instant::now() + INTERRUPT_GRACE);
            }
            let stopped = shared.stop.notified();
            if let Some(until) = grace_until {
                tokio::select! {
                    next = tasks.join_next() => if all_done(next) { break },
                    () = tokio::time::sleep_until(until.into()) => {
                        // Still unanswered: counted in flight.
                        tasks.abort_all();
                        while tasks.join_next().await.is_some() {}
                        break;
                    }
                }
            } else {
                tokio::select! {
                    next = tasks.join_next() => if all_done(next) { break },
                    () = stopped => {}
                }
            }
        }
        ctrl_c.abort();
        ticker.abort();
        let _ = ticker.await;
        let (latency, errors) = stats.borrow_mut().end_second();
        let second = Instant::now()
            .saturating_duration_since(shared.measure_start)
            .as_secs();
        if Instant::now() > shared.measure_start {
            let _ = tx.send(Message::Second {
                second,
                latency,
                errors,
            });
        }
    });
    // The tasks are done: take the totals, whoever still holds the Rc.
    let stats = stats.replace(ThreadStats::new(shared.measure_start));
    let _ = tx.send(Message::Done(Box::new(stats.finish())));
    Ok(())
}

/// Hands the collector each second's latencies as the second ends.
async fn ticker(shared: Arc<Shared>, stats: Rc<RefCell<ThreadStats>>, tx: mpsc::Sender<Message>) {
    // Only measured requests are recorded, so nothing of the warm-up is in `second`. (It was
    // emptied here once the measurement began, which threw away the answers that came in
    // before this task woke: up to 30 of the first second's in the interval log.)
    let mut second = 0u64;
    loop {
        let boundary = shared.measure_start + Duration::from_secs(second + 1);
        tokio::time::sleep_until(boundary.into()).await;
        let (latency, errors) = stats.borrow_mut().end_second();
        let message = Message::Second {
            second,
            latency,
            errors,
        };
        if tx.send(message).is_err() {
            return;
        }
        second += 1;
    }
}

/// Seconds as a Duration, capped at a day (beyond any run; `-r` is at least 0.001/s).
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.min(86_400.0)).unwrap_or(Duration::ZERO)
}

/// Intended send times of one connection.
struct Schedule {
    next: Instant,
    /// Uniform: the gap between this connection's requests.
    gap: Duration,
    poisson: Option<(Exp<f64>, rand::rngs::StdRng)>,
}

impl Schedule {
    fn new(plan: &Plan, k: u32, t0: Instant) -> Schedule {
        let rate = plan.rate.unwrap_or(1.0);
        let per_connection = rate / f64::from(plan.connections);
        match plan.arrival {
            Arrival::Uniform => Schedule {
                // wrk2's interleaving: connection k is offset by k/R within each round.
                next: t0 + seconds(f64::from(k) / rate),
                gap: seconds(1.0 / per_connection),
                poisson: None,
            },
            Arrival::Poisson => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(
                    plan.seed ^ (u64::from(k) << 32 | 0x5bd1e995),
                );
                let exp = Exp::new(per_connection)
                    .unwrap_or_else(|_| Exp::new(1.0).expect("1 is a valid rate"));
                let first = seconds(exp.sample(&mut rng));
                Schedule {
                    next: t0 + first,
                    gap: Duration::ZERO,
                    poisson: Some((exp, rng)),
                }
            }
        }
    }

    fn peek(&self) -> Instant {
        self.next
    }

    fn advance(&mut self) {
        self.next += match &mut self.poisson {
            None => self.gap,
            Some((exp, rng)) => seconds(exp.sample(rng)),
        };
    }
}

/// An open HTTP connection.
enum Connection {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
    Lean(h1::Conn<TcpStream>),
    LeanTls(Box<h1::Conn<tokio_rustls::client::TlsStream<TcpStream>>>),
}

/// Why an exchange failed, in whichever client sent it.
#[derive(Debug)]
enum Failure {
    Hyper(hyper::Error),
    Lean(h1::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Hyper(e) => e.fmt(f),
            Failure::Lean(e) => e.fmt(f),
        }
    }
}

impl Failure {
    fn kind(&self) -> &'static str {
        match self {
            Failure::Hyper(e) => classify(e),
            Failure::Lean(e) => e.kind(),
        }
    }

    fn is_parse(&self) -> bool {
        match self {
            Failure::Hyper(e) => e.is_parse(),
            Failure::Lean(e) => e.is_parse(),
        }
    }
}

impl From<hyper::Error> for Failure {
    fn from(e: hyper::Error) -> Self {
        Failure::Hyper(e)
    }
}

/// What to add to a TLS handshake error, for the failures people meet most: an `https://` URL
/// for a plain-HTTP port, a private CA not passed, and a self-signed CA certificate served as the
/// server's own (what `openssl req -x509` makes by default; curl takes it, rustls does not).
fn tls_hint(e: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error as Tls, InvalidMessage};
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<Tls>()) else {
        return "";
    };
    match tls {
        Tls::InvalidMessage(InvalidMessage::InvalidContentType) => {
            " (the server did not answer in TLS: is it plain HTTP? then use http://)"
        }
        Tls::InvalidCertificate(CertificateError::UnknownIssuer) => {
            " (no trusted CA issued the server's certificate: pass its CA with --cacert FILE, \
             or skip verification with --insecure)"
        }
        Tls::InvalidCertificate(CertificateError::Other(other))
            if other.0.downcast_ref::<webpki::Error>()
                == Some(&webpki::Error::CaUsedAsEndEntity) =>
        {
            " (the server presents a CA certificate, basicConstraints CA:TRUE, as its own, which \
             rustls refuses even with --cacert: serve a certificate issued by that CA, or skip \
             verification with --insecure)"
        }
        _ => "",
    }
}

impl Connection {
    /// Connects (TCP, then TLS for https), and hands the connection's driver to the runtime.
    /// Errors come with their kind: `connect`.
    async fn open(plan: &Plan, addr: SocketAddr) -> Result<Connection, (&'static str, String)> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| ("connect", format!("{addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        match &plan.tls {
            None => match &plan.lean {
                Some(request) => Ok(Connection::Lean(h1::Conn::new(tcp, Arc::clone(request)))),
                None => Self::handshake(plan, TokioIo::new(tcp), plan.http2).await,
            },
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(plan.host.clone())
                    .map_err(|e| ("connect", format!("{}: {e}", plan.host)))?;
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        let hint = tls_hint(&e);
                        (
                            "connect",
                            format!("TLS handshake with {}: {e}{hint}", plan.host),
                        )
                    })?;
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                if plan.http2 && !h2 {
                    return Err((
                        "connect",
                        format!("{} did not negotiate HTTP/2 (ALPN h2)", plan.host),
                    ));
                }
                if let (false, Some(request)) = (h2, &plan.lean) {
                    let conn = h1::Conn::new(tls, Arc::clone(request));
                    return Ok(Connection::LeanTls(Box::new(conn)));
                }
                Self::handshake(plan, TokioIo::new(tls), h2).await
            }
        }
    }

    async fn handshake<T>(
        plan: &Plan,
        io: TokioIo<T>,
        h2: bool,
    ) -> Result<Connection, (&'static str, String)>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let failed =
            |e: hyper::Error| ("connect", format!("HTTP handshake with {}: {e}", plan.host));
        if h2 {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(failed)?;
            tokio::task::spawn_local(async move {
                let _ = conn.await;
            });
            Ok(Connection::H2(sender))
        } else {
            // One flat buffer per request: a write(2) rather than a writev(2) of header pieces.
            let (sender, conn) = hyper::client::conn::http1::Builder::new()
                .writev(false)
                .handshake(io)
                .await
                .map_err(failed)?;
            tokio::task::spawn_local(async move {
                let _ = conn.await;
            });
            Ok(Connection::H1(sender))
        }
    }

    /// Whether the server has closed the connection since its last answer, as far as is known
    /// without waiting. `idle`: the connection has waited for its request (open loop), and may
    /// have been closed meanwhile.
    fn closed(&self, idle: bool) -> bool {
        match self {
            Connection::H1(sender) => sender.is_closed(),
            Connection::H2(sender) => sender.is_closed(),
            Connection::Lean(c) => c.closed() || (idle && c.peer_closed()),
            Connection::LeanTls(c) => c.closed() || (idle && c.peer_closed()),
        }
    }

    /// Sends one request and reads the whole answer (discarding the body).
    ///
    /// A lean connection sends the request it was opened with. For hyper, `spare` is the header map of the previous answer, emptied: the request's headers go into
    /// it, hyper keeps it after writing them and parses the answer's headers into it, and the
    /// answer hands it back. Once it has room for the answer's headers, no request allocates or
    /// grows a header map.
    async fn exchange(&mut self, plan: &Plan, spare: &mut HeaderMap) -> Result<u16, Failure> {
        let mut hyper_request = || {
            let mut request = Request::new(Full::new(plan.body.clone()));
            *request.method_mut() = plan.method.clone();
            let headers = request.headers_mut();
            *headers = std::mem::take(spare);
            headers.extend(plan.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
            request
        };
        let response = match self {
            Connection::Lean(c) => return c.exchange().await.map_err(Failure::Lean),
            Connection::LeanTls(c) => return c.exchange().await.map_err(Failure::Lean),
            Connection::H1(sender) => {
                let mut request = hyper_request();
                *request.uri_mut() = plan.path_uri.clone();
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Connection::H2(sender) => {
                let mut request = hyper_request();
                *request.uri_mut() = plan.full_uri.clone();
                *request.version_mut() = Version::HTTP_2;
                request.headers_mut().remove(http::header::HOST);
                sender.ready().await?;
                sender.send_request(request).await?
            }
        };
        let status = response.status().as_u16();
        let (parts, mut body) = response.into_parts();
        *spare = parts.headers;
        spare.clear();
        while let Some(frame) = body.frame().await {
            frame?;
        }
        Ok(status)
    }
}

/// What kind of failure a hyper error is.
fn classify(e: &hyper::Error) -> &'static str {
    if e.is_timeout() {
        return "timeout";
    }
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return "reset";
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>().is_some_and(h1::is_reset) {
            return "reset";
        }
        source = s.source();
    }
    "transport"
}

/// One connection's life: wait for each intended time, send, record; reconnect after failures.
async fn connection(k: u32, shared: Arc<Shared>, stats: Rc<RefCell<ThreadStats>>) {
    let plan = &shared.plan;
    let addr = shared.addrs[k as usize % shared.addrs.len()];
    let open = plan.mode == Mode::Open;
    let mut schedule = Schedule::new(plan, k, shared.t0);
    let mut conn = Connection::open(plan, addr).await.ok();
    let mut previous_done = shared.t0;
    let mut backoff = Duration::from_millis(10);
    let mut warned = false;
    if !open {
        tokio::time::sleep_until(shared.t0.into()).await;
    }
    // One timeout timer per connection, moved for each request: cheaper than registering a new
    // timer per request with tokio::time::timeout.
    let timeout = tokio::time::sleep(plan.timeout);
    tokio::pin!(timeout);
    // In a closed loop the previous answer's time is the next request's start: nothing but
    // bookkeeping happens in between, so the clock is not read again.
    let mut free_since: Option<Instant> = None;
    let mut spare_headers = HeaderMap::new();
    loop {
        let stop_at = shared.stop_at();
        // One clock read serves the stop check, and in a closed loop the intended time too.
        let now = free_since.take().unwrap_or_else(Instant::now);
        let intended = if open { schedule.peek() } else { now };
        if intended >= stop_at || now >= stop_at {
            break;
        }
        if open && Instant::now() < intended {
            let stopped = shared.stop.notified();
            tokio::select! {
                () = meshbench_timer::sleep_until(intended) => {}
                () = stopped => continue,
            }
        }
        let measured = intended >= shared.measure_start;
        if measured && !shared.take_budget() {
            shared.stop_now(Instant::now());
            break;
        }
        if open {
            schedule.advance();
        }
        if measured {
            stats.borrow_mut().scheduled(intended);
        }
        // A connection the server has closed since its last answer is replaced, not charged an
        // error: nginx closes one after keepalive_requests answers (1000 by default), the last
        // saying `Connection: close`, and a server may close one that waited too long. The lean
        // client knows the first from the answer it read, and asks epoll about the second when
        // the connection waited (an open loop); hyper's dispatcher has ended in both cases, on
        // this thread, so its sender already says closed. A fresh connection's failures still
        // count (in `exchange`).
        if conn.as_ref().is_some_and(|c| c.closed(open)) {
            conn = None;
        }
        let reconnected = conn.is_none();
        if reconnected {
            match Connection::open(plan, addr).await {
                Ok(c) => {
                    conn = Some(c);
                    backoff = Duration::from_millis(10);
                }
                Err((kind, problem)) => {
                    if !warned {
                        shared.warn_once(k, problem);
                        warned = true;
                    }
                    if measured {
                        stats.borrow_mut().error(kind, Instant::now());
                    }
                    // Do not spin on a refused port; the schedule keeps its own time.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            }
        }
        // In a closed loop nothing happened since `now` unless a connection was opened.
        let actual = if open || reconnected {
            Instant::now()
        } else {
            now
        };
        if measured {
            stats
                .borrow_mut()
                .sent(intended, actual, previous_done <= intended);
        } else {
            stats.borrow_mut().warmup_sent += 1;
        }
        let Some(c) = conn.as_mut() else { continue };
        timeout
            .as_mut()
            .reset(tokio::time::Instant::from_std(actual + plan.timeout));
        let exchanged = tokio::select! {
            biased;
            result = c.exchange(plan, &mut spare_headers) => Ok(result),
            () = &mut timeout => Err(()),
        };
        let answer = match exchanged {
            Ok(Ok(status)) => Answer::Status(status),
            Ok(Err(e)) => {
                if !warned {
                    // A TLS server's alert in place of an HTTP answer is the usual cause.
                    let hint = if e.is_parse() && plan.tls.is_none() {
                        " (the answer was not HTTP: is it an HTTPS port? then use https://)"
                    } else {
                        ""
                    };
                    shared.warn_once(k, format!("{e}{hint}"));
                    warned = true;
                }
                conn = None;
                Answer::Failed(e.kind())
            }
            Err(_) => {
                // The request is still on the wire: this connection cannot be reused.
                conn = None;
                Answer::Timeout
            }
        };
        let done = Instant::now();
        previous_done = done;
        if measured {
            stats
                .borrow_mut()
                .answered(intended, actual, done, &answer, plan.timeout);
        }
        if !open {
            free_since = Some(done);
        }
    }
    // Requests that came due in the window but were still queued on this connection.
    if open {
        let stop_at = shared.stop_at();
        let mut stats = stats.borrow_mut();
        while schedule.peek() < stop_at {
            if schedule.peek() >= shared.measure_start {
                stats.scheduled(schedule.peek());
                stats.requests.unsent += 1;
            }
            schedule.advance();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plan_for(url: &str) -> Plan {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            load: crate::plan::LoadArgs,
        }
        let args = <Wrap as clap::Parser>::parse_from(["x", "--timeout", "2s"]);
        Plan::from_args(Some(url), None, None, &args.load).unwrap()
    }

    /// A loopback address that refuses connections: a port just bound and released.
    fn refusing() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    fn reachable_now(plan: &Plan, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&runtime, reachable(plan, addrs))
    }

    #[test]
    fn load_goes_to_the_addresses_that_answer() {
        // A name may resolve to an address nothing listens on (`::1` for `localhost`, with
        // the server on 127.0.0.1 only): it is left out instead of failing a share of requests.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let live = listener.local_addr().unwrap();
        let dead = refusing();
        let plan = plan_for("http://service.example/");
        assert_eq!(
            reachable_now(&plan, vec![dead, live, dead, live]).unwrap(),
            vec![live]
        );
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let second = other.local_addr().unwrap();
        assert_eq!(
            reachable_now(&plan, vec![live, second]).unwrap(),
            vec![live, second]
        );
        let Err(Error::Unreachable { target, problem }) =
            reachable_now(&plan, vec![dead, refusing()])
        else {
            panic!("expected Unreachable");
        };
        assert_eq!(target, "http://service.example/");
        assert_eq!(problem.matches("127.0.0.1:").count(), 2, "{problem}");
        assert!(matches!(
            reachable_now(&plan, vec![]),
            Err(Error::Unreachable { problem, .. }) if problem == "no addresses"
        ));
    }

    proptest! {
        /// The shortcuts in `ThreadStats` (the cached second, the code table, the counted zero
        /// lags) give what plain bookkeeping gives, in any order of instants.
        #[test]
        fn recording_matches_plain_bookkeeping(
            events in prop::collection::vec(
                (-1500i64..5000, 0u64..3000, 0u64..4000, prop::sample::select(vec![200u16, 204, 301, 404, 503])),
                1..200,
            )
        ) {
            let start = Instant::now() + Duration::from_secs(2);
            let at = |ms: i64| {
                let offset = Duration::from_millis(ms.unsigned_abs());
                if ms < 0 { start - offset } else { start + offset }
            };
            let mut stats = ThreadStats::new(start);
            let mut plain_latency = new_histogram();
            let mut plain_service = new_histogram();
            let mut seconds: BTreeMap<usize, (u64, u64, u64)> = BTreeMap::new();
            let mut codes: BTreeMap<u16, u64> = BTreeMap::new();
            let mut zero_lags = 0;
            for &(intended_ms, lag_us, service_us, code) in &events {
                let intended = at(intended_ms);
                let actual = intended + Duration::from_micros(lag_us);
                let done = actual + Duration::from_micros(service_us);
                let second = |t: Instant| {
                    usize::try_from(t.saturating_duration_since(start).as_secs()).unwrap()
                };
                stats.scheduled(intended);
                stats.sent(intended, actual, true);
                stats.answered(intended, actual, done, &Answer::Status(code), Duration::from_secs(9));
                plain_latency.record(micros(done - intended)).unwrap();
                plain_service.record(micros(done - actual)).unwrap();
                if service_us % 7 == 0 {
                    // A second ends now and then: its latencies join the run's.
                    stats.end_second();
                }
                seconds.entry(second(intended)).or_default().0 += 1;
                seconds.entry(second(actual)).or_default().1 += 1;
                if code < 400 {
                    seconds.entry(second(done)).or_default().2 += 1;
                }
                *codes.entry(code).or_default() += 1;
                zero_lags += u64::from(lag_us == 0);
            }
            let stats = stats.finish();
            for (second, &(scheduled, sent, completed)) in &seconds {
                let c = stats.counts[*second];
                prop_assert_eq!((c.scheduled, c.sent, c.completed), (scheduled, sent, completed));
            }
            let total: u64 = stats.counts.iter().map(|c| c.scheduled).sum();
            prop_assert_eq!(total, events.len() as u64);
            prop_assert_eq!(&stats.status_codes, &codes);
            prop_assert_eq!(stats.lag.len(), events.len() as u64);
            prop_assert_eq!(stats.scheduler_lag.len(), events.len() as u64);
            prop_assert_eq!(stats.lag.count_at(0), zero_lags);
            let most: u64 = events.iter().map(|e| e.1 + e.2).max().unwrap_or(0);
            prop_assert!(stats.latency.equivalent(stats.latency.max(), most));
            prop_assert_eq!(&stats.latency, &plain_latency);
            prop_assert_eq!(&stats.service, &plain_service);
        }
    }
}
