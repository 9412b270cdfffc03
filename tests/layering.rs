//! The layering check of `tests/tests/layering.rs`, as plain functions over source text so that
//! they can be unit-tested on small inputs.
//!
//! Design: a crate's source tree (`agent/src`, `sidecar/src`) is read file by file; each file
//! belongs to the top-level module named by its first path component (`deploy/apply.rs` →
//! `deploy`). Comments, string and char literals and inline `#[cfg(test)] mod x { .. }` blocks
//! are blanked out, then every path that starts with `crate::` (and `use crate::{a, b::c}`
//! groups), or with enough `super::` to climb to the crate root, is an edge from the file's
//! top-level module to the module it names. Test files (`tests.rs`, anything under a `tests`
//! directory) are not part of the graph. On that graph: cycles (strongly connected components
//! of more than one module, with the files that make each edge), edges against a table of layers
//! ([`Layers`]), and files over a line budget.
//!
//! Limits: a lexical reading, not a compiler's. `super::` inside an inline module (other than a
//! `#[cfg(test)]` one) is resolved as if it were at file level; a macro that builds paths is not
//! seen; `crate::X` where `X` is not a top-level module (a type re-exported at the root) is
//! ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// Edges between top-level modules: `(from, to)` → the files (relative to `src`) that make it.
pub type Graph = BTreeMap<(String, String), BTreeSet<String>>;

/// Whether a source path (relative to a crate's `src`, or to the repository) is test code:
/// a file named `tests.rs`, or any file under a directory named `tests`.
pub fn is_test_file(rel: &Path) -> bool {
    rel.file_name().is_some_and(|n| n == "tests.rs")
        || rel
            .parent()
            .is_some_and(|p| p.components().any(|c| c.as_os_str() == "tests"))
}

/// The module path of a file relative to `src`: `deploy/apply.rs` → `[deploy, apply]`,
/// `deploy/mod.rs` → `[deploy]`, `lib.rs`, `main.rs` and `bin/*` → `[]` (the crate root).
pub fn module_path(rel: &Path) -> Vec<String> {
    let parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return Vec::new();
    }
    let mut path = parts;
    if let Some(last) = path.pop() {
        let stem = last.strip_suffix(".rs").unwrap_or(&last).to_string();
        if !(stem == "mod" || (path.is_empty() && (stem == "lib" || stem == "main"))) {
            path.push(stem);
        }
    }
    path
}

/// The source with comments, string literals and char literals replaced by spaces (line
/// breaks kept, so that line numbers stay right), and inline `#[cfg(test)] mod x { .. }`
/// blocks removed.
pub fn code_only(source: &str) -> String {
    let s: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, s[i]);
                    i += 1;
                }
            }
        } else if (c == 'r' || (c == 'b' && next == Some('r')))
            && (i == 0 || !ident(s[i - 1]))
            && raw_string_hashes(s.get(i + usize::from(c == 'b') + 1..).unwrap_or(&[])).is_some()
        {
            let start = i + usize::from(c == 'b') + 1;
            let hashes = raw_string_hashes(&s[start..]).unwrap_or(0);
            let mut j = start + hashes + 1;
            while j < s.len() {
                if s[j] == '"'
                    && s[j + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == '#')
                        .count()
                        == hashes
                {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &s[i..j.min(s.len())] {
                blank(&mut out, ch);
            }
            i = j;
        } else if c == '"' {
            blank(&mut out, c);
            i += 1;
            while i < s.len() && s[i] != '"' {
                if s[i] == '\\' {
                    blank(&mut out, s[i]);
                    i += 1;
                }
                if i < s.len() {
                    blank(&mut out, s[i]);
                    i += 1;
                }
            }
            if i < s.len() {
                blank(&mut out, s[i]);
                i += 1;
            }
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            blank(&mut out, c);
            i += 2;
            out.push(' ');
            while i < s.len() && s[i] != '\'' {
                blank(&mut out, s[i]);
                i += 1;
            }
            if i < s.len() {
                out.push(' ');
                i += 1;
            }
        } else if c == '\'' && s.get(i + 2) == Some(&'\'') {
            out.push_str("   ");
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    remove_cfg_test_modules(&out)
}

/// `Some(n)` when `s` starts with `n` `#` and a `"` (the rest of a raw string's opening).
fn raw_string_hashes(s: &[char]) -> Option<usize> {
    let n = s.iter().take_while(|&&c| c == '#').count();
    (s.get(n) == Some(&'"')).then_some(n)
}

/// Blanks every `#[cfg(test)] mod NAME { .. }` block (comments and literals already blank).
fn remove_cfg_test_modules(code: &str) -> String {
    let mut out: Vec<char> = code.chars().collect();
    let text: String = out.iter().collect();
    let mut from = 0;
    while let Some(found) = text[from..].find("#[cfg(test)]") {
        let at = from + found;
        from = at + 1;
        let rest = &text[at + "#[cfg(test)]".len()..];
        let trimmed = rest.trim_start();
        let Some(after_mod) = trimmed.strip_prefix("mod ") else {
            continue;
        };
        let name_len = after_mod
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after_mod.len());
        if !after_mod[name_len..].trim_start().starts_with('{') {
            continue; // `#[cfg(test)] mod tests;`: the file is skipped as a test file.
        }
        // Byte offsets to char offsets: find the opening brace, then its match.
        let open_byte = at
            + "#[cfg(test)]".len()
            + (rest.len() - trimmed.len())
            + "mod ".len()
            + name_len
            + after_mod[name_len..].find('{').unwrap_or(0);
        let start = text[..at].chars().count();
        let open = text[..open_byte].chars().count();
        let mut depth = 0usize;
        let mut end = out.len();
        for (k, ch) in out.iter().enumerate().skip(open) {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        for ch in &mut out[start..end] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    }
    out.into_iter().collect()
}

/// The top-level modules that `code` (from [`code_only`]) names through `crate::` or through
/// `super::` chains that climb to the root from a file at `module`, each with its line (1-based).
pub fn root_references(code: &str, module: &[String]) -> Vec<(String, usize)> {
    let s: Vec<char> = code.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < s.len() {
        if s[i] == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        let starts_ident = ident(s[i]) && (i == 0 || !(ident(s[i - 1]) || s[i - 1] == ':'));
        if !starts_ident {
            i += 1;
            continue;
        }
        let word = read_ident(&s, i);
        let mut j = i + word.len();
        let at_root = match word.as_str() {
            "crate" => skip_colons(&s, &mut j),
            "super" => {
                let mut up = 0;
                while skip_colons(&s, &mut j) {
                    up += 1;
                    let w = read_ident(&s, j);
                    if w != "super" {
                        break;
                    }
                    j += w.len();
                }
                up > 0 && up >= module.len()
            }
            _ => false,
        };
        if at_root {
            for name in path_heads(&s, j) {
                found.push((name, line));
            }
        }
        i += word.len().max(1);
    }
    found
}

fn read_ident(s: &[char], at: usize) -> String {
    s[at..]
        .iter()
        .take_while(|c| c.is_alphanumeric() || **c == '_')
        .collect()
}

/// Skips whitespace, `::`, whitespace; true when `::` was there.
fn skip_colons(s: &[char], j: &mut usize) -> bool {
    let mut k = *j;
    while k < s.len() && s[k].is_whitespace() {
        k += 1;
    }
    if s.get(k) == Some(&':') && s.get(k + 1) == Some(&':') {
        k += 2;
        while k < s.len() && s[k].is_whitespace() {
            k += 1;
        }
        *j = k;
        true
    } else {
        false
    }
}

/// The first segment of the path at `at`: one name, or each item's first name of a `{..}` group.
fn path_heads(s: &[char], at: usize) -> Vec<String> {
    if s.get(at) != Some(&'{') {
        let w = read_ident(s, at);
        return if w.is_empty() { Vec::new() } else { vec![w] };
    }
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    for (k, &c) in s.iter().enumerate().skip(at) {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    expect_head = true;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_head = true,
            c if depth == 1 && expect_head && (c.is_alphanumeric() || c == '_') => {
                let w = read_ident(s, k);
                if w != "self" {
                    heads.push(w);
                }
                expect_head = false;
            }
            c if depth == 1 && !c.is_whitespace() => expect_head = false,
            _ => {}
        }
    }
    heads
}

/// The top-level modules of a crate: `src/X.rs` and `src/X/` (not `lib`, `main`, `bin`).
pub fn top_level_modules(src: &Path) -> BTreeSet<String> {
    let mut mods = BTreeSet::new();
    for entry in std::fs::read_dir(src)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()))
        .flatten()
    {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "bin" && name != "tests" {
                mods.insert(name);
            }
        } else if let Some(stem) = name.strip_suffix(".rs")
            && !matches!(stem, "lib" | "main")
        {
            mods.insert(stem.to_string());
        }
    }
    mods
}

/// Every `.rs` file under `dir`, relative to it, sorted.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Adds the edges of one file (`rel` to `src`, its text) to `graph`.
pub fn add_file(graph: &mut Graph, modules: &BTreeSet<String>, rel: &Path, source: &str) {
    if is_test_file(rel) {
        return;
    }
    let module = module_path(rel);
    let Some(from) = module.first() else {
        return; // the crate root only declares modules
    };
    for (to, line) in root_references(&code_only(source), &module) {
        if &to != from && modules.contains(&to) {
            graph
                .entry((from.clone(), to))
                .or_default()
                .insert(format!("{}:{line}", rel.display()));
        }
    }
}

/// The graph of a crate's `src` directory.
pub fn crate_graph(src: &Path) -> Graph {
    let modules = top_level_modules(src);
    let mut graph = Graph::new();
    for rel in rust_files(src) {
        let path = src.join(&rel);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        add_file(&mut graph, &modules, &rel, &text);
    }
    graph
}

/// The strongly connected components of more than one module (each one a cycle or several),
/// each sorted, in a stable order (Tarjan's algorithm).
pub fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut nodes: BTreeSet<&str> = BTreeSet::new();
    let mut succ: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in graph.keys() {
        nodes.insert(from);
        nodes.insert(to);
        succ.entry(from).or_default().push(to);
    }
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, succ: &BTreeMap<&'a str, Vec<&'a str>>, st: &mut State<'a>) {
        st.index.insert(v, st.next);
        st.low.insert(v, st.next);
        st.next += 1;
        st.stack.push(v);
        st.on_stack.insert(v);
        for &w in succ.get(v).map(Vec::as_slice).unwrap_or(&[]) {
            if !st.index.contains_key(w) {
                visit(w, succ, st);
                let lw = st.low[w];
                let lv = st.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if st.on_stack.contains(w) {
                let iw = st.index[w];
                let lv = st.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if st.low[v] == st.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = st.stack.pop() {
                st.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                st.out.push(comp);
            }
        }
    }
    let mut st = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for &v in &nodes {
        if !st.index.contains_key(v) {
            visit(v, &succ, &mut st);
        }
    }
    st.out.sort();
    st.out
}

/// One line per edge inside `component`: `a -> b (file:line, ...)`.
pub fn describe_edges(graph: &Graph, component: &[String]) -> Vec<String> {
    graph
        .iter()
        .filter(|((a, b), _)| component.contains(a) && component.contains(b))
        .map(|((a, b), files)| format!("{a} -> {b} ({})", join_files(files)))
        .collect()
}

fn join_files(files: &BTreeSet<String>) -> String {
    files.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// The allowed direction of a crate's dependencies: each top-level module has a rank, a module
/// may import modules of its own rank or lower (cycles are checked apart), and some pairs are
/// forbidden whatever the ranks.
#[derive(Debug, Clone)]
pub struct Layers<'a> {
    pub ranks: &'a [(&'a str, u8)],
    pub forbidden: &'a [(&'a str, &'a [&'a str])],
}

impl Layers<'_> {
    /// Edges against the layers, and modules the table does not place, one line each.
    pub fn violations(&self, graph: &Graph, modules: &BTreeSet<String>) -> Vec<String> {
        let rank = |m: &str| self.ranks.iter().find(|(n, _)| *n == m).map(|(_, r)| *r);
        let mut out = Vec::new();
        for m in modules {
            if rank(m).is_none() {
                out.push(format!(
                    "module `{m}` has no layer: place it in the table of tests/tests/layering.rs \
                     (following DESIGN's direction)"
                ));
            }
        }
        for ((a, b), files) in graph {
            let (Some(ra), Some(rb)) = (rank(a), rank(b)) else {
                continue;
            };
            let banned = self
                .forbidden
                .iter()
                .any(|(from, tos)| *from == a && tos.contains(&b.as_str()));
            if banned {
                out.push(format!(
                    "{a} -> {b}: `{a}` must not import `{b}` ({})",
                    join_files(files)
                ));
            } else if ra < rb {
                out.push(format!(
                    "{a} -> {b}: a lower layer imports a higher one ({})",
                    join_files(files)
                ));
            }
        }
        out
    }
}

/// Non-test `.rs` files under `dir` with more than `max` lines, as `(path, lines)`; paths
/// are `dir`-relative with `label` in front.
pub fn long_files(dir: &Path, label: &str, max: usize) -> Vec<(String, usize)> {
    rust_files(dir)
        .into_iter()
        .filter(|rel| !is_test_file(rel))
        .filter_map(|rel| {
            let text = std::fs::read_to_string(dir.join(&rel)).ok()?;
            let lines = text.lines().count();
            (lines > max).then(|| (format!("{label}/{}", rel.display()), lines))
        })
        .collect()
}

#[cfg(test)]
mod tests;
