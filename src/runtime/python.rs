//! Python 3: the code runs as `/tmp/run/main.py` with the image's `python3`.

use super::{Phase, Program, source_path, step};

pub(super) fn prepare(code: &str) -> Program {
    let path = source_path("main.py");
    Program::single_file(
        "main.py",
        code.to_string(),
        vec![step(Phase::Run, &["python3", &path])],
    )
}
