//! Any bytes as the answers on an HTTP/1.1 connection, delivered in reads of any size: the lean
//! client's parser ends each in an answer, a wait for more, or an error; never a panic, never
//! more bytes used than it was given, and an answer's end found whatever the reads' sizes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trafficgen::h1::{Answer, Error};

/// Feeds `stream` in reads of `read` bytes, carrying unused bytes over; the answers' statuses,
/// or the first error.
fn read(head: bool, stream: &[u8], read: usize) -> Result<Vec<u16>, String> {
    let mut answer = Answer::new(head);
    let mut pending: Vec<u8> = Vec::new();
    let mut done = Vec::new();
    for part in stream.chunks(read) {
        pending.extend_from_slice(part);
        loop {
            let fed = answer.feed(&pending).map_err(|e: Error| e.to_string())?;
            assert!(fed.used <= pending.len());
            pending.drain(..fed.used);
            match fed.done {
                Some(d) => done.push(d.status),
                None => break,
            }
        }
    }
    Ok(done)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let head = first & 1 == 1;
    let size = usize::from(first >> 1).max(1);
    let in_pieces = read(head, stream, size);
    // All at once: the same answers, unless an error came first either way.
    let whole = read(head, stream, stream.len().max(1));
    if let (Ok(a), Ok(b)) = (&in_pieces, &whole) {
        assert_eq!(a, b, "reads of {size} bytes against one read");
    }
});
