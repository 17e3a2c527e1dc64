//! The Server-Sent Events parser of the LaunchDarkly stream: the events (or the error) do not
//! depend on how the body is cut into chunks. The first byte of the input picks the chunk
//! size; the rest is the body.

use sse::{SseEvent, SseParser};

/// The parser's own source file (`feature_launchdarkly::sse`), compiled here with a stand-in
/// for the one error its crate gives it: depending on `feature-launchdarkly` would bring its
/// TLS stack (a C library) into the instrumented build, for a file that uses nothing else.
#[path = "../../../crates/feature-launchdarkly/src/sse.rs"]
mod sse;

/// The stand-in for `feature_launchdarkly::LaunchDarklyError`.
mod error {
    /// The parser's only error.
    #[derive(Debug)]
    pub enum LaunchDarklyError {
        /// An event or line over the limit.
        EventTooLarge {
            /// The limit in bytes.
            #[allow(dead_code)]
            limit: usize,
        },
    }
}

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
