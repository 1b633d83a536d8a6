//! The release executable's link: `build.rs` passes `link/no-unwind-tables.ld`, which leaves the
//! unwind tables out. The tests run a debug build, so this links a small program the same way
//! with this machine's toolchain and checks what the script promises: the tables are gone, and
//! a panic still says what and where before it aborts.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PROGRAM: &str = r#"
fn main() {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let counts: Vec<usize> = words.iter().map(|word| word.len()).collect();
    if words.first().is_some_and(|word| word == "panic") {
        println!("{}", counts[words.len()]);
    }
    println!("{} words", counts.len());
}
"#;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("link/no-unwind-tables.ld")
}

/// Links `PROGRAM` as the release profile does (`panic = "abort"`), with `link_args`.
fn link(dir: &Path, name: &str, link_args: &[String]) -> PathBuf {
    let source = dir.join("program.rs");
    std::fs::write(&source, PROGRAM).unwrap();
    let binary = dir.join(name);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let mut command = Command::new(rustc);
    command.args(["-C", "panic=abort", "-C", "opt-level=s", "-o"]);
    command.arg(&binary).arg(&source);
    for arg in link_args {
        command.arg("-C").arg(format!("link-arg={arg}"));
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "rustc: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}

/// The size of each section of a 64-bit little-endian ELF file, by name.
fn sections(path: &Path) -> Vec<(String, u64)> {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(
        &elf[..6],
        b"\x7fELF\x02\x01",
        "a 64-bit little-endian ELF file"
    );
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap());
    let (table, entry, count) = (u64_at(0x28) as usize, u16_at(0x3a), u16_at(0x3c));
    let header = |index: usize| table + index * entry;
    let names = u64_at(header(u16_at(0x3e)) + 0x18) as usize;
    (0..count)
        .map(|index| {
            let start = names + u32_at(header(index));
            let end = start + elf[start..].iter().position(|&b| b == 0).unwrap();
            let name = String::from_utf8_lossy(&elf[start..end]).into_owned();
            (name, u64_at(header(index) + 0x20))
        })
        .collect()
}

fn size_of(sections: &[(String, u64)], name: &str) -> u64 {
    sections
        .iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, size)| *size)
}

fn run(binary: &Path, args: &[&str], backtrace: bool) -> Output {
    let mut command = Command::new(binary);
    command.args(args).env_remove("RUST_BACKTRACE");
    if backtrace {
        command.env("RUST_BACKTRACE", "1");
    }
    command.output().unwrap()
}

#[test]
fn the_release_link_leaves_the_unwind_tables_out_and_a_panic_still_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let plain = link(dir.path(), "plain", &[]);
    let script_arg = format!("-Wl,--script={}", script().display());
    let trimmed = link(dir.path(), "trimmed", &[script_arg]);

    // The script is what removes them: the same program linked without it carries them.
    let before = size_of(&sections(&plain), ".eh_frame");
    let after = size_of(&sections(&trimmed), ".eh_frame");
    assert!(
        before > 10_000,
        "unwind tables without the script: {before} bytes"
    );
    assert!(
        after < 1_000,
        "unwind tables left: {after} bytes (was {before})"
    );

    let output = run(&trimmed, &["a", "bb"], false);
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "2 words\n");

    for backtrace in [false, true] {
        let output = run(&trimmed, &["panic"], backtrace);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{stderr}");
        assert!(
            stderr.contains("program.rs:6:"),
            "the panic's location: {stderr}"
        );
        assert!(
            stderr.contains("index out of bounds"),
            "the panic's message: {stderr}"
        );
    }
}

#[test]
fn build_rs_links_the_release_binary_with_this_script() {
    let build = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("build.rs"));
    let build = build.unwrap();
    assert!(build.contains("rustc-link-arg-bins=-Wl,--script={dir}/link/no-unwind-tables.ld"));
    assert!(script().exists());
}
