//! Bounded inputs and timeouts through the built `gantry` (in-process mode) and a real Docker:
//! a pull from a registry that accepts and never answers is cut by `--timeout`; a compose file
//! that is a FIFO is refused at once with exit 65.

use std::io::Read as _;
use std::net::TcpListener;
use std::time::Duration;

use gantry_tests::stack::Stack;
use gantry_tests::{stderr, stdout};

/// A registry stand-in (not a registry): a loopback listener that accepts every connection
/// and never sends a byte, the way a wedged registry or proxy behaves. Returns its port.
fn silent_registry() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            let mut c = conn;
            let _ = c.set_read_timeout(Some(Duration::from_millis(10)));
            let _ = c.read(&mut [0u8; 1024]);
            held.push(c); // kept open, never answered
        }
    });
    port
}

#[test]
fn timeout_cuts_a_stalled_pull_and_frees_the_stack() {
    let port = silent_registry();
    let stack = Stack::with_file(&format!(
        "services:\n  app:\n    image: 127.0.0.1:{port}/gantry-test/never:1\n    command: [\"sleep\", \"3600\"]\n"
    ));
    let out = stack.deploy(&["--timeout", "4s"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("did not finish within 4s (--timeout)"),
        "{text}"
    );
    // Nothing holds the stack: the next deploy gets its lock at once (no 75) and is cut too.
    let out = stack.deploy(&["--timeout", "2s"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stack.containers().is_empty(), "nothing was created");
}

#[test]
fn a_compose_file_that_is_a_fifo_is_refused_at_once() {
    let stack = Stack::with_file("services: {}\n");
    let file = stack.file();
    std::fs::remove_file(&file).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&file).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    // Nothing ever opens the FIFO to write: a loader that read it would wait for a writer
    // that never comes, so the exit and its message prove it was refused, not read.
    let out = stack.gantry(&["plan", &stack.name, "-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("compose.yaml") && err.contains("a FIFO"),
        "{err}"
    );
    assert!(
        !stack.state.path().join("stacks").exists(),
        "a read-only request made a phantom stack"
    );
}
