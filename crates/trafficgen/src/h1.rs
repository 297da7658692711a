//! A lean HTTP/1.1 client connection: the request's bytes made once per run, the answer read
//! with httparse and its body skipped in place, one task per connection.
//!
//! hyper's client spends about 10,000 instructions per answer that a load generator has no use
//! for: each answer's head parsed into a `HeaderMap` of `Bytes` values, the request and the
//! answer handed between the caller's task and the connection's driver task through channels,
//! and a new read buffer per answer. That is what kept trafficgen above wrk's CPU per request
//! (docs/benchmarks.md). This module does the same framing as hyper's client (RFC 9112 §6.3,
//! with hyper's choices where the RFC leaves one) and no more. Requests that need hyper's
//! encoding (a user's Transfer-Encoding header, CONNECT) and HTTP/2 still go through hyper
//! (`--h1-client hyper` sends everything through it).
//!
//! The parser is sans-IO ([`Answer`]): fed whatever bytes have arrived, it says how many it
//! used and whether the answer is complete, so the fuzz target and the property tests drive it
//! without a socket.

use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;

use http::header::{CONNECTION, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Uri};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The most header lines an answer may have (hyper's default too).
pub const MAX_HEADERS: usize = 100;

/// The most bytes an answer's head, a chunk-size line or a trailer line may take (hyper's
/// default read-buffer limit).
pub const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;

/// The read buffer's starting size. It grows for a head that does not fit (to
/// [`MAX_HEAD_BYTES`]), and while reads fill it (to [`MAX_READ_BUFFER`]), so that a large body
/// takes few reads, as hyper's adaptive buffer does.
const READ_BUFFER: usize = 16 * 1024;

/// The most the read buffer grows to for bodies.
const MAX_READ_BUFFER: usize = 256 * 1024;

/// Why an answer could not be read.
#[derive(Debug)]
pub enum Error {
    /// Reading or writing the socket failed.
    Io(std::io::Error),
    /// The server closed the connection before the answer was complete (`begun`: whether any
    /// of it had arrived).
    Closed { begun: bool },
    /// The bytes are not an HTTP/1.x answer, or one this client cannot frame.
    Parse(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "connection error: {e}"),
            Error::Closed { begun: false } => {
                f.write_str("connection closed before an answer began")
            }
            Error::Closed { begun: true } => {
                f.write_str("connection closed before the answer was complete")
            }
            Error::Parse(problem) => write!(f, "invalid HTTP answer: {problem}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The error's kind in the summary's `errors_by_kind`, as `engine::classify` names hyper's.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Closed { .. } => "reset",
            Error::Io(e) if is_reset(e) => "reset",
            Error::Io(_) | Error::Parse(_) => "transport",
        }
    }

    pub fn is_parse(&self) -> bool {
        matches!(self, Error::Parse(_))
    }
}

/// Whether a socket error means the peer dropped the connection (the `reset` kind, for either
/// client).
pub(crate) fn is_reset(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        e.kind(),
        ConnectionReset | BrokenPipe | ConnectionAborted | UnexpectedEof
    )
}

fn parse_error(problem: impl Into<String>) -> Error {
    Error::Parse(problem.into())
}

/// Whether this client can send the plan's request as it is, byte for byte as hyper would.
/// hyper chunk-encodes a body under a user's `Transfer-Encoding` header and treats CONNECT as
/// an upgrade; those stay with hyper.
pub fn can_send(method: &Method, headers: &HeaderMap) -> bool {
    *method != Method::CONNECT && !headers.contains_key(TRANSFER_ENCODING)
}

/// Every request's bytes, made once: what hyper writes for the same request (its default
/// settings: names as given, lower case; no headers of its own when the body is empty or
/// its length is already given, which the plan does).
#[derive(Debug, Clone)]
pub struct Request {
    bytes: Vec<u8>,
    head: bool,
    close: bool,
}

impl Request {
    pub fn new(method: &Method, path: &Uri, headers: &HeaderMap, body: &[u8]) -> Request {
        let mut bytes = Vec::with_capacity(256 + body.len());
        bytes.extend_from_slice(method.as_str().as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(path.to_string().as_bytes());
        bytes.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in headers {
            bytes.extend_from_slice(name.as_str().as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(body);
        Request {
            bytes,
            head: *method == Method::HEAD,
            close: headers
                .get_all(CONNECTION)
                .iter()
                .any(|v| has_token(v.as_bytes(), b"close")),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Whether a comma-separated header value lists `token` (ASCII case aside).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Where the reader is in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// Body bytes still to come.
    Length(u64),
    ChunkSize,
    /// Bytes of the current chunk still to come.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Trailers,
    /// The body runs to the end of the connection.
    UntilClose,
}

/// A complete answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    pub status: u16,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
}

/// What [`Answer::feed`] made of the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// How many of them it used; the rest must be given again with more after them.
    pub used: usize,
    /// The answer, once complete. Bytes after it are not used.
    pub done: Option<Done>,
}

/// One answer being read.
#[derive(Debug, Clone)]
pub struct Answer {
    state: State,
    /// The request was HEAD: its answer has no body whatever its headers say.
    head: bool,
    status: u16,
    keep_alive: bool,
    /// Whether any byte of the answer has been used.
    begun: bool,
}

impl Answer {
    pub fn new(head_request: bool) -> Answer {
        Answer {
            state: State::Head,
            head: head_request,
            status: 0,
            keep_alive: false,
            begun: false,
        }
    }

    /// Uses what it can of `buf`, the bytes received and not yet used.
    ///
    /// # Errors
    /// When the bytes are not a valid answer, or a head or line is longer than
    /// [`MAX_HEAD_BYTES`] (`buf` that long, still incomplete).
    pub fn feed(&mut self, buf: &[u8]) -> Result<Fed, Error> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            let (n, done) = self.step(rest)?;
            used += n;
            if n > 0 {
                self.begun = true;
            }
            if let Some(done) = done {
                return Ok(Fed {
                    used,
                    done: Some(done),
                });
            }
            if n == 0 {
                if rest.len() >= MAX_HEAD_BYTES {
                    return Err(parse_error(format!(
                        "a head or line over {MAX_HEAD_BYTES} bytes"
                    )));
                }
                return Ok(Fed { used, done: None });
            }
        }
    }

    /// The connection has ended, with `pending` bytes received and not used: completes an
    /// answer that runs to the close.
    ///
    /// # Errors
    /// [`Error::Closed`] when the answer is not complete without more bytes.
    pub fn end(&mut self, pending: bool) -> Result<Done, Error> {
        match self.state {
            State::UntilClose => Ok(self.finish(false)),
            _ => Err(Error::Closed {
                begun: self.begun || pending,
            }),
        }
    }

    fn finish(&mut self, keep_alive: bool) -> Done {
        let done = Done {
            status: self.status,
            keep_alive: keep_alive && self.keep_alive,
        };
        *self = Answer::new(self.head);
        done
    }

    /// One step: how many bytes it used (0: it needs more), and the answer if it is complete.
    fn step(&mut self, buf: &[u8]) -> Result<(usize, Option<Done>), Error> {
        match self.state {
            State::Head => self.head(buf),
            State::Length(left) => {
                let n = take(left, buf.len());
                if n as u64 == left {
                    return Ok((n, Some(self.finish(true))));
                }
                self.state = State::Length(left - n as u64);
                Ok((n, None))
            }
            State::ChunkSize => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((n, 0))) => {
                    self.state = State::Trailers;
                    Ok((n, None))
                }
                Ok(httparse::Status::Complete((n, size))) => {
                    self.state = State::ChunkData(size);
                    Ok((n, None))
                }
                Ok(httparse::Status::Partial) => Ok((0, None)),
                Err(httparse::InvalidChunkSize) => Err(parse_error("invalid chunk size line")),
            },
            State::ChunkData(left) => {
                let n = take(left, buf.len());
                self.state = if n as u64 == left {
                    State::ChunkEnd
                } else {
                    State::ChunkData(left - n as u64)
                };
                Ok((n, None))
            }
            State::ChunkEnd => match buf {
                [b'\r', b'\n', ..] => {
                    self.state = State::ChunkSize;
                    Ok((2, None))
                }
                [] | [b'\r'] => Ok((0, None)),
                _ => Err(parse_error("no CRLF after a chunk's data")),
            },
            State::Trailers => match memchr::memchr(b'\n', buf) {
                // The blank line that ends the trailers (CRLF, or a bare LF as RFC 9112 §2.2
                // lets a recipient accept); any other line is a trailer field, skipped.
                Some(0) => Ok((1, Some(self.finish(true)))),
                Some(1) if buf[0] == b'\r' => Ok((2, Some(self.finish(true)))),
                Some(i) => Ok((i + 1, None)),
                None => Ok((0, None)),
            },
            State::UntilClose => Ok((buf.len(), None)),
        }
    }

    /// Parses a head, and decides how the body is framed, as hyper's client does.
    fn head(&mut self, buf: &[u8]) -> Result<(usize, Option<Done>), Error> {
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            buf,
            &mut headers,
        );
        let n = match parsed {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok((0, None)),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(parse_error(format!("over {MAX_HEADERS} header lines")));
            }
            Err(e) => return Err(parse_error(e.to_string())),
        };
        let status = response.code.unwrap_or_default();
        let http10 = response.version == Some(0);
        match status {
            // An informational answer comes before the real one, which follows.
            100 | 102..=199 => return Ok((n, None)),
            101 => {
                return Err(parse_error(
                    "101 Switching Protocols to a request without Upgrade",
                ));
            }
            _ => {}
        }
        let mut keep_alive = !http10;
        let mut chunked = None;
        let mut length: Option<u64> = None;
        let mut bad_length = false;
        for header in response.headers.iter() {
            let name = header.name.as_bytes();
            if name.eq_ignore_ascii_case(b"connection") {
                if has_token(header.value, b"close") {
                    keep_alive = false;
                } else if http10 && has_token(header.value, b"keep-alive") {
                    keep_alive = true;
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                // The last Transfer-Encoding line's last coding decides (hyper's reading).
                let last = header
                    .value
                    .rsplit(|&b| b == b',')
                    .next()
                    .unwrap_or_default();
                chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"content-length") {
                // One value, or the same value repeated (in one line or several).
                for value in header.value.split(|&b| b == b',') {
                    match (parse_length(value.trim_ascii()), length) {
                        (Some(v), None) => length = Some(v),
                        (Some(v), Some(seen)) if v == seen => {}
                        _ => bad_length = true,
                    }
                }
            }
        }
        self.status = status;
        self.keep_alive = keep_alive;
        self.begun = true;
        if self.head || status == 204 || status == 304 {
            return Ok((n, Some(self.finish(true))));
        }
        self.state = match (chunked, length) {
            (Some(_), _) if http10 => {
                return Err(parse_error("Transfer-Encoding in an HTTP/1.0 answer"));
            }
            (Some(true), _) => State::ChunkSize,
            (Some(false), _) => State::UntilClose,
            (None, _) if bad_length => {
                return Err(parse_error("invalid or conflicting Content-Length"));
            }
            (None, Some(0)) => return Ok((n, Some(self.finish(true)))),
            (None, Some(len)) => State::Length(len),
            (None, None) => State::UntilClose,
        };
        Ok((n, None))
    }
}

/// How many of `available` bytes to take of a body part with `left` bytes still to come.
fn take(left: u64, available: usize) -> usize {
    usize::try_from(left).map_or(available, |left| left.min(available))
}

/// A Content-Length value: decimal digits only, as hyper reads them, within `u64`.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A connection: a byte stream, the request it sends, and what has been read from it but not
/// yet used.
#[derive(Debug)]
pub struct Conn<S> {
    io: S,
    request: Arc<Request>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    closed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S, request: Arc<Request>) -> Conn<S> {
        Conn {
            io,
            request,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            closed: false,
        }
    }

    /// Whether this connection may not carry another request: the last answer said so, or
    /// ran to the close, or the server sent bytes no request asked for.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Sends the request and reads its whole answer (discarding the body); its status.
    ///
    /// # Errors
    /// When writing or reading fails, or the answer is not valid HTTP/1.x. The connection must
    /// not be used again after an error (nor after the future is dropped before it ended).
    pub async fn exchange(&mut self) -> Result<u16, Error> {
        let request = &*self.request;
        self.closed = true; // until the answer is complete
        self.io.write_all(&request.bytes).await.map_err(Error::Io)?;
        self.io.flush().await.map_err(Error::Io)?;
        let mut answer = Answer::new(request.head);
        loop {
            if self.end > self.start {
                let fed = answer.feed(&self.buf[self.start..self.end])?;
                self.start += fed.used;
                if let Some(done) = fed.done {
                    // Anything after the answer was not asked for: the connection's framing
                    // can no longer be trusted.
                    self.closed = !done.keep_alive || request.close || self.start < self.end;
                    self.start = 0;
                    self.end = 0;
                    return Ok(done.status);
                }
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            } else if self.end == self.buf.len() {
                if self.start > 0 {
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                } else {
                    // A head longer than the buffer (the parser refuses one over the limit).
                    let size = (self.buf.len() * 2).min(MAX_HEAD_BYTES);
                    self.buf.resize(size, 0);
                }
            }
            let room = self.buf.len() - self.end;
            let n = self
                .io
                .read(&mut self.buf[self.end..])
                .await
                .map_err(Error::Io)?;
            if n == 0 {
                return answer.end(self.end > self.start).map(|done| done.status);
            }
            self.end += n;
            if n == room && self.buf.len() < MAX_READ_BUFFER {
                // More was probably waiting: read more at a time from now on.
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
    }
}

/// A byte stream over a TCP socket, which the runtime watches with epoll.
pub trait OverTcp {
    fn tcp(&self) -> &TcpStream;
}

impl OverTcp for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl OverTcp for tokio_rustls::client::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

impl<S: OverTcp> Conn<S> {
    /// Whether the server has closed this connection since its last answer, as the runtime last
    /// heard from epoll (no system call). This client does not read between answers, as hyper
    /// does, so a connection the server closed while it waited (a keep-alive timeout) is caught
    /// here, before the next request is charged a reset.
    pub fn peer_closed(&self) -> bool {
        use std::future::Future as _;
        use std::task::{Context, Poll, Waker};
        let ready = std::pin::pin!(self.io.tcp().ready(tokio::io::Interest::READABLE));
        match ready.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(r)) => r.is_read_closed(),
            Poll::Ready(Err(_)) => true,
            Poll::Pending => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `parts` in turn as a connection would deliver them (unused bytes carried over),
    /// then the end of the connection if `close`; the answers completed, and the bytes left.
    fn read_all(
        head_request: bool,
        parts: &[&[u8]],
        close: bool,
    ) -> Result<(Vec<Done>, usize), Error> {
        let mut answer = Answer::new(head_request);
        let mut pending = Vec::new();
        let mut done = Vec::new();
        for part in parts {
            pending.extend_from_slice(part);
            loop {
                let fed = answer.feed(&pending)?;
                pending.drain(..fed.used);
                match fed.done {
                    Some(d) => done.push(d),
                    None => break,
                }
                if pending.is_empty() {
                    break;
                }
            }
        }
        if close {
            match answer.end(!pending.is_empty()) {
                Ok(d) => done.push(d),
                Err(Error::Closed { begun: false }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((done, pending.len()))
    }

    fn one(bytes: &[u8]) -> Result<Done, Error> {
        let (done, left) = read_all(false, &[bytes], false)?;
        assert_eq!(left, 0, "bytes left over");
        assert_eq!(done.len(), 1, "answers: {done:?}");
        Ok(done[0])
    }

    fn ok(status: u16, keep_alive: bool) -> Done {
        Done { status, keep_alive }
    }

    /// Each of `cases` read alone is one answer, complete, with the status and keep-alive given.
    fn reads_as(cases: &[(&[u8], Done)]) {
        for &(bytes, want) in cases {
            assert_eq!(
                one(bytes).unwrap(),
                want,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    /// Bytes the parser refuses (as one read, connection left open).
    fn refused(bytes: &[u8]) -> Error {
        read_all(false, &[bytes], false).unwrap_err()
    }

    #[test]
    fn content_length() {
        reads_as(&[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                ok(200, true),
            ),
            (
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
                ok(404, true),
            ),
            // The same length twice, in one line or two, is one length.
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nhi",
                ok(200, true),
            ),
        ]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        for head in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            let e = refused(head);
            assert!(e.is_parse(), "{e}");
            assert_eq!(e.kind(), "transport");
        }
    }

    #[test]
    fn chunked() {
        let body = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
        // Trailers are skipped; a Content-Length beside chunked is ignored.
        let trailers =
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                         2\r\nhi\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n";
        reads_as(&[(body, ok(200, true)), (trailers, ok(200, true))]);
        for bad in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiX\r\n",
        ] {
            assert!(refused(bad).is_parse());
        }
    }

    #[test]
    fn until_close() {
        // Neither length nor chunked, or a last coding other than chunked: the body runs to
        // the close, and the connection cannot be used again.
        for head in [
            &b"HTTP/1.1 200 OK\r\n\r\nsome body"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nxyz",
        ] {
            let (done, left) = read_all(false, &[head], true).unwrap();
            assert_eq!((done, left), (vec![ok(200, false)], 0));
        }
        assert!(matches!(
            read_all(false, &[b"HTTP/1.1 200 OK\r\n\r\n"], false).unwrap(),
            (d, 0) if d.is_empty()
        ));
    }

    #[test]
    fn no_body() {
        // HEAD, 204 and 304 have none, whatever the headers say.
        let (done, left) = read_all(
            true,
            &[b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"],
            false,
        )
        .unwrap();
        assert_eq!((done, left), (vec![ok(200, true)], 0));
        reads_as(&[
            (
                b"HTTP/1.1 204 No Content\r\nContent-Length: 100\r\n\r\n",
                ok(204, true),
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
                ok(304, true),
            ),
        ]);
    }

    #[test]
    fn informational_answers_are_skipped() {
        let both = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
                     HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        reads_as(&[(both, ok(201, true))]);
        assert!(refused(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").is_parse());
    }

    #[test]
    fn keep_alive() {
        reads_as(&[
            (
                b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n",
                ok(200, false),
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                ok(200, false),
            ),
            (
                b"HTTP/1.0 200 OK\r\nConnection: foo, Keep-Alive\r\nContent-Length: 0\r\n\r\n",
                ok(200, true),
            ),
        ]);
        assert!(refused(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_parse());
    }

    #[test]
    fn not_http() {
        for bad in [
            &b"\x15\x03\x03\x00\x02\x02\x50"[..],
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/2 200\r\n\r\n",
        ] {
            let e = refused(bad);
            assert!(e.is_parse(), "{e}");
        }
    }

    #[test]
    fn closed_early() {
        let cases: [(&[u8], bool); 4] = [
            (b"", false),
            (b"HTTP/1.1 200 OK\r\nContent-Le", true),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhalf", true),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n",
                true,
            ),
        ];
        for (bytes, begun) in cases {
            let mut answer = Answer::new(false);
            let fed = answer.feed(bytes).unwrap();
            assert_eq!(fed.done, None);
            let e = answer.end(fed.used < bytes.len()).unwrap_err();
            assert!(
                matches!(e, Error::Closed { begun: b } if b == begun),
                "{bytes:?}: {e}"
            );
            assert_eq!(e.kind(), "reset");
        }
    }

    #[test]
    fn overlong_heads_are_refused() {
        let mut head = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        head.resize(MAX_HEAD_BYTES + 10, b'a');
        let e = Answer::new(false).feed(&head).unwrap_err();
        assert!(e.to_string().contains("over"), "{e}");
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let e = Answer::new(false).feed(&many).unwrap_err();
        assert!(e.to_string().contains("header lines"), "{e}");
    }

    #[test]
    fn request_bytes() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.com".parse().unwrap());
        headers.append("x-a", "1".parse().unwrap());
        headers.append("x-a", "2".parse().unwrap());
        headers.insert("content-length", "2".parse().unwrap());
        let request = Request::new(&Method::POST, &"/p?q=1".parse().unwrap(), &headers, b"hi");
        assert_eq!(
            request.bytes(),
            b"POST /p?q=1 HTTP/1.1\r\nhost: example.com\r\nx-a: 1\r\nx-a: 2\r\n\
              content-length: 2\r\n\r\nhi"
        );
        assert!(!request.close && !request.head);
        headers.insert("connection", "Close".parse().unwrap());
        assert!(Request::new(&Method::HEAD, &"/".parse().unwrap(), &headers, b"").close);
        assert!(can_send(&Method::GET, &headers));
        assert!(!can_send(&Method::CONNECT, &headers));
        headers.insert("transfer-encoding", "chunked".parse().unwrap());
        assert!(!can_send(&Method::POST, &headers));
    }

    /// Runs `request` on a connection whose server has already sent `answers` (and closed
    /// its end, if `close`); each exchange's status, and whether the connection ended closed.
    fn exchanges(answers: &[u8], close: bool, count: usize) -> (Vec<Result<u16, String>>, bool) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, mut server) = tokio::io::duplex(8 << 20);
            server.write_all(answers).await.unwrap();
            if close {
                server.shutdown().await.unwrap();
            }
            let request = Request::new(&Method::GET, &"/".parse().unwrap(), &HeaderMap::new(), b"");
            let mut conn = Conn::new(client, Arc::new(request));
            let mut statuses = Vec::new();
            for _ in 0..count {
                // Bounded: a miscounted body would wait for bytes that never come.
                let exchanged =
                    tokio::time::timeout(std::time::Duration::from_secs(10), conn.exchange());
                let result = exchanged.await.expect("an answer within 10 s");
                statuses.push(result.map_err(|e| e.to_string()));
            }
            (statuses, conn.closed())
        })
    }

    #[test]
    fn a_connection_reads_large_heads_and_bodies() {
        // A head over the first buffer, then a body of 3 MB: both read whole, and the
        // connection stays open. (One answer: a second sent before its request would be bytes
        // no request asked for, as the next test shows.)
        let mut answers = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        answers.resize(answers.len() + 40_000, b'h');
        answers.extend_from_slice(b"\r\nContent-Length: 3000000\r\n\r\n");
        answers.resize(answers.len() + 3_000_000, b'b');
        assert_eq!(exchanges(&answers, false, 1), (vec![Ok(200)], false));
    }

    #[test]
    fn a_connection_ends_when_the_answer_says_or_the_server_closes() {
        let answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(exchanges(answer, false, 1), (vec![Ok(200)], true));
        // Bytes after the answer that no request asked for: its framing is not to be trusted.
        let extra = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200";
        assert_eq!(exchanges(extra, false, 1), (vec![Ok(200)], true));
        // A body to the close completes at it.
        let to_close = b"HTTP/1.1 200 OK\r\n\r\nall of it";
        assert_eq!(exchanges(to_close, true, 1), (vec![Ok(200)], true));
        // A server that closes mid-answer, or before one.
        let (statuses, closed) =
            exchanges(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", true, 1);
        assert_eq!(
            statuses,
            [Err(
                "connection closed before the answer was complete".to_owned()
            )]
        );
        assert!(closed);
        let (statuses, _) = exchanges(b"", true, 1);
        assert_eq!(
            statuses,
            [Err("connection closed before an answer began".to_owned())]
        );
    }

    /// An answer, framed one of the ways a server may frame it.
    fn framed() -> impl Strategy<Value = (Vec<u8>, u16, bool)> {
        (
            prop_oneof![Just(200u16), Just(404), Just(503)],
            proptest::collection::vec(any::<u8>(), 0..300),
            1usize..40,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(status, body, chunk, chunked, close)| {
                let mut bytes = format!("HTTP/1.1 {status} X\r\nServer: t\r\n").into_bytes();
                if close {
                    bytes.extend_from_slice(b"Connection: close\r\n");
                }
                if chunked {
                    bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    for piece in body.chunks(chunk) {
                        bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                        bytes.extend_from_slice(piece);
                        bytes.extend_from_slice(b"\r\n");
                    }
                    bytes.extend_from_slice(b"0\r\n\r\n");
                } else {
                    bytes.extend_from_slice(
                        format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                    );
                    bytes.extend_from_slice(&body);
                }
                (bytes, status, !close)
            })
    }

    proptest! {
        /// However the bytes are split into reads, the same answers come out, each complete
        /// at its last byte and not before.
        #[test]
        fn any_split_reads_the_same(
            answers in proptest::collection::vec(framed(), 1..4),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let stream: Vec<u8> = answers.iter().flat_map(|a| a.0.clone()).collect();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            at.sort_unstable();
            let mut parts = Vec::new();
            let mut from = 0;
            for to in at.into_iter().chain([stream.len()]) {
                parts.push(&stream[from..to]);
                from = to;
            }
            let (done, left) = read_all(false, &parts, false).unwrap();
            let expected: Vec<Done> = answers.iter().map(|a| ok(a.1, a.2)).collect();
            prop_assert_eq!(done, expected);
            prop_assert_eq!(left, 0);
        }

        /// Arbitrary bytes end in an answer, a request for more, or an error; never a panic,
        /// and never more used than given.
        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut answer = Answer::new(false);
            if let Ok(fed) = answer.feed(&bytes) {
                prop_assert!(fed.used <= bytes.len());
            }
        }
    }
}
