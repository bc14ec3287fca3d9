//! Python 3: the code runs as `/tmp/run/main.py`, either with a fresh
//! `python3` or in the runner's Python kernel (pooled containers and
//! sessions), which executes the file in a persistent `__main__` namespace.

use super::{Phase, Program, source_path, step};

pub(super) fn prepare_cell(code: &str) -> Program {
    Program::cell("main.py", code.to_string(), Vec::new(), "main.py")
}

pub(super) fn prepare(code: &str) -> Program {
    let path = source_path("main.py");
    Program::single_file("main.py", code.to_string(), vec![step(Phase::Run, &["python3", &path])])
}
