//! Plumbing every meshbench tool shares, so each `main.rs` stays a dozen lines:
//!
//! - [`Input`]: a file path or `-` for stdin, with a name for error messages;
//! - [`Output`]: a file written to a temporary sibling and renamed into place on [`Output::commit`]
//!   (so a failed run never leaves a half-written file), or `-` for stdout;
//! - [`LogArgs`]: `-v`/`-q` and `RUST_LOG`, logging to stderr through tracing;
//! - [`parse_duration`]: durations as every tool takes them (`300`, `30s`, `5m`, `250ms`);
//! - [`exit`]: prints an error with its causes and maps it to the documented exit code
//!   (0 success, 1 the work failed or the input is bad, 2 usage error; a closed stdout is not an
//!   error, as in ripgrep).

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};

/// Buffer size for outputs: large enough that syscalls do not show in profiles.
const BUFFER: usize = 256 * 1024;

/// Buffer size for inputs. Readers of large inputs (top-parse) read past it into buffers of
/// their own; a larger one cost each input 256 KiB zeroed and faulted in, and a copy of what it
/// held, before the first line was parsed (0.1 ms a file).
const INPUT_BUFFER: usize = 64 * 1024;

/// A file argument that may be `-` for stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    pub fn from_arg(arg: &str) -> Input {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::File(PathBuf::from(arg))
        }
    }

    /// Opens the input for buffered reading. The reader may move to another thread (top-parse's
    /// workers take turns reading), so stdin is locked per read, not held.
    pub fn open(&self) -> io::Result<Box<dyn BufRead + Send>> {
        self.open_watched(None).map(|(reader, _)| reader)
    }

    /// [`Input::open`], and a [`Readiness`] that tells when a read from it would wait: for
    /// tools that should hand on what they have before waiting on a pipe. With an
    /// [`Interrupt`], the input ends (reads return nothing more) once Ctrl-C or SIGTERM comes,
    /// even while its writer sends nothing.
    pub fn open_watched(
        &self,
        interrupt: Option<&Interrupt>,
    ) -> io::Result<(Box<dyn BufRead + Send>, Readiness)> {
        match self {
            Input::Stdin => {
                let stdin = io::stdin();
                widen_pipe(&stdin);
                watched(stdin, interrupt)
            }
            Input::File(path) => watched(File::open(path)?, interrupt),
        }
    }
}

/// `inner`, buffered, read through a [`Watched`] reader, and its [`Readiness`].
fn watched<R: io::Read + AsFd + Send + 'static>(
    inner: R,
    interrupt: Option<&Interrupt>,
) -> io::Result<(Box<dyn BufRead + Send>, Readiness)> {
    let readiness = Readiness::of(inner.as_fd(), interrupt)?;
    let reader = Watched {
        inner,
        readiness: readiness.clone(),
    };
    Ok((
        Box::new(BufReader::with_capacity(INPUT_BUFFER, reader)),
        readiness,
    ))
}

/// Ctrl-C (SIGINT) or SIGTERM as a request to stop reading, for a tool that would rather write
/// what it has read than be killed with nothing written (top-parse on a sampling loop's pipe,
/// or in a pod being stopped). The first signal sets a flag; a second ends the process at once,
/// with exit code 128 + its number (130 for SIGINT), as a user pressing Ctrl-C again expects.
#[derive(Debug, Clone)]
pub struct Interrupt {
    /// The number of the first signal caught, 0 before.
    caught: Arc<AtomicUsize>,
}

impl Interrupt {
    /// Catches SIGINT and SIGTERM from now on, for the rest of the process.
    pub fn catch() -> io::Result<Interrupt> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let armed = Arc::new(AtomicBool::new(false));
        let interrupt = Interrupt {
            caught: Arc::new(AtomicUsize::new(0)),
        };
        for signal in [SIGINT, SIGTERM] {
            // In this order: the second registration sets the flag that arms the first, so the
            // first signal only sets it, and a second one exits.
            let status = 128 + signal;
            signal_hook::flag::register_conditional_shutdown(signal, status, Arc::clone(&armed))?;
            signal_hook::flag::register(signal, Arc::clone(&armed))?;
            #[allow(clippy::cast_sign_loss)]
            signal_hook::flag::register_usize(
                signal,
                Arc::clone(&interrupt.caught),
                signal as usize,
            )?;
        }
        Ok(interrupt)
    }

    /// The first signal caught (2 for SIGINT, 15 for SIGTERM), if one has been.
    pub fn caught(&self) -> Option<i32> {
        match self.caught.load(Ordering::Relaxed) {
            0 => None,
            signal => i32::try_from(signal).ok(),
        }
    }
}

/// Whether a read from an input would wait for its writer. A pipe, a terminal or a socket can
/// make a reader wait (a sampling loop piped in sends a table, then nothing for 15 s); a regular
/// file never does. Clones watch the same input.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Another handle on the input, when a read from it can wait.
    fd: Option<Arc<OwnedFd>>,
    interrupt: Option<Interrupt>,
}

impl Readiness {
    /// For an input that never waits: a regular file, or bytes in memory.
    pub fn always() -> Readiness {
        Readiness {
            fd: None,
            interrupt: None,
        }
    }

    /// Watches the input `fd` (through a handle of its own) if it is something a read can wait
    /// on; a regular file is not watched, so its handle is not duplicated.
    fn of(fd: BorrowedFd<'_>, interrupt: Option<&Interrupt>) -> io::Result<Readiness> {
        use nix::sys::stat::{SFlag, fstat};
        let mode = SFlag::from_bits_truncate(fstat(fd)?.st_mode);
        let regular = mode & SFlag::S_IFMT == SFlag::S_IFREG;
        Ok(Readiness {
            fd: if regular {
                None
            } else {
                Some(Arc::new(fd.try_clone_to_owned()?))
            },
            interrupt: interrupt.cloned(),
        })
    }

    /// Whether the input may keep a reader waiting (a pipe, a terminal or a socket).
    pub fn may_wait(&self) -> bool {
        self.fd.is_some()
    }

    /// Whether Ctrl-C or SIGTERM has ended the input (see [`Input::open_watched`]).
    pub fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|i| i.caught().is_some())
    }

    /// Whether a read returns within `wait`: data is there or comes in that time, the input
    /// ends, or it fails (for the read to report). At once for an input that never waits;
    /// otherwise as soon as the input is readable, or after `wait` (at most about 24 days), or
    /// when a signal arrives (then `false`).
    pub fn ready_within(&self, wait: Duration) -> bool {
        let Some(fd) = &self.fd else {
            return true;
        };
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
        match nix::poll::poll(&mut fds, timeout) {
            Ok(n) => n > 0,
            Err(nix::errno::Errno::EINTR) => false,
            // If poll itself fails, the read that follows finds out what is wrong.
            Err(_) => true,
        }
    }
}

/// A reader that waits for its input only until Ctrl-C or SIGTERM comes: then it reads as
/// ended. It waits in `poll` rather than in `read`, since a read restarted after the signal
/// would go on waiting for a writer that may never write again.
struct Watched<R> {
    inner: R,
    readiness: Readiness,
}

/// How often a reader waiting for its input looks for Ctrl-C or SIGTERM.
const LOOK_FOR_INTERRUPT: Duration = Duration::from_millis(100);

impl<R: io::Read> io::Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.readiness.interrupt.is_some() {
            loop {
                if self.readiness.interrupted() {
                    return Ok(0);
                }
                if self.readiness.ready_within(LOOK_FOR_INTERRUPT) {
                    break;
                }
            }
        }
        self.inner.read(buf)
    }
}

/// The directory an output file is created in (its temporary file too).
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Asks for a 1 MiB pipe buffer when stdin is a pipe (Linux's limit for unprivileged processes;
/// 64 KiB by default), so that a large input piped in arrives in fewer, larger reads, with fewer
/// switches between the writer and this process. Anything else, or a refusal, changes nothing.
fn widen_pipe(stdin: &io::Stdin) {
    #[cfg(target_os = "linux")]
    {
        let _ = nix::fcntl::fcntl(stdin.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stdin;
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Stdin => f.write_str("<stdin>"),
            Input::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl From<&str> for Input {
    fn from(arg: &str) -> Input {
        Input::from_arg(arg)
    }
}

/// Where a tool writes: stdout, or a file replaced atomically when the work succeeds.
#[derive(Debug)]
pub struct Output {
    target: Target,
}

#[derive(Debug)]
enum Target {
    Stdout(BufWriter<io::Stdout>),
    /// A device, FIFO or socket, written in place.
    Special(BufWriter<File>),
    File {
        path: PathBuf,
        temp: BufWriter<tempfile::NamedTempFile>,
    },
}

impl Output {
    /// `-` is stdout; anything else a file, created in the same directory as a temporary file.
    pub fn create(arg: &str) -> io::Result<Output> {
        if arg == "-" {
            return Ok(Output::stdout());
        }
        let path = PathBuf::from(arg);
        let existing = std::fs::metadata(&path).ok();
        // A device, FIFO or socket (/dev/null, /dev/stdout, a named pipe) is written in place:
        // renaming a temporary file over it would replace the device node itself (as `-o
        // /dev/null` once did, leaving a regular file that later readers of /dev/null read).
        if existing
            .as_ref()
            .is_some_and(|m| !m.is_file() && !m.is_dir())
        {
            let file = std::fs::OpenOptions::new().write(true).open(&path)?;
            return Ok(Output {
                target: Target::Special(BufWriter::with_capacity(BUFFER, file)),
            });
        }
        // Found out now, not at the rename after all the work.
        if existing.as_ref().is_some_and(std::fs::Metadata::is_dir) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "it is a directory (give a file name)",
            ));
        }
        let dir = directory_of(&path);
        let name = path.file_name().map_or_else(
            || ".meshbench".into(),
            |n| format!(".{}.", n.to_string_lossy()),
        );
        // The file ends up with the permissions `> FILE` would give it: those of the file it
        // replaces, or a new file's (0666 less the umask), not a temporary file's 0600.
        // tempfile's error ends with " at path" and its random temporary name; the user named
        // `path`, and the caller says so, so only the reason is kept.
        let temp = tempfile::Builder::new()
            .prefix(&name)
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(&dir)
            .map_err(|e| {
                let text = e.to_string();
                match text.split_once(" at path ") {
                    Some((reason, _)) => io::Error::new(e.kind(), reason.to_owned()),
                    None => e,
                }
            })?;
        if let Some(replaced) = existing.filter(std::fs::Metadata::is_file) {
            temp.as_file().set_permissions(replaced.permissions())?;
        }
        Ok(Output {
            target: Target::File {
                path,
                temp: BufWriter::with_capacity(BUFFER, temp),
            },
        })
    }

    /// Refuses two outputs of one run that name the same file, given as (flag, path): each is
    /// written to a temporary file and renamed over its path, so the last rename would win
    /// silently. `-` (stdout) and devices such as /dev/null, written in place, may be shared.
    /// The error says which two flags collide.
    pub fn check_distinct(outputs: &[(&str, Option<&Path>)]) -> Result<(), String> {
        let mut seen: Vec<(&str, PathBuf)> = Vec::new();
        for &(flag, path) in outputs {
            let Some(path) = path.filter(|p| p.as_os_str() != "-") else {
                continue;
            };
            if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
                continue;
            }
            // The directory resolved (symbolic links, `..`), the name as given.
            let dir = directory_of(path);
            let key = std::fs::canonicalize(&dir)
                .unwrap_or(dir)
                .join(path.file_name().unwrap_or_default());
            if let Some((other, _)) = seen.iter().find(|(_, k)| *k == key) {
                return Err(format!(
                    "{other} and {flag} both name {}: give each output its own file",
                    path.display()
                ));
            }
            seen.push((flag, key));
        }
        Ok(())
    }

    pub fn stdout() -> Output {
        Output {
            target: Target::Stdout(BufWriter::with_capacity(BUFFER, io::stdout())),
        }
    }

    /// The destination, for messages.
    pub fn path(&self) -> Option<&Path> {
        match &self.target {
            Target::Stdout(_) | Target::Special(_) => None,
            Target::File { path, .. } => Some(path),
        }
    }

    /// Flushes and, for a file, renames the temporary file over the destination.
    /// Dropping an `Output` without committing discards what was written to a file.
    pub fn commit(self) -> io::Result<()> {
        match self.target {
            Target::Stdout(mut w) => w.flush(),
            Target::Special(mut w) => w.flush(),
            Target::File { path, temp } => {
                // The rename makes the file appear whole or not at all if the tool fails or is
                // killed. There is no fsync: like sort -o, this does not guard against power
                // loss, and an fsync costs a third of top-parse's time on large outputs.
                let temp = temp.into_inner().map_err(io::IntoInnerError::into_error)?;
                temp.persist(&path).map_err(|e| e.error)?;
                Ok(())
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.target {
            Target::Stdout(w) => w.write(buf),
            Target::Special(w) => w.write(buf),
            Target::File { temp, .. } => temp.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.target {
            Target::Stdout(w) => w.write_all(buf),
            Target::Special(w) => w.write_all(buf),
            Target::File { temp, .. } => temp.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.target {
            Target::Stdout(w) => w.flush(),
            Target::Special(w) => w.flush(),
            Target::File { temp, .. } => temp.flush(),
        }
    }
}

/// A duration as the tools take it: a number of seconds (`300`, `1.5`), or a number with one of
/// `ns us µs ms s m h` (`30s`, `5m`, `250ms`). `None` for anything else, negative or not finite
/// values, and values beyond what a `Duration` holds.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    const UNITS: [(&str, f64); 7] = [
        ("ns", 1e-9),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ];
    let text = text.trim();
    let (number, scale) = UNITS
        .iter()
        .find_map(|(unit, scale)| text.strip_suffix(unit).map(|n| (n, *scale)))
        .unwrap_or((text, 1.0));
    let value: f64 = number.parse().ok()?;
    std::time::Duration::try_from_secs_f64(value * scale).ok()
}

/// The workspace's crates, as tracing names their targets.
const OUR_CRATES: [&str; 7] = [
    "compare",
    "kubesim",
    "meshbench_cli",
    "meshbench_formats",
    "sample_app",
    "top_parse",
    "trafficgen",
];

/// Logging flags every tool accepts.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct LogArgs {
    /// More log output on stderr (-v info, -vv debug, -vvv trace; libraries' logs from -v on);
    /// RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl LogArgs {
    /// The filter `-v`/`-q` stand for: meshbench's own crates at the chosen level, libraries
    /// one level quieter, and silent by default. A library's failure reaches the user as the
    /// tool's own error message, so its log line (kube's "failed with error …") only repeats it.
    pub fn directives(self) -> String {
        let (ours, libraries) = match (self.quiet, self.verbose) {
            (true, _) => ("error", "off"),
            (false, 0) => ("warn", "off"),
            (false, 1) => ("info", "warn"),
            (false, 2) => ("debug", "info"),
            (false, _) => ("trace", "trace"),
        };
        let mut directives = libraries.to_owned();
        for krate in OUR_CRATES {
            directives.push_str(&format!(",{krate}={ours}"));
        }
        directives
    }

    /// Installs a tracing subscriber writing to stderr (coloured only on a terminal).
    pub fn init(self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(self.directives()));
        // A second init (tests calling run twice) is harmless: keep the first subscriber.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(io::stderr)
            .with_ansi(io::stderr().is_terminal())
            .with_target(false)
            .without_time()
            .try_init();
    }
}

/// An error that knows its exit code.
pub trait Failure: std::error::Error {
    /// 1 by default: the work failed or the input was bad.
    fn exit_code(&self) -> u8 {
        1
    }
}

/// Ends `main`: nothing on success; otherwise `tool: error: …` with each cause on its own line,
/// and the error's exit code. A closed stdout (`| head`) exits 0 quietly.
pub fn exit<E: Failure + 'static>(tool: &str, result: Result<(), E>) -> ExitCode {
    let Err(err) = result else {
        return ExitCode::SUCCESS;
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut chain = Vec::new();
    while let Some(e) = source {
        if e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
        {
            return ExitCode::SUCCESS;
        }
        chain.push(e.to_string());
        source = e.source();
    }
    let _ = writeln!(io::stderr().lock(), "{}", message(tool, &chain));
    ExitCode::from(err.exit_code())
}

/// `tool: error: …` and a `caused by:` line per cause, leaving out causes that a line above
/// already spells out (libraries often repeat their source in their own message).
fn message(tool: &str, chain: &[String]) -> String {
    let mut text = format!("{tool}: error: {}", chain[0]);
    let mut shown: Vec<&str> = vec![&chain[0]];
    for cause in &chain[1..] {
        if !shown.iter().any(|line| line.contains(cause.as_str())) {
            text.push_str("\n  caused by: ");
            text.push_str(cause);
            shown.push(cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_tells_a_silent_pipe_from_one_with_data_an_ended_one_and_a_file() {
        let (reader, mut writer) = io::pipe().unwrap();
        let pipe = Readiness::of(reader.as_fd(), None).unwrap();
        assert!(pipe.may_wait());
        assert!(!pipe.ready_within(Duration::ZERO));
        assert!(!pipe.ready_within(Duration::from_millis(5)));
        // Data that comes while it waits ends the wait.
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            writer.write_all(b"row\n").unwrap();
            writer
        });
        let started = std::time::Instant::now();
        assert!(pipe.ready_within(Duration::from_secs(10)));
        assert!(started.elapsed() < Duration::from_secs(5));
        // Still ready while the row is unread, the writer still there.
        let _writer = late.join().unwrap();
        assert!(pipe.ready_within(Duration::ZERO));

        // A pipe whose writer is gone is ready: the read returns its end.
        let (reader, writer) = io::pipe().unwrap();
        drop(writer);
        let ended = Readiness::of(reader.as_fd(), None).unwrap();
        assert!(ended.ready_within(Duration::ZERO));

        let file = Readiness::of(tempfile::tempfile().unwrap().as_fd(), None).unwrap();
        assert!(!file.may_wait());
        assert!(file.ready_within(Duration::ZERO));
        assert!(Readiness::always().ready_within(Duration::MAX));
    }

    #[test]
    fn ctrl_c_ends_a_watched_input_even_while_its_writer_is_silent() {
        use std::io::Read as _;
        let (reader, mut writer) = io::pipe().unwrap();
        let interrupt = Interrupt {
            caught: Arc::new(AtomicUsize::new(0)),
        };
        let readiness = Readiness::of(reader.as_fd(), Some(&interrupt)).unwrap();
        let mut watched = Watched {
            inner: reader,
            readiness: readiness.clone(),
        };
        // Data reads as ever.
        writer.write_all(b"row\n").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(watched.read(&mut buf).unwrap(), 4);
        // Then nothing comes, the writer still there: Ctrl-C ends the wait, as the end of input.
        let waiting = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let n = watched.read(&mut buf).unwrap();
            (n, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!readiness.interrupted());
        interrupt.caught.store(2, Ordering::Relaxed);
        let (n, waited) = waiting.join().unwrap();
        assert_eq!(n, 0);
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert!(readiness.interrupted());
        drop(writer);
    }

    #[test]
    fn libraries_log_only_when_asked() {
        let at = |quiet, verbose| LogArgs { verbose, quiet }.directives();
        assert!(
            at(false, 0).starts_with("off,compare=warn,"),
            "{}",
            at(false, 0)
        );
        assert!(at(true, 0).starts_with("off,") && at(true, 0).ends_with("trafficgen=error"));
        assert!(at(false, 1).starts_with("warn,") && at(false, 1).contains("top_parse=info"));
        assert!(at(false, 2).starts_with("info,") && at(false, 2).contains("kubesim=debug"));
        assert!(at(false, 3).starts_with("trace,") && at(false, 3).contains("sample_app=trace"));
        for (q, v) in [(true, 0), (false, 0), (false, 1), (false, 2), (false, 5)] {
            let filter = tracing_subscriber::EnvFilter::try_new(at(q, v));
            assert!(filter.is_ok(), "{}", at(q, v));
        }
    }

    #[test]
    fn output_is_invisible_until_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        let mut out = Output::create(path.to_str().unwrap()).unwrap();
        out.write_all(b"partial").unwrap();
        assert!(!path.exists());
        drop(out);
        assert!(!path.exists(), "dropped output must not appear");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temp file left behind"
        );

        let mut out = Output::create(path.to_str().unwrap()).unwrap();
        out.write_all(b"whole\n").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "whole\n");
    }

    #[test]
    fn a_directory_is_refused_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let err = Output::create(dir.path().to_str().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory);
        assert!(err.to_string().contains("it is a directory"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn causes_already_said_are_left_out() {
        let chain = |c: &[&str]| c.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            message(
                "t",
                &chain(&[
                    "cannot build a client",
                    "auth error: exec failed",
                    "exec failed"
                ])
            ),
            "t: error: cannot build a client\n  caused by: auth error: exec failed"
        );
        assert_eq!(
            message("t", &chain(&["x.csv: cannot read: gone", "gone"])),
            "t: error: x.csv: cannot read: gone"
        );
        assert_eq!(
            message("t", &chain(&["a", "b", "c"])),
            "t: error: a\n  caused by: b\n  caused by: c"
        );
    }

    #[test]
    fn a_missing_directory_is_reported_without_the_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("rows.csv");
        let err = Output::create(path.to_str().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!err.to_string().contains(".tmp"), "{err}");
    }

    #[test]
    fn commit_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "old").unwrap();
        let mut out = Output::create(path.to_str().unwrap()).unwrap();
        out.write_all(b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn an_output_file_has_the_permissions_a_shell_redirect_gives_it() {
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // A new file: what File::create makes here (0666 less this process's umask).
        let reference = dir.path().join("reference");
        File::create(&reference).unwrap();
        let new = dir.path().join("new.csv");
        let mut out = Output::create(new.to_str().unwrap()).unwrap();
        out.write_all(b"rows").unwrap();
        out.commit().unwrap();
        assert_eq!(mode(&new), mode(&reference));
        // A file replaced keeps its own.
        let kept = dir.path().join("kept.csv");
        std::fs::write(&kept, "old").unwrap();
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut out = Output::create(kept.to_str().unwrap()).unwrap();
        out.write_all(b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(mode(&kept), 0o640);
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("300"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("100us"), Some(Duration::from_micros(100)));
        for bad in ["", "x", "-1", "inf", "NaN", "1e300s", "5 minutes"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn whole_durations_read_exactly_in_every_unit(n in 0u64..1_000_000, unit in 0usize..7) {
            let (suffix, nanos) = [
                ("ns", 1), ("us", 1_000), ("µs", 1_000), ("ms", 1_000_000),
                ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000),
            ][unit];
            let read = parse_duration(&format!("{n}{suffix}")).unwrap();
            let expected = std::time::Duration::from_nanos(n * nanos);
            // Through f64 seconds: within a nanosecond for every value here.
            let off = read.abs_diff(expected);
            proptest::prop_assert!(off <= std::time::Duration::from_nanos(1), "{n}{suffix}: {read:?}");
        }

        #[test]
        fn durations_never_panic(text in "\\PC{0,24}") {
            let _ = parse_duration(&text);
        }
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_written_in_place_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let reader_path = fifo.clone();
        let reader = std::thread::spawn(move || std::fs::read_to_string(reader_path).unwrap());
        let mut out = Output::create(fifo.to_str().unwrap()).unwrap();
        out.write_all(b"through the pipe\n").unwrap();
        out.commit().unwrap();
        assert_eq!(reader.join().unwrap(), "through the pipe\n");
        let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "the FIFO must still be a FIFO");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file"
        );
    }

    #[test]
    fn dash_means_stdio() {
        assert_eq!(Input::from_arg("-"), Input::Stdin);
        assert_eq!(Input::from_arg("-").to_string(), "<stdin>");
        assert!(Output::create("-").unwrap().path().is_none());
    }
}
