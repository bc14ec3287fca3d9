//! JavaScript on Node.js. Code with ES module syntax (`import … from`,
//! `export`, top-level `await`) runs as `main.mjs`, everything else as
//! CommonJS `main.js` so `require` works. Sessions run cells in the Node kernel.

use super::{Phase, Program, source_path, step};

/// A session cell for the Node kernel (`images/runner/kernel.js`), which
/// rewrites imports and top-level declarations so bindings persist.
pub(super) fn prepare_cell(code: &str) -> Program {
    Program::cell("cell.js", code.to_string(), Vec::new(), "cell.js")
}

pub(super) fn prepare(code: &str) -> Program {
    let file_name = if uses_module_syntax(code) {
        "main.mjs"
    } else {
        "main.js"
    };
    let path = source_path(file_name);
    Program::single_file(file_name, code.to_string(), vec![step(Phase::Run, &["node", &path])])
}

/// True when the code needs to run as an ES module.
pub(super) fn uses_module_syntax(code: &str) -> bool {
    code.lines().map(str::trim_start).any(|line| {
        (line.starts_with("import ") && (line.contains(" from ") || line.contains('"') || line.contains('\'')))
            || line.starts_with("import{")
            || line.starts_with("export ")
            || line.starts_with("await ")
            || line.contains("= await ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commonjs_code_runs_as_js() {
        let program = prepare("const fs = require('fs');\nconsole.log(1)");
        assert!(program.files[0].path.ends_with("main.js"));
    }

    #[test]
    fn module_code_runs_as_mjs() {
        assert!(uses_module_syntax("import fs from 'node:fs';"));
        assert!(uses_module_syntax("const r = await fetch(x)"));
        assert!(!uses_module_syntax("// import nothing\nconsole.log('import me')"));
    }
}
