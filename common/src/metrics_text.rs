//! The Prometheus text exposition format (version 0.0.4), written by hand: both programs
//! expose a few gauges and counters and need no client library.
//!
//! Design: [`Exposition`] appends `# HELP`/`# TYPE` lines for a family and then its samples;
//! label values are escaped (`\\`, `\"`, `\n`) so a stack name or source id cannot break the
//! format. Values are printed with Rust's shortest round-trip form (`1`, `1.5`, `-1`).
//!
//! Limits: no histograms with buckets, no timestamps, no exemplars; names are not checked
//! (callers use constants).

use std::fmt::Write as _;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// One exposition being written.
#[derive(Debug, Default, Clone)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a family: `kind` is `counter`, `gauge` or `summary`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample line: `name{k="v",...} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Escapes a label value for the text format.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaping() {
        let mut e = Exposition::new();
        e.family("x_up", "gauge", "1 while up")
            .sample("x_up", &[], 1.0);
        e.family("x_total", "counter", "things").sample(
            "x_total",
            &[("a", "p\"q\\r\ns"), ("b", "2")],
            2.5,
        );
        assert_eq!(
            e.finish(),
            "# HELP x_up 1 while up\n# TYPE x_up gauge\nx_up 1\n\
             # HELP x_total things\n# TYPE x_total counter\n\
             x_total{a=\"p\\\"q\\\\r\\ns\",b=\"2\"} 2.5\n"
        );
    }
}
