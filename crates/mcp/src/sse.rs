//! Server-Sent Events frames to JSON events.

use serde_json::Value;

/// Splits a byte stream into events: the JSON `data:` of each complete
/// frame (comments and keep-alives are skipped).
#[derive(Debug, Default)]
pub(crate) struct Frames {
    buffer: Vec<u8>,
}

impl Frames {
    /// Takes `chunk`; returns the events it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<Value> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = frame_end(&self.buffer) {
            let frame: Vec<u8> = self.buffer.drain(..end.0 + end.1).collect();
            let text = String::from_utf8_lossy(&frame[..end.0]);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if let Ok(event) = serde_json::from_str(&data.join("\n")) {
                events.push(event);
            }
        }
        events
    }
}

/// Where the first frame ends, and the length of its blank-line separator.
fn frame_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_chunks_are_joined_and_comments_skipped() {
        let mut frames = Frames::default();
        assert!(frames.push(b": keep-alive\n\nid: 3\nevent: context.updated\ndata: {\"rev").is_empty());
        let events = frames.push(b"ision\": 3}\n\nid: 4\ndata: {\"revision\": 4}\r\n\r\n");
        assert_eq!(events, vec![serde_json::json!({"revision": 3}), serde_json::json!({"revision": 4})]);
    }
}
