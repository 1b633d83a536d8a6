//! Link arguments of the release executable.
//!
//! A release build aborts on panic (`panic = "abort"` in Cargo.toml): nothing unwinds the stack,
//! so the unwind tables (~0.7 MB) are left out by `link/no-unwind-tables.ld`. A panic still
//! prints its message and where it happened, then aborts; a `RUST_BACKTRACE` backtrace has no
//! frames (a stripped binary has no names for them anyway). Debug builds and the test binaries
//! keep the tables: they unwind. Only the `rolerelay` binary is linked so, and only on Linux (GNU
//! ld and LLD read the script; `tests/release_link.rs` links a program with it).

use std::env;

fn main() {
    println!("cargo::rerun-if-changed=link/no-unwind-tables.ld");
    let release = env::var("PROFILE").is_ok_and(|profile| profile == "release");
    let linux = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if release && linux {
        let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo::rustc-link-arg-bins=-Wl,--script={dir}/link/no-unwind-tables.ld");
    }
}
