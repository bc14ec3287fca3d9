//! A small MCP client that starts multilang-sandbox over stdio and runs code
//! through it — the same path Claude Desktop, Claude Code or LM Studio take.
//!
//! ```text
//! cargo run --example client                          # one program per language
//! cargo run --example client -- python 'print(6*7)'   # your own code
//! ```
//! The server binary is `$MULTILANG_SANDBOX_BIN`, else the one next to this
//! example in `target/`, else `multilang-sandbox` on `PATH`.

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use std::path::PathBuf;
use tokio::process::Command;

const DEMOS: [(&str, &str); 6] = [
    (
        "python",
        "import platform\nprint(f'Hello from Python {platform.python_version()}')",
    ),
    ("javascript", "console.log(`Hello from Node.js ${process.version}`)"),
    (
        "typescript",
        "const greet = (who: string): string => `Hello from ${who}`;\nconsole.log(greet('TypeScript'))",
    ),
    (
        "go",
        "import (\n\t\"fmt\"\n\t\"runtime\"\n)\nfmt.Println(\"Hello from\", runtime.Version())",
    ),
    ("rust", "println!(\"Hello from Rust, 2^20 = {}\", 1u64 << 20);"),
    ("bash", "echo \"Hello from $(bash --version | head -1)\""),
];

fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MULTILANG_SANDBOX_BIN") {
        return PathBuf::from(path);
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("multilang-sandbox")));
    match sibling {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("multilang-sandbox"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let programs: Vec<(String, String)> = match args.as_slice() {
        [] => DEMOS.iter().map(|(l, c)| (l.to_string(), c.to_string())).collect(),
        [language, code] => vec![(language.clone(), code.clone())],
        _ => return Err("usage: client [LANGUAGE CODE]".into()),
    };
    let binary = server_binary();
    eprintln!("starting {}", binary.display());
    let client = ().serve(TokioChildProcess::new(Command::new(&binary))?).await?;
    let tools = client.list_all_tools().await?;
    eprintln!(
        "tools: {}",
        tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>().join(", ")
    );
    for (language, code) in programs {
        let arguments = json!({"language": language, "code": code});
        let arguments = arguments.as_object().cloned().unwrap_or_default();
        let result = client
            .call_tool(CallToolRequestParams::new("sandbox_execute").with_arguments(arguments))
            .await?;
        for content in &result.content {
            if let Some(text) = content.as_text() {
                println!("{}\n", text.text.trim_end());
            }
        }
    }
    client.cancel().await?;
    Ok(())
}
