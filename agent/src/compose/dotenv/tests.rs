use super::*;

fn p(text: &str) -> BTreeMap<String, String> {
    let lookup = |k: &str| (k == "FROM_ENV").then(|| "env".to_string());
    parse(Path::new(".env"), text, false, &lookup).unwrap()
}

#[test]
fn formats() {
    let m = p(concat!(
        "# comment\n",
        "\n",
        "A=1\n",
        "export B=two words # trailing comment\n",
        "C='single $A # kept'\n",
        "D=\"double $A\\n\"\n",
        "E=\"multi\n",
        "line\"\n",
        "F=${A}-${UNSET:-def}\n",
        "G=\n",
        "FROM_ENV\n",
        "NOT_SET\n",
        "H: yaml style\n",
        "I=a#b\n",
        "J=\"esc \\\" \\$A\"\n",
    ));
    assert_eq!(m["A"], "1");
    assert_eq!(m["B"], "two words");
    assert_eq!(m["C"], "single $A # kept");
    assert_eq!(m["D"], "double 1\n");
    assert_eq!(m["E"], "multi\nline");
    assert_eq!(m["F"], "1-def");
    assert_eq!(m["G"], "");
    assert_eq!(m["FROM_ENV"], "env");
    assert!(!m.contains_key("NOT_SET"));
    assert_eq!(m["H"], "yaml style");
    assert_eq!(m["I"], "a#b");
    assert_eq!(m["J"], "esc \" $A");
}

#[test]
fn errors_name_the_line() {
    let lookup = |_: &str| None;
    let e = parse(Path::new("x.env"), "A=1\nB=\"open\n", false, &lookup).unwrap_err();
    assert_eq!(e.to_string(), "x.env:2: B: unterminated double quote");
    let e = parse(Path::new("x.env"), "A=${B:?need B}\n", false, &lookup).unwrap_err();
    assert!(
        e.to_string().starts_with("x.env:1: A: required variable B"),
        "{e}"
    );
}

#[test]
fn raw_format_keeps_text() {
    let lookup = |_: &str| None;
    let m = parse(Path::new("r.env"), "A='x' $B\n", true, &lookup).unwrap();
    assert_eq!(m["A"], "'x' $B");
}

#[test]
fn a_malformed_line_is_named_not_quoted() {
    let lookup = |_: &str| None;
    let e = parse(Path::new("x.env"), "OK=1\nMY KEY=s3cr3t\n", false, &lookup).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("x.env:2: "), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
}

proptest::proptest! {
    /// What the sidecar writes (`gantry_common::dotenv::encode`), compose's reading rules with
    /// the real interpolation give back exactly, `$` included.
    #[test]
    fn reads_back_what_the_sidecar_writes(
        values in proptest::collection::btree_map(
            "[A-Za-z_][A-Za-z0-9_]{0,12}",
            proptest::prop_oneof![
                proptest::arbitrary::any::<String>(),
                "[\\\\'\"$#={}: \n\r\ta-z]{0,24}",
            ],
            0..8,
        )
    ) {
        let text = gantry_common::dotenv::encode(
            &values
                .iter()
                .map(|(k, v)| (k.clone(), gantry_common::Secret::new(v.clone())))
                .collect(),
        );
        let lookup = |_: &str| Some("FROM-ENVIRONMENT".to_owned());
        let back = parse(Path::new("out.env"), &text, false, &lookup)
            .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
        proptest::prop_assert_eq!(back, values);
    }
}

/// A malformed `${` is placed where it is in the file as written, whatever quotes, escapes,
/// blanks, `export`, non-ASCII characters or earlier lines of a multi-line value come before
/// it: the line it is on and its character in that line. The value is never quoted.
#[test]
fn a_malformed_interpolation_is_placed_in_the_file_as_written() {
    let lookup = |_: &str| None;
    // (the file, the line of the malformed `${`: the first one on that line)
    let cases: &[(&str, usize)] = &[
        ("PW=\"hunter2\\n\\t\\\"x\\\" ${B\"\n", 1),
        ("OK=1\nexport   PW =  hunter2${C\n", 2),
        ("PW: x'y'${D\n", 1),
        ("PW=\"é\\\\hunter2 \\$ \\q ${E\"\n", 1),
        ("PW=\"hunter2\\\"\nsecond \\\"line\\\" ${F\"\n", 2),
        ("\u{feff}PW=\"a\\nhunter2${G:-${H}\"\n", 1),
        ("PW=\"\\$${I\"\n", 1),
    ];
    for (text, line) in cases {
        let e = parse(Path::new("app.env"), text, false, &lookup).unwrap_err();
        let shown = e.to_string();
        let raw = text.lines().nth(line - 1).unwrap();
        let raw = raw.trim_start_matches('\u{feff}');
        let column = raw[..raw.find("${").unwrap()].chars().count() + 1;
        assert_eq!(
            shown,
            format!(
                "app.env:{line}: PW: invalid interpolation format at character {column} of the \
                 line (escape a literal $ as $$)"
            ),
            "{text:?}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
