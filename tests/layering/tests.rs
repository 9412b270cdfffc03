use std::collections::BTreeSet;
use std::path::Path;

use super::*;

fn mods(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_string()).collect()
}

fn graph_of(modules: &[&str], files: &[(&str, &str)]) -> Graph {
    let modules = mods(modules);
    let mut g = Graph::new();
    for (path, text) in files {
        add_file(&mut g, &modules, Path::new(path), text);
    }
    g
}

fn edges(g: &Graph) -> Vec<(String, String)> {
    g.keys().cloned().collect()
}

fn edge(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn module_paths_of_files() {
    assert_eq!(
        module_path(Path::new("deploy/apply.rs")),
        ["deploy", "apply"]
    );
    assert_eq!(module_path(Path::new("deploy/mod.rs")), ["deploy"]);
    assert_eq!(module_path(Path::new("config.rs")), ["config"]);
    assert!(module_path(Path::new("lib.rs")).is_empty());
    assert!(module_path(Path::new("main.rs")).is_empty());
    assert!(module_path(Path::new("bin/gantryd.rs")).is_empty());
}

#[test]
fn test_files_are_recognised() {
    assert!(is_test_file(Path::new("compose/tests.rs")));
    assert!(is_test_file(Path::new("engine/tests/fake.rs")));
    assert!(is_test_file(Path::new("tests/tests/x.rs")));
    assert!(!is_test_file(Path::new("engine/docker.rs")));
    assert!(!is_test_file(Path::new("tests.rs.bak/x.rs")));
}

#[test]
fn comments_strings_and_test_modules_are_not_code() {
    let code = code_only(concat!(
        "use crate::a; // crate::b\n",
        "/* crate::c /* nested crate::d */ still */ let u = \"crate::e \\\" crate::f\";\n",
        "let r = r#\"crate::g \"# ; let c = '\"'; let q = '\\''; fn f<'x>() {}\n",
        "#[cfg(test)]\nmod tests {\n    use crate::h;\n    fn g() { if x { y } }\n}\n",
        "use crate::i;\n",
    ));
    for hidden in [
        "crate::b", "crate::c", "crate::d", "crate::e", "crate::f", "crate::g", "crate::h",
    ] {
        assert!(!code.contains(hidden), "{hidden} still in:\n{code}");
    }
    assert!(code.contains("use crate::a;"));
    assert!(code.contains("use crate::i;"), "{code}");
    assert!(code.contains("fn f<'x>()"), "{code}");
    // Lines are kept: crate::i is on line 9 of the input.
    assert_eq!(code.lines().nth(8), Some("use crate::i;"));
}

#[test]
fn crate_paths_and_groups() {
    let refs = |text: &str, m: &[&str]| -> Vec<String> {
        let m: Vec<String> = m.iter().map(|s| (*s).to_string()).collect();
        root_references(&code_only(text), &m)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    assert_eq!(refs("use crate::engine::Engine;", &["deploy"]), ["engine"]);
    assert_eq!(
        refs(
            "use crate::{\n  engine::{A, B},\n  ledger,\n  self as x,\n};",
            &["deploy"]
        ),
        ["engine", "ledger"]
    );
    assert_eq!(refs("let x = crate :: cli :: run();", &["daemon"]), ["cli"]);
    assert_eq!(refs("$crate::exit::Code", &["cli"]), ["exit"]);
    // `super::` reaches the root from `deploy/mod.rs` in one step, from `deploy/apply.rs` in two.
    assert_eq!(refs("use super::engine;", &["deploy"]), ["engine"]);
    assert!(refs("use super::plan;", &["deploy", "apply"]).is_empty());
    assert_eq!(
        refs("use super::super::engine;", &["deploy", "apply"]),
        ["engine"]
    );
    assert!(refs("pub(super) fn f() {} pub(crate) fn g() {}", &["deploy"]).is_empty());
    // `x::crate` is not a path from the root; `my_crate::a` is not `crate::a`.
    assert!(refs("use my_crate::engine;", &["deploy"]).is_empty());
}

#[test]
fn edges_name_their_files_and_skip_tests_and_self() {
    let g = graph_of(
        &["cli", "daemon", "deploy", "engine"],
        &[
            (
                "daemon/server.rs",
                "use crate::cli::render;\nuse crate::daemon::x;",
            ),
            ("daemon/mod.rs", "\n\nuse crate::deploy;"),
            ("deploy/tests.rs", "use crate::cli;"),
            ("deploy/mod.rs", "use crate::Thing; use crate::engine;"),
            ("lib.rs", "pub use crate::cli::run;"),
        ],
    );
    assert_eq!(
        edges(&g),
        [
            edge("daemon", "cli"),
            edge("daemon", "deploy"),
            edge("deploy", "engine")
        ]
    );
    assert_eq!(
        g[&edge("daemon", "cli")].iter().collect::<Vec<_>>(),
        ["daemon/server.rs:1"]
    );
    assert_eq!(
        g[&edge("daemon", "deploy")].iter().collect::<Vec<_>>(),
        ["daemon/mod.rs:3"]
    );
}

#[test]
fn cycles_are_found_and_acyclic_graphs_pass() {
    let g = graph_of(
        &["a", "b", "c", "d", "e"],
        &[
            ("a/mod.rs", "use crate::b;"),
            ("b/mod.rs", "use crate::c;"),
            ("c/mod.rs", "use crate::a; use crate::d;"),
            ("d.rs", "use crate::e;"),
            ("e.rs", "use crate::d;"),
        ],
    );
    assert_eq!(cycles(&g), [vec!["a", "b", "c"], vec!["d", "e"]]);
    let lines = describe_edges(&g, &cycles(&g)[1]);
    assert_eq!(lines, ["d -> e (d.rs:1)", "e -> d (e.rs:1)"]);

    let dag = graph_of(
        &["a", "b", "c"],
        &[("a.rs", "use crate::{b, c};"), ("b.rs", "use crate::c;")],
    );
    assert!(cycles(&dag).is_empty());
    assert!(cycles(&Graph::new()).is_empty());
}

#[test]
fn layers_flag_upward_edges_forbidden_pairs_and_unplaced_modules() {
    let layers = Layers {
        ranks: &[("cli", 3), ("daemon", 2), ("api", 1), ("engine", 1)],
        forbidden: &[("api", &["engine"])],
    };
    let g = graph_of(
        &["cli", "daemon", "api", "engine", "stray"],
        &[
            ("cli/mod.rs", "use crate::daemon;"),
            ("daemon/mod.rs", "use crate::{api, engine};"),
            ("engine/mod.rs", "use crate::daemon::Shared;"),
            ("api/mod.rs", "use crate::engine::Id;"),
            ("stray.rs", "use crate::cli;"),
        ],
    );
    let v = layers.violations(&g, &mods(&["cli", "daemon", "api", "engine", "stray"]));
    assert_eq!(
        v,
        [
            "module `stray` has no layer: place it in the table of tests/tests/layering.rs \
             (following DESIGN's direction)",
            "api -> engine: `api` must not import `engine` (api/mod.rs:1)",
            "engine -> daemon: a lower layer imports a higher one (engine/mod.rs:1)",
        ]
    );
}

#[test]
fn long_files_skip_tests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |rel: &str, lines: usize| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, "x\n".repeat(lines)).expect("write");
    };
    write("a.rs", 801);
    write("b/mod.rs", 800);
    write("b/tests.rs", 5000);
    write("c/tests/big.rs", 5000);
    assert_eq!(
        long_files(dir.path(), "src", 800),
        [("src/a.rs".to_string(), 801)]
    );
}
