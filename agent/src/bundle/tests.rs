//! Bundles built here with the `tar` crate: what is refused, what is installed, idempotence.

use std::str::FromStr as _;

use super::*;

/// A gzip tar of (path, mode, contents); `kind` other than Regular for links and the like.
fn bundle(entries: &[(&str, u32, &[u8], tar::EntryType)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (path, mode, contents, kind) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_size(contents.len() as u64);
        if *kind == tar::EntryType::Symlink {
            h.set_link_name("/etc/passwd").unwrap();
        }
        // set_path refuses `..`; write the raw name so the reader sees what an attacker sends.
        let name = path.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, *contents).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn file(
    path: &'static str,
    contents: &'static [u8],
) -> (&'static str, u32, &'static [u8], tar::EntryType) {
    (path, 0o644, contents, tar::EntryType::Regular)
}

#[test]
fn locations_and_checksums_are_parsed_strictly() {
    let loc = S3Location::from_str("s3://deploys.example/shop/abc.tar.gz").unwrap();
    assert_eq!(loc.bucket, "deploys.example");
    assert_eq!(loc.key, "shop/abc.tar.gz");
    assert!(S3Location::from_str("https://x/y").is_err());
    assert!(S3Location::from_str("s3://Bad_Bucket/k").is_err());
    assert!(S3Location::from_str("s3://bucket").is_err());
    assert!(Sha256Hex::from_str(&"a".repeat(64)).is_ok());
    assert!(Sha256Hex::from_str(&"A".repeat(64)).is_err());
    assert!(Sha256Hex::from_str("abc").is_err());
}

#[test]
fn a_bundle_whose_checksum_differs_is_refused() {
    let bytes = bundle(&[file("compose.yaml", b"services: {}\n")]);
    let wrong = Sha256Hex::from_str(&"0".repeat(64)).unwrap();
    let err = verify("s3://b/k", &bytes, &wrong).unwrap_err().to_string();
    assert!(
        err.contains("checksum mismatch") && err.contains("nothing installed"),
        "{err}"
    );
}

#[test]
fn unsafe_entries_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for (entries, want) in [
        (vec![file("../escape", b"x")], "`..`"),
        (vec![file("/etc/cron.d/x", b"x")], "absolute"),
        (
            vec![("link", 0o777, b"" as &[u8], tar::EntryType::Symlink)],
            "Symlink",
        ),
        (
            vec![("fifo", 0o644, b"" as &[u8], tar::EntryType::Fifo)],
            "Fifo",
        ),
        (vec![file(".gantry-bundle.json", b"{}")], "manifest"),
        (vec![file("a/b/c/d/e/f/g/h/i/j", b"x")], "deep"),
        (vec![file(".gantry-bundle.json/x", b"{}")], "manifest"),
        // A path that is a file and the directory of another entry: installing it would
        // write one and fail on the other.
        (
            vec![file("a", b"x"), file("a/b", b"y")],
            "the directory of `a/b`",
        ),
        (
            vec![
                file("conf/a/b", b"y"),
                file("conf-x", b"z"),
                file("conf", b"x"),
            ],
            "the directory of `conf/a/b`",
        ),
    ] {
        let mut all = vec![file("compose.yaml", b"services: {}\n")];
        all.extend(entries);
        let err = read_bundle("s3://b/k", &bundle(&all))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{want}: {err}");
    }
    let err = read_bundle("s3://b/k", b"not gzip")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a gzip-compressed tar"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn install_writes_changes_removes_what_the_last_bundle_owned_and_keeps_the_rest() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("shop");
    std::fs::create_dir(&stack).unwrap();
    // A file the bundle never owned: the env file gantry-secrets renders.
    std::fs::write(stack.join("secrets.env"), "TOKEN=x\n").unwrap();

    let v1 = read_bundle(
        "s3://b/k",
        &bundle(&[
            file("compose.yaml", b"services: {a: {image: x}}\n"),
            file("config/nginx.conf", b"server {}\n"),
            ("run.sh", 0o4777, b"#!/bin/sh\n", tar::EntryType::Regular),
        ]),
    )
    .unwrap();
    let done = install(&v1, &stack, "s1").unwrap();
    assert_eq!(done.written.len(), 3, "{done:?}");
    let mode = |p: &str| {
        std::fs::metadata(stack.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("run.sh"), 0o750, "setuid and world bits dropped");
    assert_eq!(mode("compose.yaml"), 0o640);

    // The same bundle again writes nothing.
    let again = install(&v1, &stack, "s1").unwrap();
    assert!(
        again.written.is_empty() && again.removed.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.unchanged.len(), 3);

    let v2 = read_bundle(
        "s3://b/k",
        &bundle(&[file("compose.yaml", b"services: {a: {image: y}}\n")]),
    )
    .unwrap();
    let done = install(&v2, &stack, "s2").unwrap();
    assert_eq!(done.written, vec!["compose.yaml".to_string()]);
    let mut removed = done.removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        vec!["config/nginx.conf".to_string(), "run.sh".to_string()]
    );
    assert_eq!(
        std::fs::read_to_string(stack.join("secrets.env")).unwrap(),
        "TOKEN=x\n",
        "files the bundle never owned stay"
    );
    assert_eq!(
        std::fs::read_to_string(stack.join("compose.yaml")).unwrap(),
        "services: {a: {image: y}}\n"
    );
}

/// A bundle that turns a directory of the previous one into a file (or a file into a
/// directory) installs: the previous bundle's files in the way are removed first. What no
/// bundle installed in the way is refused before anything is written, naming it.
#[test]
fn a_directory_of_the_last_bundle_may_become_a_file_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("shop");
    let read = |entries: &[(&str, u32, &[u8], tar::EntryType)]| {
        read_bundle("s3://b/k", &bundle(entries)).unwrap()
    };
    let compose = file("compose.yaml", b"services: {a: {image: x}}\n");
    let v1 = read(&[
        compose,
        file("config/nginx.conf", b"server {}\n"),
        file("config/sites/a.conf", b"a\n"),
    ]);
    install(&v1, &stack, "s1").unwrap();

    let v2 = read(&[compose, file("config", b"one file\n")]);
    let done = install(&v2, &stack, "s2").unwrap();
    assert_eq!(done.written, vec!["config".to_string()]);
    let mut removed = done.removed.clone();
    removed.sort();
    assert_eq!(removed, ["config/nginx.conf", "config/sites/a.conf"]);
    assert_eq!(
        std::fs::read_to_string(stack.join("config")).unwrap(),
        "one file\n"
    );

    // And back: the file the last bundle installed gives way to a directory.
    let done = install(&v1, &stack, "s1").unwrap();
    assert_eq!(done.removed, vec!["config".to_string()]);
    assert_eq!(
        std::fs::read_to_string(stack.join("config/sites/a.conf")).unwrap(),
        "a\n"
    );

    // A file no bundle installed (rendered there by hand) is not the bundle's to remove.
    std::fs::write(stack.join("config/sites/local.conf"), "mine\n").unwrap();
    let manifest = std::fs::read(stack.join(MANIFEST)).unwrap();
    let err = install(&v2, &stack, "s2").unwrap_err();
    assert!(matches!(err, BundleError::InTheWay { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("config/sites/local.conf") && text.contains("nothing installed"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(stack.join("config/nginx.conf")).unwrap(),
        "server {}\n",
        "nothing was removed"
    );
    assert_eq!(std::fs::read(stack.join(MANIFEST)).unwrap(), manifest);

    // Nor is a file where the bundle needs a directory.
    std::fs::write(stack.join("data"), "mine\n").unwrap();
    let v3 = read(&[compose, file("data/seed.sql", b"--\n")]);
    let err = install(&v3, &stack, "s3").unwrap_err();
    assert!(matches!(err, BundleError::InTheWay { .. }), "{err:?}");
    assert!(err.to_string().contains("data"), "{err}");
    assert!(
        stack.join("config/nginx.conf").exists(),
        "nothing was removed"
    );
    assert_eq!(std::fs::read(stack.join(MANIFEST)).unwrap(), manifest);
}

#[test]
fn pack_is_deterministic_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), "services: {}\n").unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::write(dir.path().join("conf/app.ini"), "x=1\n").unwrap();
    let (a, sum_a) = pack(dir.path()).unwrap();
    let (b, sum_b) = pack(dir.path()).unwrap();
    assert_eq!(a, b, "same files, same bytes");
    assert_eq!(sum_a, sum_b);
    verify("s3://b/k", &a, &sum_a).unwrap();
    let files = read_bundle("s3://b/k", &a).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, ["compose.yaml", "conf/app.ini"]);
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
    let err = pack(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn a_stack_dir_made_by_a_bundle_takes_the_group_of_the_stacks_dir() {
    use std::os::unix::fs::MetadataExt as _;
    if !gantry_tests::prerequisite(
        nix::unistd::geteuid().is_root(),
        "root (a bundle installs as root and gives files the stacks dir's group)",
    ) {
        return;
    }
    // /etc/gantry/stacks is root:gantry 0750 (tmpfiles); 4242 stands for gantry's gid.
    let dir = tempfile::tempdir().unwrap();
    let stacks = dir.path().join("stacks");
    std::fs::create_dir(&stacks).unwrap();
    std::os::unix::fs::chown(&stacks, None, Some(4242)).unwrap();
    let files = read_bundle(
        "s3://b/k",
        &bundle(&[
            file("compose.yaml", b"services: {a: {image: x}}\n"),
            file("config/nginx.conf", b"server {}\n"),
        ]),
    )
    .unwrap();
    let shop = stacks.join("shop");
    install(&files, &shop, "s1").unwrap();
    for p in ["", "config", "compose.yaml", "config/nginx.conf", MANIFEST] {
        let m = std::fs::metadata(shop.join(p)).unwrap();
        assert_eq!(m.gid(), 4242, "{p:?} is not the stacks dir's group");
        assert_eq!(m.uid(), 0);
    }
}

#[test]
fn install_removes_temp_files_a_killed_fetch_left() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("shop");
    std::fs::create_dir(&stack).unwrap();
    // Above any pid_max: no process has this pid (a fetch-bundle killed by an SSM timeout).
    let left = stack.join("..env.tmp.4194305.0");
    std::fs::write(&left, "DB_PASSWORD=secret\n").unwrap();
    let other = stack.join(".secrets.env.tmp.4194305.0");
    std::fs::write(&other, "TOKEN=x\n").unwrap();
    let files = read_bundle(
        "s3://b/k",
        &bundle(&[
            file("compose.yaml", b"services: {a: {image: x}}\n"),
            file(".env", b"DB_PASSWORD=secret\n"),
        ]),
    )
    .unwrap();
    install(&files, &stack, "s1").unwrap();
    assert!(!left.exists(), "the bundle's own leftover is gone");
    assert!(
        other.exists(),
        "a file the bundle does not own is not its to remove"
    );
}

/// The manifest on disk, as it is.
fn raw_manifest(stack: &std::path::Path) -> String {
    std::fs::read_to_string(stack.join(MANIFEST)).unwrap()
}

/// The manifest on disk, as (sha256, files).
fn manifest_of(stack: &std::path::Path) -> (String, Vec<String>) {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stack.join(MANIFEST)).unwrap()).unwrap();
    let files = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    (v["sha256"].as_str().unwrap().to_owned(), files)
}

/// A file no bundle installed where the bundle puts one of its own (an `.env` made by hand,
/// the `secrets.env` gantry-secrets renders, a link) is not silently taken over, and so never
/// removed later by a bundle that lacks it: refused, nothing written. A byte-identical regular
/// file is adopted: the bundle owns it from then on.
#[test]
fn a_file_no_bundle_installed_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("shop");
    std::fs::create_dir(&stack).unwrap();
    let read = |entries: &[(&str, u32, &[u8], tar::EntryType)]| {
        read_bundle("s3://b/k", &bundle(entries)).unwrap()
    };
    let compose = file("compose.yaml", b"services: {a: {image: x}}\n");

    // First bundle into a stack made by hand: its `.env` holds the operator's secrets.
    std::fs::write(stack.join(".env"), "DB_PASSWORD=hand\n").unwrap();
    let v1 = read(&[compose, file(".env", b"DB_PASSWORD=ci\n")]);
    let err = install(&v1, &stack, "s1").unwrap_err();
    assert!(matches!(err, BundleError::InTheWay { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(".env") && text.contains("nothing installed") && text.contains("remove it"),
        "{text}"
    );
    assert!(
        !text.contains("DB_PASSWORD"),
        "no content in errors: {text}"
    );
    assert_eq!(
        std::fs::read_to_string(stack.join(".env")).unwrap(),
        "DB_PASSWORD=hand\n"
    );
    assert!(!stack.join("compose.yaml").exists(), "nothing written");
    assert!(!stack.join(MANIFEST).exists(), "nothing written");

    // The operator lets the bundle own it by removing it: installed, owned.
    std::fs::remove_file(stack.join(".env")).unwrap();
    install(&v1, &stack, "s1").unwrap();

    // A file rendered beside the bundle's after it was installed is not the bundle's either.
    std::fs::write(stack.join("secrets.env"), "TOKEN=rendered\n").unwrap();
    let v2 = read(&[compose, file("secrets.env", b"TOKEN=ci\n")]);
    let err = install(&v2, &stack, "s2").unwrap_err();
    assert!(matches!(err, BundleError::InTheWay { .. }), "{err:?}");
    assert!(err.to_string().contains("secrets.env"), "{err}");
    assert_eq!(
        std::fs::read_to_string(stack.join("secrets.env")).unwrap(),
        "TOKEN=rendered\n"
    );
    assert!(stack.join(".env").exists(), "nothing removed");
    assert_eq!(manifest_of(&stack).0, "s1");

    // A link is in the way, never followed nor replaced, even to identical contents.
    let outside = dir.path().join("outside.yaml");
    std::fs::write(&outside, "services: {a: {image: x}}\n").unwrap();
    std::os::unix::fs::symlink(&outside, stack.join("local.yaml")).unwrap();
    let v3 = read(&[compose, file("local.yaml", b"services: {a: {image: x}}\n")]);
    let err = install(&v3, &stack, "s3").unwrap_err();
    assert!(matches!(err, BundleError::InTheWay { .. }), "{err:?}");
    assert!(err.to_string().contains("local.yaml"), "{err}");
    assert!(
        std::fs::symlink_metadata(stack.join("local.yaml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(manifest_of(&stack).0, "s1");
    std::fs::remove_file(stack.join("local.yaml")).unwrap();

    // A byte-identical file is adopted: owned from now on, removed by a bundle without it.
    std::fs::write(stack.join("secrets.env"), "TOKEN=ci\n").unwrap();
    install(&v2, &stack, "s2").unwrap();
    assert!(manifest_of(&stack).1.contains(&"secrets.env".to_string()));
    let v4 = read(&[compose]);
    let done = install(&v4, &stack, "s4").unwrap();
    assert_eq!(done.removed, vec!["secrets.env".to_string()]);
}

/// An install that fails part-way (here: a name too long for its temp file, as ENOSPC or EIO
/// would) has already recorded every file it may write in the manifest, so a later bundle
/// still owns and removes what it wrote; the error says the install stopped part-way and that
/// fetching again completes it.
#[test]
fn an_install_cut_short_leaves_no_file_unowned() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("shop");
    let f = |path: &str, contents: &[u8]| unpack::BundleFile {
        path: path.to_owned(),
        mode: 0o640,
        contents: contents.to_vec(),
    };
    install(
        &[f("compose.yaml", b"a\n"), f("old.conf", b"o\n")],
        &stack,
        "s1",
    )
    .unwrap();
    // 250 bytes: a valid name, but `.<name>.tmp.<pid>.<n>` is over NAME_MAX.
    let long = "z".repeat(250);
    let v2 = [
        f("a.conf", b"new\n"),
        f("compose.yaml", b"b\n"),
        f(&long, b"x\n"),
        f("zz.conf", b"z\n"),
    ];
    let err = install(&v2, &stack, "s2").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BundleError::Interrupted { .. }), "{err:?}");
    assert!(
        text.contains("a.conf")
            && text.contains("compose.yaml")
            && text.contains("fetch-bundle again"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(stack.join("a.conf")).unwrap(),
        "new\n",
        "written before the failure"
    );
    let (_, owned) = manifest_of(&stack);
    for p in ["a.conf", "compose.yaml", "old.conf"] {
        assert!(owned.iter().any(|o| o == p), "{p} not in {owned:?}");
    }
    // What it never wrote is not the bundle's: an operator may put a file there.
    for p in [long.as_str(), "zz.conf"] {
        assert!(!owned.iter().any(|o| o == p), "{p} in {owned:?}");
    }
    assert!(!raw_manifest(&stack).contains("pending"), "nothing pending");
    std::fs::write(stack.join("zz.conf"), "mine\n").unwrap();
    let err = install(
        &[f("compose.yaml", b"c\n"), f("zz.conf", b"z\n")],
        &stack,
        "s3",
    )
    .unwrap_err();
    assert!(matches!(err, BundleError::InTheWay { .. }), "{err:?}");
    assert!(err.to_string().contains("zz.conf"), "{err}");
    // A later bundle without a.conf removes it: it was the bundle's. zz.conf stays.
    let done = install(&[f("compose.yaml", b"c\n")], &stack, "s3").unwrap();
    let mut removed = done.removed.clone();
    removed.sort();
    assert_eq!(removed, ["a.conf", "old.conf"]);
    assert_eq!(
        std::fs::read_to_string(stack.join("zz.conf")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        manifest_of(&stack),
        ("s3".into(), vec!["compose.yaml".into()])
    );
}

/// A temp file a killed write left (it may hold the stack's `.env`) is removed even when the
/// next bundle no longer carries that file.
#[test]
fn temp_files_of_files_the_last_bundle_owned_are_removed_too() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("shop");
    let compose = file("compose.yaml", b"services: {a: {image: x}}\n");
    let v1 = read_bundle(
        "s3://b/k",
        &bundle(&[
            compose,
            file(".env", b"DB_PASSWORD=secret\n"),
            file("conf/app.ini", b"x=1\n"),
        ]),
    )
    .unwrap();
    install(&v1, &stack, "s1").unwrap();
    // Above any pid_max: no process has this pid.
    let left = stack.join("..env.tmp.4194305.0");
    std::fs::write(&left, "DB_PASSWORD=secret\n").unwrap();
    let nested = stack.join("conf/.app.ini.tmp.4194305.3");
    std::fs::write(&nested, "x=1\n").unwrap();
    let v2 = read_bundle("s3://b/k", &bundle(&[compose])).unwrap();
    install(&v2, &stack, "s2").unwrap();
    assert!(!left.exists(), "leftover of a file the last bundle owned");
    assert!(!nested.exists(), "leftover of a file the last bundle owned");
    assert!(!stack.join(".env").exists());
}

/// `git archive --format=tar.gz` starts with a PAX global header (the commit id): metadata
/// only, skipped.
#[test]
fn a_pax_global_header_is_skipped() {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let record = format!("52 comment={}\n", "a".repeat(40));
    assert_eq!(record.len(), 52);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XGlobalHeader);
    h.set_path("pax_global_header").unwrap();
    h.set_size(record.len() as u64);
    h.set_mode(0o666);
    h.set_cksum();
    b.append(&h, record.as_bytes()).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("compose.yaml").unwrap();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"x:\n"[..]).unwrap();
    let bytes = b.into_inner().unwrap().finish().unwrap();
    let files = read_bundle("s3://b/k", &bytes).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, ["compose.yaml"]);
}

/// A raw tar entry of `kind` named `name` holding `data`, then `compose.yaml`.
fn with_extension(kind: tar::EntryType, name: &str, data: &[u8]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("compose.yaml").unwrap();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"x:\n"[..]).unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

/// GNU long names and links and PAX records are read by the tar reader itself, into memory:
/// what it decompresses is bounded as a whole, not only the files' contents.
#[test]
fn long_names_and_pax_records_count_toward_the_unpacked_limit() {
    let limits = unpack::Limits {
        unpacked: 1 << 20,
        decompressed: 2 << 20,
    };
    let huge = vec![b'a'; 3 << 20];
    let mut pax = format!("{} comment=", 3 << 20).into_bytes();
    pax.resize((3 << 20) - 1, b'a');
    pax.push(b'\n');
    for (kind, name, data) in [
        (tar::EntryType::GNULongName, "././@LongLink", &huge),
        (tar::EntryType::GNULongLink, "././@LongLink", &huge),
        (tar::EntryType::XHeader, "PaxHeader/compose.yaml", &pax),
    ] {
        let err =
            unpack::read_within("s3://b/k", &with_extension(kind, name, data), limits).unwrap_err();
        assert!(
            err.to_string().contains("unpacks to more than"),
            "{kind:?}: {err}"
        );
    }
    // Small ones are fine within the same limits.
    let ok = with_extension(tar::EntryType::XHeader, "PaxHeader/x", b"12 uid=1000\n");
    assert_eq!(
        unpack::read_within("s3://b/k", &ok, limits).unwrap().len(),
        1
    );
    // The limits hosts use.
    assert_eq!(unpack::Limits::HOST.unpacked, MAX_UNPACKED);
    const {
        assert!(unpack::Limits::HOST.decompressed > MAX_UNPACKED);
        assert!(unpack::Limits::HOST.decompressed <= MAX_UNPACKED + (16 << 20));
    }
}

#[test]
fn a_directory_entry_with_contents_is_refused() {
    let bytes = with_extension(tar::EntryType::Directory, "conf/", b"hidden data");
    let err = read_bundle("s3://b/k", &bytes).unwrap_err().to_string();
    assert!(err.contains("conf") && err.contains("directory"), "{err}");
}

/// What hosts refuse is refused when packing, before anything is uploaded, naming the path.
#[test]
fn pack_refuses_what_hosts_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("compose.yaml"), "services: {}\n").unwrap();

    std::fs::write(root.join(MANIFEST), "{}").unwrap();
    let err = pack(root).unwrap_err().to_string();
    assert!(
        err.contains(MANIFEST) && err.contains("nothing uploaded"),
        "{err}"
    );
    std::fs::remove_file(root.join(MANIFEST)).unwrap();

    let deep = root.join("a/b/c/d/e/f/g/h");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("i"), "x").unwrap();
    let err = pack(root).unwrap_err().to_string();
    assert!(
        err.contains("a/b/c/d/e/f/g/h/i") && err.contains("deep"),
        "{err}"
    );
    std::fs::remove_dir_all(root.join("a")).unwrap();

    // Sparse: no disk used, and refused before it is read.
    let big = std::fs::File::create(root.join("big.bin")).unwrap();
    big.set_len(MAX_UNPACKED + 1).unwrap();
    let err = pack(root).unwrap_err().to_string();
    assert!(
        err.contains("big.bin") && err.contains("unpacks to more than"),
        "{err}"
    );
    std::fs::remove_file(root.join("big.bin")).unwrap();

    let many = root.join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..MAX_ENTRIES {
        std::fs::write(many.join(i.to_string()), "").unwrap();
    }
    let err = pack(root).unwrap_err().to_string();
    assert!(err.contains("more than 2000"), "{err}");
    std::fs::remove_dir_all(&many).unwrap();

    pack(root).unwrap();
}

/// A bundle file of mode 0640.
fn bf(path: &str, contents: &[u8]) -> unpack::BundleFile {
    unpack::BundleFile {
        path: path.to_owned(),
        mode: 0o640,
        contents: contents.to_vec(),
    }
}

fn mkfifo(path: &std::path::Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

fn is_fifo(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// An install killed after its intent manifest (SIGKILL, an SSM timeout) owns a file it meant
/// to write only while that file holds exactly the bytes it meant to write: a file an operator
/// made there after the kill is not the bundle's, neither taken over nor removed.
#[test]
fn a_killed_install_owns_a_file_it_meant_to_write_only_while_it_holds_the_bundles_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("shop");
    install(&[bf("compose.yaml", b"a\n")], &stack, "s1").unwrap();
    let v2 = [
        bf("a.conf", b"new\n"),
        bf("b.conf", b"new\n"),
        bf("compose.yaml", b"b\n"),
    ];
    {
        let _hook = seam::before_changes(|_| std::panic::resume_unwind(Box::new("killed")));
        let killed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| install(&v2, &stack, "s2")));
        assert!(killed.is_err(), "the install goes on past the seam");
    }
    assert!(!stack.join("a.conf").exists(), "killed before any write");
    // a.conf holds what the killed install was writing; b.conf is made by hand after the kill.
    std::fs::write(stack.join("a.conf"), "new\n").unwrap();
    std::fs::write(stack.join("b.conf"), "mine\n").unwrap();

    let manifest = raw_manifest(&stack);
    let err = install(
        &[bf("b.conf", b"ci\n"), bf("compose.yaml", b"c\n")],
        &stack,
        "s3",
    )
    .unwrap_err();
    assert!(matches!(err, BundleError::InTheWay { .. }), "{err:?}");
    assert!(err.to_string().contains("b.conf"), "{err}");
    assert_eq!(
        std::fs::read_to_string(stack.join("b.conf")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(stack.join("compose.yaml")).unwrap(),
        "a\n"
    );
    assert_eq!(raw_manifest(&stack), manifest, "nothing written");

    // A bundle without either removes the killed install's a.conf, and leaves b.conf.
    let done = install(&[bf("compose.yaml", b"c\n")], &stack, "s3").unwrap();
    assert_eq!(done.removed, ["a.conf"]);
    assert_eq!(
        std::fs::read_to_string(stack.join("b.conf")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        manifest_of(&stack),
        ("s3".into(), vec!["compose.yaml".into()])
    );
    assert!(
        !raw_manifest(&stack).contains("pending"),
        "a finished install's manifest has no `pending`, so older gantry versions read it"
    );
}

/// A manifest written before `pending` existed is read as before. One that cannot be read
/// (here: a field this version does not know) is refused, nothing written, and the hint says
/// how to recover without it: files are not rewritten over then, they are in the way.
#[test]
fn an_older_manifest_is_read_and_an_unreadable_one_says_how_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("shop");
    std::fs::create_dir(&stack).unwrap();
    std::fs::write(stack.join("compose.yaml"), "a\n").unwrap();
    std::fs::write(stack.join("old.conf"), "o\n").unwrap();
    std::fs::write(
        stack.join(MANIFEST),
        r#"{"sha256": "s1", "files": ["compose.yaml", "old.conf"]}"#,
    )
    .unwrap();
    let done = install(&[bf("compose.yaml", b"b\n")], &stack, "s2").unwrap();
    assert_eq!(done.written, ["compose.yaml"]);
    assert_eq!(done.removed, ["old.conf"]);

    std::fs::write(
        stack.join(MANIFEST),
        r#"{"sha256": "s2", "files": ["compose.yaml"], "later": 1}"#,
    )
    .unwrap();
    let err = install(&[bf("compose.yaml", b"c\n")], &stack, "s3").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("unreadable manifest")
            && text.contains("move it")
            && text.contains("last installed")
            && !text.contains("rewrites every file"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(stack.join("compose.yaml")).unwrap(),
        "b\n"
    );

    // As the hint says: the manifest moved away, the last bundle adopts its files, then the
    // new one installs.
    std::fs::rename(stack.join(MANIFEST), dir.path().join("moved.json")).unwrap();
    let err = install(&[bf("compose.yaml", b"c\n")], &stack, "s3").unwrap_err();
    assert!(matches!(err, BundleError::InTheWay { .. }), "{err:?}");
    let done = install(&[bf("compose.yaml", b"b\n")], &stack, "s2").unwrap();
    assert_eq!(done.unchanged, ["compose.yaml"]);
    let done = install(&[bf("compose.yaml", b"c\n")], &stack, "s3").unwrap();
    assert_eq!(done.written, ["compose.yaml"]);
}

/// A manifest entry that is not a clean relative path (`..`, absolute, the manifest itself)
/// is refused with the manifest, never joined onto the stack's directory: a bundle would
/// remove what it names.
#[test]
fn a_manifest_naming_a_path_outside_the_stack_is_refused() {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("shop");
    install(&[bf("compose.yaml", b"a\n")], &stack, "s1").unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep\n").unwrap();
    let sum = hex::encode(sha2::Sha256::digest(b"keep\n"));
    let absolute = victim.to_str().unwrap().to_owned();
    for (files, pending) in [
        (
            r#"["compose.yaml", "../victim"]"#.to_owned(),
            "{}".to_owned(),
        ),
        (
            r#"["compose.yaml", "x/../../victim"]"#.to_owned(),
            "{}".to_owned(),
        ),
        (
            format!(r#"["compose.yaml", "{absolute}"]"#),
            "{}".to_owned(),
        ),
        (
            r#"["compose.yaml", ".gantry-bundle.json"]"#.to_owned(),
            "{}".to_owned(),
        ),
        (
            r#"["compose.yaml", "./compose.yaml"]"#.to_owned(),
            "{}".to_owned(),
        ),
        (
            r#"["compose.yaml"]"#.to_owned(),
            format!(r#"{{"../victim": "{sum}"}}"#),
        ),
        (
            r#"["compose.yaml"]"#.to_owned(),
            r#"{"a.conf": "not a checksum"}"#.to_owned(),
        ),
    ] {
        // Without `pending` when empty: the manifest of a finished install.
        let pending = match pending.as_str() {
            "{}" => String::new(),
            p => format!(r#", "pending": {p}"#),
        };
        std::fs::write(
            stack.join(MANIFEST),
            format!(r#"{{"sha256": "s1", "files": {files}{pending}}}"#),
        )
        .unwrap();
        let err = install(&[bf("compose.yaml", b"b\n")], &stack, "s2").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("unreadable manifest") && text.contains("last installed"),
            "{files} {pending}: {text}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
        assert_eq!(
            std::fs::read_to_string(stack.join("compose.yaml")).unwrap(),
            "a\n"
        );
    }
}

/// A symbolic link to a directory inside the stack's directory (`config -> /etc/nginx/conf.d`)
/// is never gone through: a bundle writing below it is refused naming the link, and a file
/// the previous bundle installed below it is not removed, nor temp files swept there. A stack
/// directory that is a dangling link is named.
#[test]
fn a_linked_directory_in_the_stack_is_never_written_or_removed_through() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("shop");
    let outside = dir.path().join("conf.d");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("nginx.conf"), "theirs\n").unwrap();
    // Above any pid_max: a dead writer's.
    let temp = outside.join(".nginx.conf.tmp.4194305.0");
    std::fs::write(&temp, "theirs\n").unwrap();
    let compose = bf("compose.yaml", b"a\n");
    install(
        &[compose.clone(), bf("config/nginx.conf", b"server {}\n")],
        &stack,
        "s1",
    )
    .unwrap();
    std::fs::remove_dir_all(stack.join("config")).unwrap();
    std::os::unix::fs::symlink(&outside, stack.join("config")).unwrap();

    let done = install(std::slice::from_ref(&compose), &stack, "s2").unwrap();
    assert!(done.removed.is_empty(), "{done:?}");
    assert_eq!(
        std::fs::read_to_string(outside.join("nginx.conf")).unwrap(),
        "theirs\n"
    );
    assert!(temp.exists(), "no sweep through the link");

    let err = install(
        &[compose.clone(), bf("config/other.conf", b"x\n")],
        &stack,
        "s3",
    )
    .unwrap_err();
    assert!(matches!(err, BundleError::InTheWay { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&stack.join("config").display().to_string()) && text.contains("link"),
        "{text}"
    );
    assert!(!outside.join("other.conf").exists());

    // Deeper: a link below a real directory of the bundle's.
    std::fs::remove_file(stack.join("config")).unwrap();
    install(&[compose.clone(), bf("a/b/c.conf", b"c\n")], &stack, "s4").unwrap();
    std::fs::remove_dir_all(stack.join("a/b")).unwrap();
    std::os::unix::fs::symlink(&outside, stack.join("a/b")).unwrap();
    let err = install(&[compose.clone(), bf("a/b/c.conf", b"d\n")], &stack, "s5").unwrap_err();
    assert!(matches!(err, BundleError::InTheWay { .. }), "{err:?}");
    assert!(err.to_string().contains("a/b"), "{err}");
    assert!(!outside.join("c.conf").exists());

    let linked = dir.path().join("linked");
    std::os::unix::fs::symlink(dir.path().join("missing"), &linked).unwrap();
    let err = install(std::slice::from_ref(&compose), &linked, "s1").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:", linked.display())) && text.contains("symbolic link"),
        "{text}"
    );
}

/// A FIFO put where a bundle file goes after the install checked the way (under the lock,
/// by hand) is neither read (it would block with the stack's lock held) nor replaced: the
/// install stops there.
#[test]
fn a_fifo_put_in_place_of_a_file_after_the_checks_does_not_hang_the_install() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("shop");
    install(&[bf("compose.yaml", b"a\n")], &stack, "s1").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let at = stack.clone();
    std::thread::spawn(move || {
        let _hook = seam::before_changes(|dir| {
            std::fs::remove_file(dir.join("compose.yaml")).unwrap();
            mkfifo(&dir.join("compose.yaml"));
        });
        let _ = tx.send(install(&[bf("compose.yaml", b"b\n")], &at, "s2"));
    });
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the install hangs on the FIFO");
    let err = result.unwrap_err();
    assert!(matches!(err, BundleError::Interrupted { .. }), "{err:?}");
    assert!(err.to_string().contains("compose.yaml"), "{err}");
    assert!(is_fifo(&stack.join("compose.yaml")), "left as it is");
}

/// A FIFO where a bundle file goes is in the way, whether or not a bundle installed a file
/// there before; it is never opened.
#[test]
fn a_fifo_where_a_bundle_file_goes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("shop");
    std::fs::create_dir(&stack).unwrap();
    mkfifo(&stack.join("compose.yaml"));
    let err = install(&[bf("compose.yaml", b"a\n")], &stack, "s1").unwrap_err();
    assert!(matches!(err, BundleError::InTheWay { .. }), "{err:?}");
    assert!(err.to_string().contains("compose.yaml"), "{err}");
    assert!(!stack.join(MANIFEST).exists(), "nothing written");

    std::fs::remove_file(stack.join("compose.yaml")).unwrap();
    install(&[bf("compose.yaml", b"a\n")], &stack, "s1").unwrap();
    std::fs::remove_file(stack.join("compose.yaml")).unwrap();
    mkfifo(&stack.join("compose.yaml"));
    let err = install(&[bf("compose.yaml", b"b\n")], &stack, "s2").unwrap_err();
    assert!(matches!(err, BundleError::InTheWay { .. }), "{err:?}");
    assert!(is_fifo(&stack.join("compose.yaml")));
}
