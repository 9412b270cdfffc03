//! The bounded tail of a command's output (for an error message) or of a container's log.
//!
//! Keeps the last complete lines (by default [`EXEC_TAIL_LINES`], each cut at
//! [`EXEC_TAIL_BYTES`], that much in all) and the line in progress; output of megabytes, with
//! or without newlines, costs at most the bounds while it streams in. A `\r` rewinds the line
//! (progress bars), so only what the line ended with is kept.

use std::collections::VecDeque;

use super::super::{EXEC_TAIL_BYTES, EXEC_TAIL_LINES};

#[derive(Debug)]
pub(super) struct Tail {
    lines: VecDeque<String>,
    partial: Vec<u8>,
    /// Bytes held in `lines`.
    held: usize,
    max_lines: usize,
    line_bytes: usize,
    total_bytes: usize,
}

impl Default for Tail {
    fn default() -> Self {
        Self::new(EXEC_TAIL_LINES, EXEC_TAIL_BYTES, EXEC_TAIL_BYTES)
    }
}

impl Tail {
    /// At most `max_lines` lines, each cut at `line_bytes`, `total_bytes` in all.
    pub(super) fn new(max_lines: usize, line_bytes: usize, total_bytes: usize) -> Self {
        Self {
            lines: VecDeque::new(),
            partial: Vec::new(),
            held: 0,
            max_lines,
            line_bytes,
            total_bytes,
        }
    }

    pub(super) fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (line, rest, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            for (i, segment) in line.split(|&b| b == b'\r').enumerate() {
                if i > 0 && !segment.is_empty() {
                    self.partial.clear();
                }
                let room = self.line_bytes.saturating_sub(self.partial.len());
                self.partial
                    .extend_from_slice(&segment[..segment.len().min(room)]);
            }
            if ended {
                self.end_line();
            }
            bytes = rest;
        }
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        while !self.lines.is_empty()
            && (self.lines.len() >= self.max_lines || self.held + line.len() > self.total_bytes)
        {
            if let Some(old) = self.lines.pop_front() {
                self.held -= old.len();
            }
        }
        if self.max_lines > 0 {
            self.held += line.len();
            self.lines.push_back(line);
        }
    }

    /// The kept lines, the unfinished one last, cut to [`EXEC_TAIL_BYTES`] in all (the
    /// newest kept).
    pub(super) fn into_lines(mut self) -> Vec<String> {
        if !self.partial.is_empty() {
            self.end_line();
        }
        let mut budget = self.total_bytes;
        let mut out = VecDeque::new();
        for line in self.lines.into_iter().rev() {
            if line.len() > budget {
                break;
            }
            budget -= line.len();
            out.push_front(line);
        }
        out.into()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.partial.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_within_the_bounds() {
        let mut t = Tail::default();
        for i in 0..25 {
            t.push(format!("line {i}\n").as_bytes());
        }
        t.push(b"no newline");
        let lines = t.into_lines();
        assert_eq!(lines.len(), EXEC_TAIL_LINES);
        assert_eq!(lines.first().map(String::as_str), Some("line 16"));
        assert_eq!(lines.last().map(String::as_str), Some("no newline"));

        let mut t = Tail::default();
        t.push(&vec![b'x'; 10 * EXEC_TAIL_BYTES]);
        t.push(b"\nend\n");
        let lines = t.into_lines();
        assert_eq!(lines, vec!["end".to_owned()], "a 20 KiB line does not fit");

        let mut t = Tail::default();
        t.push(b"progress 10%\rprogress 99%\rdone\nsplit ");
        t.push(b"across chunks\n");
        assert_eq!(t.into_lines(), vec!["done", "split across chunks"]);
        assert!(Tail::default().is_empty());
    }

    #[test]
    fn a_log_tail_holds_no_more_than_its_bounds_while_it_streams() {
        // 2,000 lines of 16 KiB (Docker's longest log entry) would be 32 MiB.
        let mut t = Tail::new(2000, 16 << 10, 1 << 20);
        let line = vec![b'y'; 16 << 10];
        for _ in 0..2000 {
            t.push(&line);
            t.push(b"\n");
            assert!(t.held <= 1 << 20, "{} bytes held", t.held);
        }
        t.push(b"last\n");
        let lines = t.into_lines();
        assert_eq!(lines.last().map(String::as_str), Some("last"));
        assert!(lines.iter().map(String::len).sum::<usize>() <= 1 << 20);
        assert_eq!(lines.len(), 64, "63 long lines and the last fit in 1 MiB");
    }
}
