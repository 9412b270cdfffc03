//! Variable interpolation in Compose values, with the grammar of `docker compose` v2.
//!
//! Forms: `$$` (a literal `$`), `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty),
//! `${VAR-default}` (unset), `${VAR:?message}` / `${VAR?message}` (error), `${VAR:+replacement}`
//! (set and non-empty) / `${VAR+replacement}` (set). Defaults and replacements are themselves
//! interpolated, so `${A:-${B:-x}}` nests. An error's message is kept as written, `${...}` in
//! it unexpanded: the error is printed, and what a variable holds may be a secret (compose
//! expands it). A `$` not followed by a name, `{` or `$` stays literal (compose does the
//! same); a malformed `${...}` is an error.
//!
//! Design: a small hand-written scanner over chars, no regex; [`interpolate`] takes a lookup
//! closure so the same code serves compose files and `.env` files. Unset variables without a
//! default become empty strings and are reported back so the caller can warn once.
//!
//! Limits: applied to values only (never to mapping keys), as compose does. `${...}` nest at
//! most [`MAX_NESTING`] deep (each level is a recursion: thousands would overflow a thread's
//! stack and abort the process).

/// How deep `${...}` may nest inside defaults, replacements and messages.
pub const MAX_NESTING: usize = 32;

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// `${VAR:?msg}` / `${VAR?msg}` with the variable missing. `message`: `msg` as written,
    /// never expanded (a variable in it may hold a secret).
    #[error("required variable {name} is missing a value{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Required { name: String, message: String },
    /// `${` without its `}`, an empty or invalid name, or an unknown operator. `at`: the
    /// position (in characters, from 1) of the `$` that opens it. The text is never quoted:
    /// an env file's value is a secret as often as not.
    #[error(
        "invalid interpolation format at character {at} of the value (escape a literal $ as $$)"
    )]
    Invalid { at: usize },
    /// `${A:-${B:-...}}` nested deeper than [`MAX_NESTING`].
    #[error(
        "interpolation nests ${{...}} more than {MAX_NESTING} deep: set an intermediate \
         variable instead of nesting the defaults"
    )]
    TooDeep,
}

/// Result of interpolating one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpolated {
    pub value: String,
    /// Variables that were used without a value and without a default (became "").
    pub unset: Vec<String>,
}

/// The text as written of the values interpolation changed in one file, by key path
/// (`services.web.ports[0]` → `${PORT}:80`). An error about such a value shows this text, never
/// the value: what a variable holds may be a secret. A value written literally is not here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsWritten(std::collections::BTreeMap<String, String>);

impl AsWritten {
    /// Records that interpolation turned `written` (at `path`) into another value.
    pub fn insert(&mut self, path: impl Into<String>, written: impl Into<String>) {
        self.0.insert(path.into(), written.into());
    }

    /// The text as written of the value at `path`, if interpolation changed it.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.0.get(path).map(String::as_str)
    }
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Interpolates `input` with `lookup` (returns `None` for unset variables).
pub fn interpolate(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpolationError> {
    let mut unset = Vec::new();
    let value = expand(input, lookup, &mut unset, 0)?;
    Ok(Interpolated { value, unset })
}

/// `input` expanded; `depth` is how many `${...}` it is nested in.
fn expand(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
    depth: usize,
) -> Result<String, InterpolationError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                // An error anywhere inside points at this `${`.
                let here = |e: InterpolationError| match e {
                    InterpolationError::Invalid { .. } => InterpolationError::Invalid { at: i + 1 },
                    other => other,
                };
                let close = find_close(&chars, i + 2, depth)
                    .ok_or(InterpolationError::Invalid { at: i + 1 })??;
                let inner: String = chars[i + 2..close].iter().collect();
                out.push_str(&braced(&inner, lookup, unset, depth + 1).map_err(here)?);
                i = close + 1;
            }
            Some(&n) if is_name_start(n) => {
                let mut j = i + 1;
                while j < chars.len() && is_name_char(chars[j]) {
                    j += 1;
                }
                let name: String = chars[i + 1..j].iter().collect();
                match lookup(&name) {
                    Some(v) => out.push_str(&v),
                    None => unset.push(name),
                }
                i = j;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Index of the `}` closing a `${` whose content starts at `start`, honouring nesting;
/// `None` when it is not closed. Refused when what it holds nests deeper than allowed below
/// `outer` levels (whether or not the value needs the nested part, so the same file is refused
/// whatever the environment).
fn find_close(
    chars: &[char],
    start: usize,
    outer: usize,
) -> Option<Result<usize, InterpolationError>> {
    let mut depth = 0usize;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '$' if chars.get(i + 1) == Some(&'$') => i += 1,
            '$' if chars.get(i + 1) == Some(&'{') => {
                depth += 1;
                if outer + depth >= MAX_NESTING {
                    return Some(Err(InterpolationError::TooDeep));
                }
                i += 1;
            }
            '}' => {
                if depth == 0 {
                    return Some(Ok(i));
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(
    inner: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
    depth: usize,
) -> Result<String, InterpolationError> {
    // The caller says where.
    let invalid = || InterpolationError::Invalid { at: 0 };
    let name_len = inner
        .char_indices()
        .find(|&(_, c)| !is_name_char(c))
        .map_or(inner.len(), |(i, _)| i);
    let name = &inner[..name_len];
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(invalid());
    }
    let rest = &inner[name_len..];
    let value = lookup(name);
    if rest.is_empty() {
        return Ok(match value {
            Some(v) => v,
            None => {
                unset.push(name.to_string());
                String::new()
            }
        });
    }
    let (op, arg) = if let Some(a) = rest.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = rest.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = rest.strip_prefix(":+") {
        (":+", a)
    } else if let Some(a) = rest.strip_prefix('-') {
        ("-", a)
    } else if let Some(a) = rest.strip_prefix('?') {
        ("?", a)
    } else if let Some(a) = rest.strip_prefix('+') {
        ("+", a)
    } else {
        return Err(invalid());
    };
    let set = value.is_some();
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    match op {
        ":-" if non_empty => Ok(value.unwrap_or_default()),
        "-" if set => Ok(value.unwrap_or_default()),
        ":-" | "-" => expand(arg, lookup, unset, depth),
        ":?" if non_empty => Ok(value.unwrap_or_default()),
        "?" if set => Ok(value.unwrap_or_default()),
        ":?" | "?" => Err(InterpolationError::Required {
            name: name.to_string(),
            message: arg.to_string(),
        }),
        ":+" if non_empty => expand(arg, lookup, unset, depth),
        "+" if set => expand(arg, lookup, unset, depth),
        _ => Ok(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run(input: &str) -> Result<String, InterpolationError> {
        let env: BTreeMap<&str, &str> = [("A", "a"), ("EMPTY", ""), ("N", "1"), ("B", "bee")]
            .into_iter()
            .collect();
        let lookup = move |k: &str| env.get(k).map(|v| v.to_string());
        interpolate(input, &lookup).map(|i| i.value)
    }

    #[test]
    fn table() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("$A", "a"),
            ("${A}", "a"),
            ("x$A.y", "xa.y"),
            ("$Ab", ""),
            ("${A}b", "ab"),
            ("$$A", "$A"),
            ("$$", "$"),
            ("a $ b", "a $ b"),
            ("a $1 b", "a $1 b"),
            ("$-x", "$-x"),
            ("${UNSET}", ""),
            ("$UNSET", ""),
            ("${UNSET:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${A:-d}", "a"),
            ("${UNSET-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${A:+r}", "r"),
            ("${EMPTY:+r}", ""),
            ("${UNSET:+r}", ""),
            ("${EMPTY+r}", "r"),
            ("${UNSET+r}", ""),
            ("${A:?boom}", "a"),
            ("${EMPTY?boom}", ""),
            ("${UNSET:-${B}}", "bee"),
            ("x${UNSET:-${U2:-y}}z", "xyz"),
            ("${UNSET:-a}}", "a}"),
            ("${UNSET:-$$}", "$"),
            ("${UNSET:-with space}", "with space"),
            ("${UNSET:-${A}-${N}}", "a-1"),
            ("${A:+${B}}", "bee"),
            ("héllo $A", "héllo a"),
        ];
        for (input, want) in cases {
            assert_eq!(run(input).as_deref(), Ok(*want), "input {input:?}");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            run("${UNSET:?must be set}"),
            Err(InterpolationError::Required {
                name: "UNSET".into(),
                message: "must be set".into()
            })
        );
        assert_eq!(
            run("${EMPTY:?}").unwrap_err().to_string(),
            "required variable EMPTY is missing a value"
        );
        assert!(matches!(
            run("${UNSET?x}"),
            Err(InterpolationError::Required { .. })
        ));
        assert!(
            matches!(run("${UNSET:?${B}}"), Err(InterpolationError::Required { message, .. }) if message == "${B}")
        );
        for bad in [
            "${}",
            "${A",
            "${A.B}",
            "${A:x}",
            "${1A}",
            "${ A}",
            "x ${A:-${B}",
        ] {
            assert!(
                matches!(run(bad), Err(InterpolationError::Invalid { .. })),
                "{bad:?} should be invalid"
            );
        }
    }

    /// `${X:?msg}`: the message is printed as written; a variable in it is not expanded, since
    /// what it holds may be a secret (compose would print it).
    #[test]
    fn a_required_variable_s_message_is_printed_as_written() {
        let lookup = |k: &str| (k == "DB_PASSWORD").then(|| "hunter2".to_string());
        for input in [
            "${UNSET:?set UNSET (the password ${DB_PASSWORD} is not it)}",
            "${UNSET?set UNSET (the password $DB_PASSWORD is not it)}",
            "${UNSET:?set UNSET (the password ${DB_PASSWORD:-x} is not it)}",
        ] {
            let e = interpolate(input, &lookup).unwrap_err();
            let text = e.to_string();
            assert!(!text.contains("hunter2"), "{input}: {text}");
            assert!(
                text.starts_with("required variable UNSET is missing a value: set UNSET")
                    && text.contains("DB_PASSWORD"),
                "{input}: {text}"
            );
        }
        // Even when the message holds a `${...}` that would fail on its own.
        let e = interpolate("${UNSET:?${DB_PASSWORD:?inner}}", &|_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "required variable UNSET is missing a value: ${DB_PASSWORD:?inner}"
        );
    }

    #[test]
    fn nesting_is_bounded_before_it_can_overflow_the_stack() {
        let nested =
            |levels: usize| format!("{}x{}", "${UNSET:-".repeat(levels), "}".repeat(levels));
        // Deep enough to overflow a daemon thread's 2 MiB stack without the bound.
        let deep = nested(100_000);
        let got = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || run(&deep))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(got, Err(InterpolationError::TooDeep));
        assert_eq!(run(&nested(MAX_NESTING)).as_deref(), Ok("x"));
        // Refused whether or not the value needs the nested part.
        for op in [":-", ":?", "+"] {
            let deep = format!("${{A{op}{}}}", nested(MAX_NESTING));
            assert_eq!(run(&deep), Err(InterpolationError::TooDeep), "{op}");
        }
        assert!(
            InterpolationError::TooDeep
                .to_string()
                .contains("nests ${...} more than 32 deep")
        );
    }

    #[test]
    fn reports_unset() {
        let lookup = |_: &str| None;
        let r = interpolate("$X ${Y} ${Z:-d}", &lookup).unwrap();
        assert_eq!(r.unset, vec!["X".to_string(), "Y".to_string()]);
    }
}
