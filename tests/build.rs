//! Ties the test binaries to the checkout they are built in.
//!
//! They find the repository's files (scripts, stand-ins, compose stacks) through
//! `CARGO_MANIFEST_DIR`, fixed at compile time. Cargo's target dir outlives checkouts (a CI
//! clone shares it with the working copy), and cargo judges a test binary fresh when its
//! sources are no newer than it: a binary built in another checkout would be reused, pointing
//! at that checkout's files, which may differ or be gone. The absolute path below changes with
//! the checkout, so this script runs again there and the binaries are rebuilt.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed={dir}/build.rs");
    println!("cargo:rustc-env=GANTRY_TESTS_CHECKOUT={dir}");
}
