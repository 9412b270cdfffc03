//! An error about a service's key found once the files are merged (a missing env or label
//! file, two keys that disagree, two mounts on one target) names the file that wrote the key,
//! not the first file given.

use super::*;

/// Loads `compose.yaml` (`web` with `base` under it) with `over.yaml` (`web` with `over`
/// under it) over it; the error.
fn error_of_two_files(d: &Path, base: &str, over: &str) -> String {
    let service = |body: &str| format!("services:\n  web:\n    image: x\n    {body}\n");
    let base = write(d, "compose.yaml", &service(base));
    let over = write(d, "over.yaml", &service(over));
    load(&opts(vec![base, over])).unwrap_err().to_string()
}

#[test]
fn a_key_the_override_file_wrote_is_named_with_the_override_file() {
    let (_t, d) = project_dir("p");
    // (base, override, what the error says from the file on)
    let cases = [
        (
            "environment: {A: '1'}",
            "env_file: missing.env",
            "over.yaml: services.web.env_file: env file ",
        ),
        (
            "labels: {a: '1'}",
            "label_file: missing.labels",
            "over.yaml: services.web.label_file: label file ",
        ),
        (
            "deploy: {replicas: 2}",
            "scale: 3",
            "over.yaml: services.web.scale: can't set distinct values on 'scale' and 'deploy.replicas'",
        ),
        (
            "scale: 2\n    deploy: {replicas: 2}",
            "scale: 3",
            "over.yaml: services.web.scale: can't set distinct values",
        ),
        (
            "deploy: {resources: {limits: {cpus: 2}}}",
            "cpus: 1",
            "over.yaml: services.web.cpus: can't set distinct values on 'cpus' and 'deploy.resources.limits.cpus'",
        ),
        (
            "mem_reservation: 64m\n    deploy: {resources: {reservations: {memory: 64m}}}",
            "mem_reservation: 32m",
            "over.yaml: services.web.mem_reservation: can't set distinct values",
        ),
        (
            "tmpfs: [/run]",
            "volumes: [{type: tmpfs, target: /run}]",
            "over.yaml: services.web.volumes[0]: mounts the same target as services.web.tmpfs[0]",
        ),
    ];
    for (base, over, says) in cases {
        let e = error_of_two_files(&d, base, over);
        assert!(e.contains(says), "{over}: got {e:?}, want {says:?}");
        assert!(
            !e.contains("compose.yaml"),
            "{over}: names the first file: {e}"
        );
    }
}

#[test]
fn a_key_only_the_first_file_wrote_is_named_with_the_first_file() {
    let (_t, d) = project_dir("p");
    let cases = [
        (
            "env_file: missing.env",
            "environment: {A: '1'}",
            "compose.yaml: services.web.env_file: env file ",
        ),
        (
            "label_file: missing.labels",
            "labels: {a: '1'}",
            "compose.yaml: services.web.label_file: label file ",
        ),
        // The error's path is `scale`, which the first file wrote, whoever wrote the
        // replicas it disagrees with.
        (
            "scale: 2",
            "deploy: {replicas: 3}",
            "compose.yaml: services.web.scale: can't set distinct values",
        ),
        (
            "cpus: 1",
            "deploy: {resources: {limits: {cpus: 2}}}",
            "compose.yaml: services.web.cpus: can't set distinct values",
        ),
        (
            "tmpfs: [/run]\n    volumes: [{type: tmpfs, target: /run}]",
            "environment: {A: '1'}",
            "compose.yaml: services.web.volumes[0]: mounts the same target",
        ),
    ];
    for (base, over, says) in cases {
        let e = error_of_two_files(&d, base, over);
        assert!(e.contains(says), "{base}: got {e:?}, want {says:?}");
        assert!(
            !e.contains("over.yaml"),
            "{base}: names the override file: {e}"
        );
    }
}

/// Of three files, the one that wrote the key is named: not a later file that does not write
/// it.
#[test]
fn a_later_file_that_does_not_write_the_key_is_not_named() {
    let (_t, d) = project_dir("p");
    let service = |body: &str| format!("services:\n  web:\n    image: x\n    {body}\n");
    let base = write(&d, "compose.yaml", &service("deploy: {replicas: 2}"));
    let over = write(&d, "over.yaml", &service("scale: 3"));
    let third = write(&d, "third.yaml", &service("environment: {A: '1'}"));
    let e = load(&opts(vec![base, over, third]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("over.yaml: services.web.scale: can't set distinct values"),
        "{e}"
    );
}
