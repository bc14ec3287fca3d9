//! Rust: `rustc` (edition 2021, debug build for fast compiles) then run;
//! installed crates are linked with `--extern`. Linking is most of a small
//! program's build: the standard library's debug info is left out of the
//! binary (`-C strip=debuginfo`; the program itself has none in a debug
//! build without `-g`) and gold links. A session compiles incrementally,
//! into a cache in its container's `/tmp`, so a changed program rebuilds
//! only what changed. Code
//! without `fn main` is treated as the body of `main` (`use` lines and inner
//! attributes are kept at the top). When every compile error is a missing
//! import rustc can name, the runner adds rustc's suggested `use` lines
//! and compiles once more (`images/runner/runner_imports.py`).

use super::{ImportTool, Phase, Program, import_fixing_build, source_path, step, wrap_body};

pub(super) fn prepare(code: &str) -> Program {
    program(code, BUILD)
}

/// A session's program: compiled incrementally, the cache kept in the
/// session's container between executes.
pub(super) fn prepare_cell(code: &str) -> Program {
    program(code, &format!("{BUILD} -C incremental={INCREMENTAL_DIR}"))
}

fn program(code: &str, build: &str) -> Program {
    let source = source_path("main.rs");
    let binary = source_path("main");
    let steps = vec![
        import_fixing_build(
            &["sh", "-c", build, &binary, &source],
            ImportTool::Rustc,
            &source,
            false,
        ),
        step(Phase::Run, &[&binary]),
    ];
    Program::single_file("main.rs", wrap(code), steps)
}

/// Compiles `$1` to `$0`, linking crates installed with sandbox_install
/// (the `rustc-flags` files written by `images/rust/cargo-install.sh`, for
/// the cached image's crates and the session's own). The runner sets
/// SANDBOX_RUSTC_ERRORS=json to read the diagnostics (it shows people
/// their rendered text).
const BUILD: &str = "exec rustc --edition 2021 -C opt-level=0 -C strip=debuginfo -C link-arg=-fuse-ld=gold \
    ${SANDBOX_RUSTC_ERRORS:+--error-format=json} \
    $(cat /packages/rust/rustc-flags /packages/session/rust/rustc-flags 2>/dev/null) -o \"$0\" \"$1\"";

/// Where a session's rustc keeps its incremental cache (the container's
/// tmpfs: it lives and goes with the session's container).
const INCREMENTAL_DIR: &str = "/tmp/rust-incremental";

fn wrap(code: &str) -> String {
    if code.contains("fn main(") {
        return code.to_string();
    }
    wrap_body(
        code,
        |line| {
            let line = line.trim_start();
            line.starts_with("use ")
                || line.starts_with("extern crate ")
                || line.starts_with("#![")
                || line.starts_with("//")
        },
        "fn main() {",
        "}",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sessions_compile_incrementally() {
        let build = |program: Program| program.steps[0].argv[2].clone();
        assert!(!build(prepare("x")).contains("incremental"));
        assert!(build(prepare_cell("x")).ends_with(" -C incremental=/tmp/rust-incremental"));
    }

    #[test]
    fn programs_with_main_are_untouched() {
        let code = "fn main() { println!(\"hi\"); }";
        assert_eq!(wrap(code), code);
    }

    #[test]
    fn statements_are_wrapped_with_uses_hoisted() {
        let wrapped = wrap(
            "use std::collections::HashMap;\nlet m: HashMap<u8, u8> = HashMap::new();\nprintln!(\"{}\", m.len());",
        );
        assert_eq!(
            wrapped,
            "use std::collections::HashMap;\nfn main() {\n    let m: HashMap<u8, u8> = HashMap::new();\n    println!(\"{}\", m.len());\n}\n"
        );
    }
}
