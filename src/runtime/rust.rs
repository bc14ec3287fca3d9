//! Rust: `rustc` (edition 2021, debug build for fast compiles) then run;
//! installed crates are linked with `--extern`. Code
//! without `fn main` is treated as the body of `main` (`use` lines and inner
//! attributes are kept at the top). When every compile error is a missing
//! import rustc can name, the runner adds rustc's suggested `use` lines
//! and compiles once more (`images/runner/runner_imports.py`).

use super::{ImportTool, Phase, Program, import_fixing_build, source_path, step, wrap_body};

pub(super) fn prepare(code: &str) -> Program {
    let source = source_path("main.rs");
    let binary = source_path("main");
    let steps = vec![
        import_fixing_build(
            &["sh", "-c", BUILD, &binary, &source],
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
const BUILD: &str = "exec rustc --edition 2021 -C opt-level=0 \
    ${SANDBOX_RUSTC_ERRORS:+--error-format=json} \
    $(cat /packages/rust/rustc-flags /packages/session/rust/rustc-flags 2>/dev/null) -o \"$0\" \"$1\"";

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
