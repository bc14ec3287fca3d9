//! Go: built (as `go build -ldflags="-s -w"` would) then run. Code without
//! `package main` gets one; code without `func main` is treated as the body
//! of `main` (imports are kept at the top). The runner fixes the imports
//! with goimports: always for code wrapped here, and for a full program when
//! its build failed only on missing or unused imports
//! (`images/runner/runner_imports.py`). The image carries a warm build cache
//! for the standard library, and `images/go/go-build.sh` compiles and links
//! with the toolchain's compile and link straight when the program's
//! standard packages are cached (the go command's own work is most of a
//! small program's build), else with `go build`. A session's container
//! keeps its build cache in `/tmp` between executes, and its list of cached
//! packages grows with the programs it builds.

use super::{ImportTool, Phase, Program, import_fixing_build, source_path, step, wrap_body};

/// The build script in the Go image.
const BUILD: &str = "/opt/sandbox/go-build.sh";

pub(super) fn prepare(code: &str) -> Program {
    program(code, &[])
}

/// A session's program: the build notes the standard packages `go build`
/// compiled, so the session's next builds of them take the fast path.
pub(super) fn prepare_cell(code: &str) -> Program {
    program(code, &["session"])
}

fn program(code: &str, build_options: &[&str]) -> Program {
    let source = source_path("main.go");
    let binary = source_path("main");
    let (content, wrapped) = wrap(code);
    let mut build = vec!["sh", BUILD, &binary, &source];
    build.extend_from_slice(build_options);
    let steps = vec![
        import_fixing_build(&build, ImportTool::Goimports, &source, wrapped),
        step(Phase::Run, &[&binary]),
    ];
    Program::single_file("main.go", content, steps)
}

/// The program to build, and whether it was wrapped (the code was not a
/// whole program).
fn wrap(code: &str) -> (String, bool) {
    let has_package = code.lines().any(|line| line.trim_start().starts_with("package "));
    let has_main = code.contains("func main()");
    let wrapped = match (has_package, has_main) {
        (true, true) => return (code.to_string(), false),
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
    };
    (wrapped, true)
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
    use crate::runtime::FixImports;

    #[test]
    fn goimports_runs_first_only_on_wrapped_code() {
        let fix = |code: &str| prepare(code).steps[0].fix_imports.clone();
        let expected = |before_build| {
            Some(FixImports {
                tool: ImportTool::Goimports,
                source: "/tmp/run/main.go".into(),
                before_build,
            })
        };
        assert_eq!(fix("fmt.Println(6 * 7)"), expected(true));
        assert_eq!(fix("package main\nfunc main() {}"), expected(false));
        assert_eq!(prepare("x").steps[1].fix_imports, None);
    }

    #[test]
    fn sessions_keep_their_package_list() {
        let argv = |program: Program| program.steps[0].argv.join(" ");
        assert_eq!(
            argv(prepare("x")),
            "sh /opt/sandbox/go-build.sh /tmp/run/main /tmp/run/main.go"
        );
        assert_eq!(
            argv(prepare_cell("x")),
            "sh /opt/sandbox/go-build.sh /tmp/run/main /tmp/run/main.go session"
        );
    }

    #[test]
    fn full_programs_are_untouched() {
        let code = "package main\nimport \"fmt\"\nfunc main() { fmt.Println(1) }\n";
        assert_eq!(wrap(code), (code.to_string(), false));
    }

    #[test]
    fn one_line_import_blocks_end_on_their_line() {
        let (wrapped, _) = wrap("import (\"fmt\"; \"os\")\nfmt.Println(len(os.Args))");
        assert!(
            wrapped.contains("import (\"fmt\"; \"os\")\nfunc main() {\n    fmt.Println"),
            "{wrapped}"
        );
    }

    #[test]
    fn missing_package_is_added() {
        let (wrapped, was_wrapped) = wrap("func main() {}");
        assert!(wrapped.starts_with("package main\n") && was_wrapped);
    }

    #[test]
    fn statements_are_wrapped_with_imports_hoisted() {
        let wrapped = wrap("import (\n\t\"fmt\"\n)\nx := 2\nfmt.Println(x)");
        assert_eq!(
            wrapped,
            (
                "package main\n\nimport (\n\t\"fmt\"\n)\nfunc main() {\n    x := 2\n    fmt.Println(x)\n}\n"
                    .to_string(),
                true
            )
        );
    }
}
