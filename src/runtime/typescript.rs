//! TypeScript: esbuild strips the types (no type-check, so it starts fast),
//! then Node.js runs the result. Code that uses `require` without module
//! syntax is emitted as CommonJS, everything else as an ES module.

use super::{Phase, Program, javascript::uses_module_syntax, source_path, step};

/// A session cell: esbuild strips the types but keeps the module syntax
/// (the Node kernel rewrites imports), then the kernel runs the result.
/// `verbatimModuleSyntax` keeps imports the cell itself does not use, so a
/// later cell can use them.
pub(super) fn prepare_cell(code: &str) -> Program {
    let source = source_path("cell.ts");
    let output = source_path("cell.js");
    let strip = step(
        Phase::Build,
        &[
            "esbuild",
            &source,
            &format!("--outfile={output}"),
            r#"--tsconfig-raw={"compilerOptions":{"verbatimModuleSyntax":true}}"#,
            "--target=node20",
            "--log-level=warning",
        ],
    );
    Program::cell("cell.ts", code.to_string(), vec![strip], "cell.js")
}

pub(super) fn prepare(code: &str) -> Program {
    let commonjs = code.contains("require(") && !uses_module_syntax(code);
    let (format, output) = if commonjs {
        ("cjs", "main.cjs")
    } else {
        ("esm", "main.mjs")
    };
    let source = source_path("main.ts");
    let output = source_path(output);
    let steps = vec![
        step(
            Phase::Build,
            &[
                "esbuild",
                &source,
                &format!("--outfile={output}"),
                &format!("--format={format}"),
                "--platform=node",
                "--target=node20",
                "--log-level=warning",
            ],
        ),
        step(Phase::Run, &["node", &output]),
    ];
    Program::single_file("main.ts", code.to_string(), steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_code_builds_as_esm_then_runs() {
        let program = prepare("const x: number = 1; console.log(x)");
        assert_eq!(program.steps[0].phase, Phase::Build);
        assert!(program.steps[0].argv.contains(&"--format=esm".to_string()));
        assert_eq!(program.steps[1].argv[1], source_path("main.mjs"));
    }

    #[test]
    fn require_code_builds_as_commonjs() {
        let program = prepare("const fs = require('fs'); const n: number = 2;");
        assert!(program.steps[0].argv.contains(&"--format=cjs".to_string()));
    }
}
