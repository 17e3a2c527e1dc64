//! The Server-Sent Events parser of the streaming providers (`feature_store::sse`, used by the
//! LaunchDarkly stream and the relay): the events (or the error) do not
//! depend on how the body is cut into chunks. The first byte of the input picks the chunk
//! size; the rest is the body.

use feature_store::sse::{SseEvent, SseParser};

/// The event size limit: small, so the fuzzer reaches the refusal of oversized events.
const LIMIT: usize = 4096;

/// Feeds `body` in chunks of `size` bytes; the events until the first error, and whether
/// there was one.
fn run(body: &[u8], size: usize) -> (Vec<SseEvent>, bool) {
    let mut parser = SseParser::new(LIMIT);
    let mut events = Vec::new();
    for chunk in body.chunks(size.max(1)) {
        match parser.push(chunk) {
            Ok(mut ev) => events.append(&mut ev),
            Err(_) => return (events, true),
        }
    }
    (events, false)
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&first, body)) = data.split_first() else {
            return;
        };
        let (whole, whole_failed) = run(body, body.len());
        let (one, one_failed) = run(body, 1);
        let (cut, cut_failed) = run(body, usize::from(first % 16) + 1);
        for ev in &whole {
            assert!(ev.data.len() <= LIMIT, "an event larger than the limit");
            assert!(!ev.event.is_empty(), "an event without a type");
        }
        if !whole_failed && !one_failed && !cut_failed {
            assert_eq!(whole, one, "byte-at-a-time differs");
            assert_eq!(whole, cut, "chunks of {} differ", first % 16 + 1);
        } else {
            // An oversized event is refused however the body arrives.
            assert_eq!(whole_failed, one_failed, "refusal depends on chunking");
        }
    });
}
