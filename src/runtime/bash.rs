//! Bash: the code runs as a script with `bash`.

use super::{Phase, Program, source_path, step};

pub(super) fn prepare(code: &str) -> Program {
    let path = source_path("main.sh");
    Program::single_file(
        "main.sh",
        code.to_string(),
        vec![step(Phase::Run, &["bash", &path])],
    )
}
