//! Bash: the code runs as a script with `bash`, or in a session is sourced
//! by the runner's Bash kernel so variables, functions and `cd` persist.

use super::{Phase, Program, source_path, step};

pub(super) fn prepare_cell(code: &str) -> Program {
    Program::cell("cell.sh", code.to_string(), Vec::new(), "cell.sh")
}

pub(super) fn prepare(code: &str) -> Program {
    let path = source_path("main.sh");
    Program::single_file("main.sh", code.to_string(), vec![step(Phase::Run, &["bash", &path])])
}
