//! TypeScript: esbuild strips the types (no type-check, so it starts fast),
//! then Node.js runs the result. The runner keeps esbuild running as a
//! service where the image has it, so stripping is a request, not a process.
//! Code that needs nothing of an ES module is emitted as CommonJS (Node.js
//! loads it faster), in strict mode as an ES module would run, and so is
//! code that uses `require`; everything else as an ES module.

use super::{Phase, Program, Step, Transform, TransformTool, javascript::uses_module_syntax, source_path, step};

/// A session cell: esbuild strips the types but keeps the module syntax
/// (the Node kernel rewrites imports), then the kernel runs the result.
/// `verbatimModuleSyntax` keeps imports the cell itself does not use, so a
/// later cell can use them.
pub(super) fn prepare_cell(code: &str) -> Program {
    let strip = strip_types(
        "cell.ts",
        "cell.js",
        &[
            r#"--tsconfig-raw={"compilerOptions":{"verbatimModuleSyntax":true}}"#,
            "--target=node20",
        ],
    );
    Program::cell("cell.ts", code.to_string(), vec![strip], "cell.js")
}

pub(super) fn prepare(code: &str) -> Program {
    let (format, output) = if runs_as_commonjs(code) {
        ("--format=cjs", "main.cjs")
    } else {
        ("--format=esm", "main.mjs")
    };
    let steps = vec![
        strip_types(
            "main.ts",
            output,
            &[
                format,
                "--platform=node",
                "--target=node20",
                r#"--tsconfig-raw={"compilerOptions":{"alwaysStrict":true}}"#,
            ],
        ),
        step(Phase::Run, &["node", &source_path(output)]),
    ];
    Program::single_file("main.ts", code.to_string(), steps)
}

/// True for code that runs as CommonJS: code that uses `require` and no
/// module syntax, and code that needs nothing of an ES module and could
/// not tell the difference: no `import`, `export` or `await` (a plain
/// check of the words: it cannot tell a top-level `await` from a nested
/// one, or a keyword from a string, so any mention keeps the ES module),
/// and none of the names CommonJS's wrapper declares (`module`, `exports`,
/// `require`, `__filename`, `__dirname`: code that declares one of its own
/// would fail there).
fn runs_as_commonjs(code: &str) -> bool {
    const ES_MODULE_WORDS: [&str; 7] = [
        "import",
        "export",
        "await",
        "module",
        "require",
        "__filename",
        "__dirname",
    ];
    (code.contains("require(") && !uses_module_syntax(code)) || !ES_MODULE_WORDS.iter().any(|word| code.contains(word))
}

/// The build step that strips `source_name`'s types into `output_name`:
/// esbuild's service in the runner when it has one, `esbuild` itself if not.
fn strip_types(source_name: &str, output_name: &str, flags: &[&str]) -> Step {
    let source = source_path(source_name);
    let output = source_path(output_name);
    let flags: Vec<String> = flags.iter().map(|flag| flag.to_string()).collect();
    let mut argv = vec!["esbuild".to_string(), source.clone(), format!("--outfile={output}")];
    argv.extend(flags.iter().cloned());
    argv.push("--log-level=warning".to_string());
    Step {
        transform: Some(Transform {
            tool: TransformTool::Esbuild,
            source,
            output,
            flags,
        }),
        ..Step::new(Phase::Build, argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_code_builds_as_esm_then_runs() {
        let program = prepare("import fs from 'node:fs'; const x: number = 1; console.log(x)");
        assert_eq!(program.steps[0].phase, Phase::Build);
        assert!(program.steps[0].argv.contains(&"--format=esm".to_string()));
        assert_eq!(program.steps[1].argv[1], source_path("main.mjs"));
        for code in [
            "const r: Response = await fetch(url)",
            "const module: number = 1; console.log(module)",
            "console.log(typeof __dirname)",
        ] {
            assert!(
                prepare(code).steps[0].argv.contains(&"--format=esm".to_string()),
                "{code}"
            );
        }
    }

    #[test]
    fn plain_code_builds_as_strict_commonjs() {
        for code in [
            "const x: number = 1; console.log(x)",
            "const fs = require('fs'); const n: number = 2;",
            "const fs = require('fs');\nasync function f(): Promise<void> { console.log((await fs.promises.readdir('.')).length) }\nf()",
        ] {
            let program = prepare(code);
            assert!(program.steps[0].argv.contains(&"--format=cjs".to_string()), "{code}");
            assert!(
                program.steps[0].argv.iter().any(|arg| arg.contains("alwaysStrict")),
                "{code}"
            );
            assert_eq!(program.steps[1].argv[1], source_path("main.cjs"));
        }
    }

    #[test]
    fn the_strip_step_says_the_same_to_the_service_and_to_esbuild() {
        let step = &prepare("console.log(1)").steps[0];
        let transform = step.transform.as_ref().expect("a transform");
        assert_eq!(transform.tool, TransformTool::Esbuild);
        assert_eq!(step.argv[1], transform.source);
        assert_eq!(step.argv[2], format!("--outfile={}", transform.output));
        for flag in &transform.flags {
            assert!(step.argv.contains(flag), "{flag}");
        }
    }
}
