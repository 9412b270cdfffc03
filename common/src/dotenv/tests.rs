use proptest::prelude::*;

use super::*;

fn p(text: &str) -> BTreeMap<String, String> {
    let lookup = |k: &str| (k == "FROM_ENV").then(|| "env".to_string());
    parse(text, false, &lookup, &literal).unwrap()
}

fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, Secret<String>> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Secret::new((*v).to_owned())))
        .collect()
}

#[test]
fn reads_compose_forms() {
    let m = p(concat!(
        "# comment\n",
        "\n",
        "A=1\n",
        "export B=two words # trailing comment\n",
        "C='single $A # kept'\n",
        "D=\"double\\n\"\n",
        "E=\"multi\n",
        "line\"\n",
        "G=\n",
        "FROM_ENV\n",
        "NOT_SET\n",
        "H: yaml style\n",
        "I=a#b\n",
        "J=\"esc \\\" \\$A\"\n",
        "K=cost$$\n",
    ));
    assert_eq!(m["A"], "1");
    assert_eq!(m["B"], "two words");
    assert_eq!(m["C"], "single $A # kept");
    assert_eq!(m["D"], "double\n");
    assert_eq!(m["E"], "multi\nline");
    assert_eq!(m["G"], "");
    assert_eq!(m["FROM_ENV"], "env");
    assert!(!m.contains_key("NOT_SET"));
    assert_eq!(m["H"], "yaml style");
    assert_eq!(m["I"], "a#b");
    assert_eq!(m["J"], "esc \" $A");
    assert_eq!(m["K"], "cost$");
}

#[test]
fn raw_format_keeps_text() {
    let m = parse("A='x' $B\n", true, &|_| None, &literal).unwrap();
    assert_eq!(m["A"], "'x' $B");
}

#[test]
fn errors_name_line_and_key_never_the_value() {
    let e = decode("A=1\nB=\"open-secret\n").unwrap_err();
    assert_eq!(e.to_string(), "line 2: B: unterminated double quote");
    let e = decode("A='s3cr3t\n").unwrap_err();
    assert_eq!(e.to_string(), "line 1: A: unterminated single quote");
    let e = decode("MY KEY=s3cr3t\n").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(!e.to_string().contains("s3cr3t"), "{e}");
    let e = decode("A=\"x$s3cr3t\"\n").unwrap_err();
    assert_eq!(e.to_string(), "line 1: A: interpolation is not supported");
}

#[test]
fn quoting_rules() {
    assert_eq!(quote("simple"), "'simple'");
    assert_eq!(quote("$HOME #x"), "'$HOME #x'");
    assert_eq!(quote("it's"), "\"it's\"");
    assert_eq!(quote("a\nb"), "\"a\\nb\"");
    assert_eq!(quote("x\\"), "\"x\\\\\"");
    assert_eq!(quote("'$'"), "\"'\\$'\"");
    assert_eq!(
        encode(&secrets(&[("B", "2"), ("A", "1")])),
        "A='1'\nB='2'\n"
    );
}

#[test]
fn variable_names() {
    for k in ["A", "_x", "DB_PASSWORD_2"] {
        assert!(valid_name(k), "{k}");
    }
    for k in ["", "2A", "A-B", "A.B", "A B", "É"] {
        assert!(!valid_name(k), "{k}");
    }
}

proptest! {
    /// What the sidecar writes, Compose's reading rules give back exactly.
    #[test]
    fn reader_reads_back_what_the_writer_wrote(
        values in proptest::collection::btree_map(
            "[A-Za-z_][A-Za-z0-9_]{0,12}",
            prop_oneof![
                any::<String>(),
                "[ -~]{0,24}",
                "[\\\\'\"$#= \n\r\t{}a-z]{0,24}",
            ],
            0..8,
        )
    ) {
        let text = encode(
            &values.iter().map(|(k, v)| (k.clone(), Secret::new(v.clone()))).collect(),
        );
        let back = decode(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, values);
    }
}
