//! A parser of Server-Sent Events (the `text/event-stream` format), fed the body in chunks.
//!
//! It follows the event-stream interpretation rules: lines end with CR LF, LF or CR; a line
//! starting with `:` is a comment; `field: value` lines set `event`, append to `data` (one
//! line of data per `data:` line, joined by LF) or set `id`; other fields are ignored; a blank
//! line dispatches the event when it has data. A leading byte-order mark is dropped.
//!
//! Used by the streaming providers (LaunchDarkly's stream, the relay's SDK stream); it does no
//! I/O.
//!
//! ```
//! use feature_store::sse::SseParser;
//!
//! let mut p = SseParser::new(1024);
//! assert!(p.push(b"event: put\ndata: {\"a\"").unwrap().is_empty());
//! let events = p.push(b":1}\n\n").unwrap();
//! assert_eq!((events[0].event.as_str(), events[0].data.as_str()), ("put", "{\"a\":1}"));
//! ```

/// An event (or a line) larger than the parser's limit: the stream must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event on the stream exceeds {limit} bytes")]
pub struct EventTooLarge {
    /// The limit in bytes.
    pub limit: usize,
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type (`message` when the event named none).
    pub event: String,
    /// The data lines joined by LF.
    pub data: String,
    /// The last event id seen on the stream, if any.
    pub id: Option<String>,
}

/// An incremental event-stream parser.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    at_start: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
    limit: usize,
}

impl SseParser {
    /// A parser refusing events (and lines) larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SseParser {
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            event: String::new(),
            data: String::new(),
            has_data: false,
            id: None,
            limit,
        }
    }

    /// Feeds a chunk of the body; returns the events it completed, in order.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<SseEvent>, EventTooLarge> {
        let mut out = Vec::new();
        if self.at_start {
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            // Wait until the first bytes can be told apart from a byte-order mark.
            self.line.extend_from_slice(chunk);
            if self.line.len() < BOM.len() && BOM.starts_with(&self.line) {
                return Ok(out);
            }
            self.at_start = false;
            let held = std::mem::take(&mut self.line);
            let rest = held.strip_prefix(BOM).unwrap_or(&held);
            self.feed(rest, &mut out)?;
            return Ok(out);
        }
        if self.after_cr {
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
            self.after_cr = false;
        }
        self.feed(chunk, &mut out)?;
        Ok(out)
    }

    fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), EventTooLarge> {
        let mut i = 0;
        while i < chunk.len() {
            let Some(off) = chunk[i..].iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.line.extend_from_slice(&chunk[i..]);
                self.check_size()?;
                return Ok(());
            };
            let end = i + off;
            self.line.extend_from_slice(&chunk[i..end]);
            self.check_size()?;
            let line = std::mem::take(&mut self.line);
            if let Some(ev) = self.line_done(&line) {
                out.push(ev);
            }
            i = end + 1;
            if chunk[end] == b'\r' {
                if i < chunk.len() {
                    if chunk[i] == b'\n' {
                        i += 1;
                    }
                } else {
                    self.after_cr = true;
                }
            }
        }
        Ok(())
    }

    fn check_size(&self) -> Result<(), EventTooLarge> {
        if self.line.len() + self.data.len() > self.limit {
            return Err(EventTooLarge { limit: self.limit });
        }
        Ok(())
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.find(':') {
            Some(p) => {
                let v = &line[p + 1..];
                (&line[..p], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&line[..], ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if !std::mem::replace(&mut self.has_data, false) {
            return None;
        }
        Some(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 20);
        chunks.iter().flat_map(|c| p.push(c).unwrap()).collect()
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
            id: None,
        }
    }

    #[test]
    fn events_with_types_and_multi_line_data() {
        let got = parse_all(&[b"event: put\ndata: {\"a\":\ndata:1}\n\nevent:patch\ndata:x\n\n"]);
        assert_eq!(got, vec![ev("put", "{\"a\":\n1}"), ev("patch", "x")]);
    }

    #[test]
    fn comments_unknown_fields_and_empty_events_are_ignored() {
        let got = parse_all(&[b": heartbeat\n\nretry: 10\nfoo: bar\n\nevent: x\n\ndata: d\n\n"]);
        // The `event: x` block has no data: nothing is dispatched and its type is forgotten.
        assert_eq!(got, vec![ev("message", "d")]);
    }

    #[test]
    fn every_line_ending_and_any_chunking() {
        let text = b"event: put\r\ndata: 1\r\rdata: 2\n\nevent: patch\rdata:  3\r\n\r\n";
        let want = vec![ev("put", "1"), ev("message", "2"), ev("patch", " 3")];
        assert_eq!(parse_all(&[text]), want);
        // Byte by byte, including a CR LF split across chunks.
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(parse_all(&bytes), want);
        for split in 0..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(parse_all(&[a, b]), want, "split at {split}");
        }
    }

    #[test]
    fn field_without_colon_and_data_without_space() {
        let got = parse_all(&[b"data\ndata\n\ndata:x:y\n\n"]);
        assert_eq!(got, vec![ev("message", "\n"), ev("message", "x:y")]);
    }

    #[test]
    fn byte_order_mark_is_dropped_once_and_utf8_survives_chunking() {
        let text = "\u{feff}data: é😀\n\n\u{feff}data: z\n\n".as_bytes();
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        let got = parse_all(&bytes);
        // A mark after the start is part of the next field's name: an unknown field.
        assert_eq!(got, vec![ev("message", "é😀")]);
    }

    #[test]
    fn ids_are_kept() {
        let got = parse_all(&[b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"]);
        let ids: Vec<Option<&str>> = got.iter().map(|e| e.id.as_deref()).collect();
        assert_eq!(ids, [Some("7"), Some("7"), Some("")]);
    }

    #[test]
    fn unterminated_event_is_not_dispatched() {
        assert!(parse_all(&[b"event: put\ndata: {}\n"]).is_empty());
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut p = SseParser::new(16);
        assert!(p.push(b"data: 0123456789\n").is_ok());
        assert!(matches!(
            p.push(b"data: 0123456789\n"),
            Err(EventTooLarge { limit: 16 })
        ));
        let mut p = SseParser::new(16);
        assert!(p.push(&[b'a'; 40]).is_err());
    }
}
