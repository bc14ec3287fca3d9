//! Languages: one module per language says which image runs it, which source
//! file the code goes into, and the build/run steps the in-container runner
//! executes. Nothing here talks to Docker.

mod bash;
mod go;
mod javascript;
pub mod packages;
mod python;
pub mod registries;
mod rust;
mod typescript;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// Where the runner writes program sources inside the container (a tmpfs,
/// kept apart from the user's files in `/workspace`).
pub const SOURCE_DIR: &str = "/tmp/run";

/// A request named a language this server does not run.
#[derive(Debug, Error)]
#[error("unknown language `{given}`. Supported languages: {supported}")]
pub struct UnknownLanguage {
    pub given: String,
    pub supported: String,
}

/// A language the sandbox runs. Its name (`python`, …) is the one used in
/// tool arguments, results and image names; parsing also takes the common
/// aliases in any letter case.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, strum::IntoStaticStr, strum::EnumString, strum::Display,
)]
#[strum(ascii_case_insensitive)]
pub enum Language {
    #[strum(to_string = "python", serialize = "python3", serialize = "py")]
    Python,
    #[strum(to_string = "javascript", serialize = "js", serialize = "node", serialize = "nodejs")]
    JavaScript,
    #[strum(to_string = "typescript", serialize = "ts")]
    TypeScript,
    #[strum(to_string = "go", serialize = "golang")]
    Go,
    #[strum(to_string = "rust", serialize = "rs")]
    Rust,
    #[strum(to_string = "bash", serialize = "sh", serialize = "shell")]
    Bash,
}

impl Language {
    /// Every supported language, in the order the docs list them.
    pub const ALL: [Language; 6] = [
        Language::Python,
        Language::JavaScript,
        Language::TypeScript,
        Language::Go,
        Language::Rust,
        Language::Bash,
    ];

    /// The canonical name used in tool arguments, results and image names.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Parses a language name, accepting common aliases (`py`, `js`, `node`,
    /// `ts`, `golang`, `rs`, `sh`, `shell`) in any letter case.
    pub fn parse(given: &str) -> Result<Language, UnknownLanguage> {
        given.trim().parse().map_err(|_| UnknownLanguage {
            given: given.to_string(),
            supported: Language::ALL.map(Language::name).join(", "),
        })
    }

    /// The long-lived interpreter that keeps a session's state, if the
    /// language has one (Go and Rust sessions keep files, not variables).
    pub fn kernel(self) -> Option<Kernel> {
        match self {
            Language::Python => Some(Kernel::Python),
            Language::JavaScript | Language::TypeScript => Some(Kernel::Node),
            Language::Bash => Some(Kernel::Bash),
            Language::Go | Language::Rust => None,
        }
    }

    /// What a pooled (stateless) container pre-starts, so a pool hit pays
    /// no interpreter start-up: Python's kernel (a fresh `__main__` for the
    /// one execute), and for JavaScript and TypeScript a `node` that becomes
    /// the program ([`Kernel::NodeMain`]). Go, Rust and Bash start nothing.
    pub fn pool_kernel(self) -> Option<Kernel> {
        match self {
            Language::Python => Some(Kernel::Python),
            Language::JavaScript | Language::TypeScript => Some(Kernel::NodeMain),
            Language::Go | Language::Rust | Language::Bash => None,
        }
    }

    /// The program for a stateless execute in a container that pre-started
    /// `kernel` (see [`Language::pool_kernel`]). A started `node` cannot take
    /// a variable read while it starts (`NODE_OPTIONS`, proxies, `LD_*`,
    /// the locale, …), so code with such an `env` runs in a fresh `node`.
    pub fn prepare_pooled(self, kernel: Kernel, code: &str, env: &BTreeMap<String, String>) -> Program {
        let program = self.prepare(code);
        match kernel {
            Kernel::NodeMain if !env.keys().any(|name| node_reads_at_start(name)) => program.run_by_node_main(),
            Kernel::NodeMain => program,
            Kernel::Python | Kernel::Node | Kernel::Bash => self.prepare_cell(code),
        }
    }

    /// Turns user code into a request for the language's kernel: the files,
    /// any build step (TypeScript's type stripping) and the file the kernel runs.
    /// Languages without a kernel (Go, Rust) get their build-and-run program
    /// with the session's build caches.
    pub fn prepare_cell(self, code: &str) -> Program {
        match self {
            Language::Python => python::prepare_cell(code),
            Language::JavaScript => javascript::prepare_cell(code),
            Language::TypeScript => typescript::prepare_cell(code),
            Language::Bash => bash::prepare_cell(code),
            Language::Go => go::prepare_cell(code),
            Language::Rust => rust::prepare_cell(code),
        }
    }

    /// Turns user code into the files and steps the runner executes as
    /// fresh processes.
    pub fn prepare(self, code: &str) -> Program {
        match self {
            Language::Python => python::prepare(code),
            Language::JavaScript => javascript::prepare(code),
            Language::TypeScript => typescript::prepare(code),
            Language::Go => go::prepare(code),
            Language::Rust => rust::prepare(code),
            Language::Bash => bash::prepare(code),
        }
    }
}

/// A long-lived interpreter inside a container (see `images/runner/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Kernel {
    Python,
    Node,
    Bash,
    /// Not a kernel that keeps state: a `node` started ahead of a stateless
    /// execute, which becomes that one program (`images/runner/node_main.js`).
    #[serde(rename = "node-main")]
    #[strum(serialize = "node-main")]
    NodeMain,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// A source file the runner writes before running the steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceFile {
    pub path: String,
    pub content: String,
}

/// Where a program is: writing its files, compiling it or running it. A
/// step is `Build` or `Run`; a runner's result and progress name the phase
/// the program got to (`Setup` when its files could not be written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Phase {
    Setup,
    Build,
    Run,
}

impl Phase {
    /// The name used on the wire and in execute results.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// One command the runner executes; a failing build step stops the program.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub phase: Phase,
    pub argv: Vec<String>,
    /// A build that adds the program's missing imports and tries once more
    /// (Go and Rust snippets; `images/runner/runner_imports.py`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix_imports: Option<FixImports>,
    /// The same build served by a tool the runner keeps running, when it
    /// has one (`images/runner/runner_esbuild.py`); `argv` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform: Option<Transform>,
}

impl Step {
    /// A step that runs `argv` as it is.
    pub fn new(phase: Phase, argv: Vec<String>) -> Step {
        Step {
            phase,
            argv,
            fix_imports: None,
            transform: None,
        }
    }
}

/// How the runner fixes a build's imports; the result's notes say what it
/// changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FixImports {
    pub tool: ImportTool,
    /// The source file the tool changes.
    pub source: String,
    /// Run the tool before the first build too (Go code the server wrapped),
    /// not only after a build that failed on imports alone.
    pub before_build: bool,
}

/// A build that turns one source file into one output file, as `argv`
/// would: `esbuild <source> --outfile=<output> <flags>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transform {
    pub tool: TransformTool,
    /// The file the tool reads.
    pub source: String,
    /// The file it writes (the next step runs it).
    pub output: String,
    /// The tool's options, as on its command line (`--format=esm`, …).
    pub flags: Vec<String>,
}

/// A tool the runner can keep running between builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransformTool {
    /// esbuild's service (its JavaScript API's protocol): strips TypeScript's types.
    Esbuild,
}

/// What finds a program's missing imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportTool {
    /// Go's goimports: adds standard-library imports, drops unused ones.
    Goimports,
    /// rustc's own "consider importing" suggestions (one candidate each).
    Rustc,
}

/// Everything the runner needs to run one piece of code.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Program {
    pub files: Vec<SourceFile>,
    /// Steps run as fresh processes (for a kernel request: build steps only).
    pub steps: Vec<Step>,
    /// For a kernel request: the file the kernel runs after the steps.
    pub kernel_source: Option<String>,
}

impl Program {
    /// A program of one source file at `SOURCE_DIR/file_name`.
    fn single_file(file_name: &str, content: String, steps: Vec<Step>) -> Program {
        Program {
            files: vec![SourceFile {
                path: source_path(file_name),
                content,
            }],
            steps,
            kernel_source: None,
        }
    }

    /// A kernel request: `file_name` holds the code, `steps` prepare it, and
    /// the kernel runs `kernel_file`.
    fn cell(file_name: &str, content: String, steps: Vec<Step>, kernel_file: &str) -> Program {
        Program {
            kernel_source: Some(source_path(kernel_file)),
            ..Program::single_file(file_name, content, steps)
        }
    }

    /// True when the kernel runs this program.
    pub fn uses_kernel(&self) -> bool {
        self.kernel_source.is_some()
    }

    /// The same program with its final `node <file>` step left to a
    /// pre-started `node` ([`Kernel::NodeMain`]); a program that does not
    /// end that way is returned as it is.
    fn run_by_node_main(mut self) -> Program {
        let Some(last) = self.steps.last() else {
            return self;
        };
        if let (Phase::Run, [node, file]) = (last.phase, last.argv.as_slice())
            && node == "node"
        {
            self.kernel_source = Some(file.clone());
            self.steps.pop();
        }
        self
    }
}

/// True for an environment variable read only while a `node` process
/// starts: by Node.js itself, by the image's proxy preload, by the dynamic
/// loader and the C library (`LD_*`, `GLIBC_TUNABLES`, `MALLOC_*`), or for
/// the default locale (`LANG`, `LC_*`).
fn node_reads_at_start(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["NODE_", "UV_", "SSL_CERT_", "OPENSSL_", "LD_", "MALLOC_", "LC_"]
        .iter()
        .any(|prefix| upper.starts_with(prefix))
        || matches!(
            upper.as_str(),
            "HTTP_PROXY" | "HTTPS_PROXY" | "NO_PROXY" | "ALL_PROXY" | "GLIBC_TUNABLES" | "LANG" | "LANGUAGE"
        )
}

/// Absolute path of a source file inside the container.
fn source_path(file_name: &str) -> String {
    format!("{SOURCE_DIR}/{file_name}")
}

fn step(phase: Phase, argv: &[&str]) -> Step {
    Step::new(phase, argv.iter().map(|arg| arg.to_string()).collect())
}

/// A build step that fixes `source`'s imports with `tool`.
fn import_fixing_build(argv: &[&str], tool: ImportTool, source: &str, before_build: bool) -> Step {
    Step {
        fix_imports: Some(FixImports {
            tool,
            source: source.to_string(),
            before_build,
        }),
        ..step(Phase::Build, argv)
    }
}

/// Moves leading "header" lines (imports and the like, as `is_header` says)
/// in front and wraps the remaining lines in `open` … `close`. Used to run
/// statement-only Go and Rust snippets.
fn wrap_body(code: &str, is_header: impl Fn(&str) -> bool, open: &str, close: &str) -> String {
    let mut header = String::new();
    let mut body = String::new();
    let mut in_body = false;
    for line in code.lines() {
        if !in_body && (line.trim().is_empty() || is_header(line)) {
            header.push_str(line);
            header.push('\n');
        } else {
            in_body = true;
            body.push_str("    ");
            body.push_str(line);
            body.push('\n');
        }
    }
    format!("{header}{open}\n{body}{close}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_parse_to_languages() {
        assert_eq!(Language::parse("PY").unwrap(), Language::Python);
        assert_eq!(Language::parse("node").unwrap(), Language::JavaScript);
        assert_eq!(Language::parse(" ts ").unwrap(), Language::TypeScript);
        assert_eq!(Language::parse("golang").unwrap(), Language::Go);
        assert_eq!(Language::parse("rs").unwrap(), Language::Rust);
        assert_eq!(Language::parse("sh").unwrap(), Language::Bash);
        assert_eq!(Language::parse("NodeJS").unwrap(), Language::JavaScript);
        for language in Language::ALL {
            assert_eq!(Language::parse(language.name()).unwrap(), language);
            assert_eq!(language.to_string(), language.name());
        }
        let names: Vec<&str> = Language::ALL.map(Language::name).to_vec();
        assert_eq!(names, ["python", "javascript", "typescript", "go", "rust", "bash"]);
    }

    #[test]
    fn unknown_language_lists_supported_ones() {
        let error = Language::parse("cobol").unwrap_err().to_string();
        assert!(error.contains("cobol"));
        assert!(error.contains("python, javascript, typescript, go, rust, bash"));
    }

    #[test]
    fn kernel_cells_name_the_file_the_kernel_runs() {
        for language in Language::ALL {
            let cell = language.prepare_cell("x");
            assert_eq!(cell.uses_kernel(), language.kernel().is_some(), "{language}");
            if let Some(source) = &cell.kernel_source {
                assert!(source.starts_with(SOURCE_DIR));
                assert!(cell.steps.iter().all(|step| step.phase == Phase::Build));
            }
        }
        let ts = Language::TypeScript.prepare_cell("let x: number = 1");
        assert_eq!(ts.kernel_source.as_deref(), Some("/tmp/run/cell.js"));
        assert_eq!(ts.steps.len(), 1);
    }

    #[test]
    fn pooled_node_programs_leave_their_run_to_the_started_node() {
        let plain = BTreeMap::new();
        let js = Language::JavaScript.prepare_pooled(Kernel::NodeMain, "console.log(1)", &plain);
        assert_eq!(js.kernel_source.as_deref(), Some("/tmp/run/main.js"));
        assert!(js.steps.is_empty());
        let esm = Language::JavaScript.prepare_pooled(Kernel::NodeMain, "import fs from 'fs'", &plain);
        assert_eq!(esm.kernel_source.as_deref(), Some("/tmp/run/main.mjs"));
        let ts = Language::TypeScript.prepare_pooled(Kernel::NodeMain, "const x: number = 1", &plain);
        assert_eq!(ts.kernel_source.as_deref(), Some("/tmp/run/main.cjs"));
        assert_eq!(ts.steps.len(), 1);
        assert_eq!(ts.steps[0].phase, Phase::Build);
        let python = Language::Python.prepare_pooled(Kernel::Python, "x = 1", &plain);
        assert_eq!(python, Language::Python.prepare_cell("x = 1"));
    }

    #[test]
    fn a_variable_node_reads_at_start_gets_a_fresh_node() {
        for name in [
            "NODE_OPTIONS",
            "node_path",
            "https_proxy",
            "UV_THREADPOOL_SIZE",
            "SSL_CERT_FILE",
        ] {
            let env = BTreeMap::from([(name.to_string(), "x".to_string())]);
            let program = Language::JavaScript.prepare_pooled(Kernel::NodeMain, "console.log(1)", &env);
            assert_eq!(program, Language::JavaScript.prepare("console.log(1)"), "{name}");
        }
        let env = BTreeMap::from([("GREETING".to_string(), "hi".to_string())]);
        let program = Language::JavaScript.prepare_pooled(Kernel::NodeMain, "console.log(1)", &env);
        assert!(program.uses_kernel());
    }

    #[test]
    fn kernel_names_are_the_runners() {
        assert_eq!(Kernel::NodeMain.name(), "node-main");
        assert_eq!(serde_json::to_value(Kernel::NodeMain).unwrap(), "node-main");
        assert_eq!(
            serde_json::from_value::<Kernel>("python".into()).unwrap(),
            Kernel::Python
        );
    }

    #[test]
    fn every_language_has_a_run_step() {
        for language in Language::ALL {
            let program = language.prepare("x");
            assert_eq!(program.files.len(), 1);
            assert!(program.files[0].path.starts_with(SOURCE_DIR));
            assert_eq!(program.steps.last().map(|s| s.phase), Some(Phase::Run));
        }
    }
}
