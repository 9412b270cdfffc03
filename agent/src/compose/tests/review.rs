//! Loader behaviour checked against `docker compose` v2.40.3: tmpfs merging, mount targets,
//! secret and config sources, file mount options compose does not apply either.

use super::*;

#[test]
fn tmpfs_entries_merge_by_what_precedes_their_first_equals_sign() {
    let (_t, d) = project_dir("p");
    let base = write(
        &d,
        "compose.yaml",
        "services:\n  web:\n    image: x\n    tmpfs: [\"/run:size=64m\", \"/tmp\"]\n",
    );
    let over = write(
        &d,
        "over.yaml",
        "services:\n  web:\n    tmpfs: [\"/run:size=128m\", \"/var\"]\n",
    );
    let p = load(&opts(vec![base, over])).unwrap();
    // compose: ['/run:size=128m', '/tmp', '/var']
    assert_eq!(p.services["web"].tmpfs, ["/run:size=128m", "/tmp", "/var"]);
}

#[test]
fn two_mounts_on_one_target_are_refused_naming_both_keys() {
    let (_t, d) = project_dir("p");
    for (body, key, message) in [
        (
            "tmpfs: [\"/tmp\", \"/tmp:mode=1777\"]",
            "services.web.tmpfs[1]",
            "mounts the same target as services.web.tmpfs[0] (keep one of them)",
        ),
        (
            "tmpfs: [\"/run:size=64m\"]\n    volumes: [{type: tmpfs, target: /run}]",
            "services.web.volumes[0]",
            "mounts the same target as services.web.tmpfs[0] (keep one of them)",
        ),
    ] {
        let f = write(
            &d,
            "compose.yaml",
            &format!("services:\n  web:\n    image: x\n    {body}\n"),
        );
        let err = load(&opts(vec![f])).unwrap_err().to_string();
        assert!(err.contains(&format!("{key}: {message}")), "{err}");
    }
}

#[test]
fn a_seccomp_profile_file_is_made_absolute_against_the_project_dir() {
    let (_t, d) = project_dir("p");
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  web:\n    image: x\n    security_opt: [\"seccomp=./sec/p.json\", \"seccomp:unconfined\", \"label=disable\"]\n",
    );
    let p = load(&opts(vec![f])).unwrap();
    assert_eq!(
        p.services["web"].security_opt,
        [
            format!("seccomp={}", d.join("sec/p.json").display()),
            "seccomp:unconfined".to_owned(),
            "label=disable".to_owned(),
        ]
    );
}
