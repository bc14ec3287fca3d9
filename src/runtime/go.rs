//! Go: `go build` then run. Code without `package main` gets one; code
//! without `func main` is treated as the body of `main` (imports are kept
//! at the top). The image carries a warm build cache for the standard library.

use super::{Phase, Program, source_path, step, wrap_body};

pub(super) fn prepare(code: &str) -> Program {
    let source = source_path("main.go");
    let binary = source_path("main");
    let steps = vec![
        step(Phase::Build, &["go", "build", "-o", &binary, &source]),
        step(Phase::Run, &[&binary]),
    ];
    Program::single_file("main.go", wrap(code), steps)
}

fn wrap(code: &str) -> String {
    let has_package = code.lines().any(|line| line.trim_start().starts_with("package "));
    let has_main = code.contains("func main()");
    match (has_package, has_main) {
        (true, true) => code.to_string(),
        (false, true) => format!("package main\n\n{code}"),
        (has_package, false) => {
            let code = if has_package {
                strip_package(code)
            } else {
                code.to_string()
            };
            format!(
                "package main\n\n{}",
                wrap_body(&code, is_import_line(), "func main() {", "}")
            )
        }
    }
}

fn strip_package(code: &str) -> String {
    code.lines()
        .filter(|line| !line.trim_start().starts_with("package "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Recognises `import "x"`, `import (` blocks and the lines inside them.
fn is_import_line() -> impl Fn(&str) -> bool {
    let in_block = std::cell::Cell::new(false);
    move |line: &str| {
        let line = line.trim();
        if in_block.get() {
            if line.starts_with(')') {
                in_block.set(false);
            }
            return true;
        }
        if line.starts_with("import (") || line.starts_with("import(") {
            in_block.set(!line.contains(')'));
            return true;
        }
        line.starts_with("import ") || line.starts_with("//")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_programs_are_untouched() {
        let code = "package main\nimport \"fmt\"\nfunc main() { fmt.Println(1) }\n";
        assert_eq!(wrap(code), code);
    }

    #[test]
    fn one_line_import_blocks_end_on_their_line() {
        let wrapped = wrap("import (\"fmt\"; \"os\")\nfmt.Println(len(os.Args))");
        assert!(
            wrapped.contains("import (\"fmt\"; \"os\")\nfunc main() {\n    fmt.Println"),
            "{wrapped}"
        );
    }

    #[test]
    fn missing_package_is_added() {
        assert!(wrap("func main() {}").starts_with("package main\n"));
    }

    #[test]
    fn statements_are_wrapped_with_imports_hoisted() {
        let wrapped = wrap("import (\n\t\"fmt\"\n)\nx := 2\nfmt.Println(x)");
        assert_eq!(
            wrapped,
            "package main\n\nimport (\n\t\"fmt\"\n)\nfunc main() {\n    x := 2\n    fmt.Println(x)\n}\n"
        );
    }
}
