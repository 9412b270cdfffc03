//! The bounded tail of a command's output, for an error message.
//!
//! Keeps the last [`EXEC_TAIL_LINES`] complete lines, each cut at [`EXEC_TAIL_BYTES`], and the
//! line in progress; a command writing megabytes without a newline costs at most that. A `\r`
//! rewinds the line (progress bars), so only what the line ended with is kept.

use std::collections::VecDeque;

use super::super::{EXEC_TAIL_BYTES, EXEC_TAIL_LINES};

#[derive(Debug, Default)]
pub(super) struct Tail {
    lines: VecDeque<String>,
    partial: Vec<u8>,
}

impl Tail {
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
                let room = EXEC_TAIL_BYTES.saturating_sub(self.partial.len());
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
        if self.lines.len() == EXEC_TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The kept lines, the unfinished one last, cut to [`EXEC_TAIL_BYTES`] in all (the
    /// newest kept).
    pub(super) fn into_lines(mut self) -> Vec<String> {
        if !self.partial.is_empty() {
            self.end_line();
        }
        let mut budget = EXEC_TAIL_BYTES;
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
}
