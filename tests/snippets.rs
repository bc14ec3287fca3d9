//! Go and Rust snippets compile without their import lines: goimports adds
//! Go's (and drops unused ones), rustc's own suggestions add Rust's `use`
//! lines, and the result's note says so. The real binary, rmcp's client,
//! real Docker and the real compilers; stateless and in sessions.

mod common;

use common::*;
use serde_json::Value;

fn note(result: &Value) -> &str {
    result["note"].as_str().unwrap_or("")
}

fn stderr(result: &Value) -> &str {
    result["stderr"].as_str().unwrap_or("")
}

#[tokio::test]
async fn go_snippets_get_their_standard_library_imports() {
    let client = start_server().await;
    for (code, stdout, added) in [
        ("fmt.Println(6*7)", "42\n", "fmt"),
        ("fmt.Println(strings.ToUpper(\"go\"))", "GO\n", "fmt, strings"),
        ("fmt.Printf(\"%.3f\\n\", math.Sqrt(2))", "1.414\n", "fmt, math"),
        ("fmt.Println(time.Now().Year() >= 2024)", "true\n", "fmt, time"),
    ] {
        let result = execute(&client, "go", code).await;
        assert_eq!(result["stdout"], stdout, "{code}: {result}");
        assert_eq!(result["exit_code"], 0, "{result}");
        assert_eq!(
            note(&result),
            format!("Added imports: {added} (goimports)."),
            "{result}"
        );
    }
    // Imports the snippet names itself are kept, and then nothing is said.
    let result = execute(&client, "go", "import \"fmt\"\nfmt.Println(1)").await;
    assert_eq!(
        (result["stdout"].as_str(), note(&result)),
        (Some("1\n"), ""),
        "{result}"
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn go_programs_are_fixed_only_when_imports_are_all_that_is_wrong() {
    let client = start_server().await;
    let unused = "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tfmt.Println(\"ok\")\n}\n";
    let result = execute(&client, "go", unused).await;
    assert_eq!(result["stdout"], "ok\n", "{result}");
    assert_eq!(note(&result), "Removed unused imports: os (goimports).", "{result}");

    let missing = "package main\n\nimport \"os\"\n\nfunc main() {\n\tfmt.Println(strings.Repeat(\"ab\", 2))\n}\n";
    let result = execute(&client, "go", missing).await;
    assert_eq!(result["stdout"], "abab\n", "{result}");
    assert_eq!(
        note(&result),
        "Added imports: fmt, strings; removed unused imports: os (goimports).",
        "{result}"
    );

    // A real error besides: the program's own build errors, untouched.
    let broken = "package main\n\nfunc main() {\n\tfmt.Println(undefinedThing)\n}\n";
    let result = execute(&client, "go", broken).await;
    assert_eq!(result["phase"], "build", "{result}");
    assert!(stderr(&result).contains("undefined: undefinedThing"), "{result}");
    assert!(stderr(&result).contains("undefined: fmt"), "{result}");
    assert_eq!(note(&result), "", "{result}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn rust_snippets_get_the_use_lines_rustc_suggests() {
    let client = start_server().await;
    let code = "let mut m = HashMap::new();\nm.insert(\"a\", 1);\nprintln!(\"{:?}\", m);";
    let result = execute(&client, "rust", code).await;
    assert_eq!(result["stdout"], "{\"a\": 1}\n", "{result}");
    assert_eq!(
        note(&result),
        "Added `use std::collections::HashMap;` (rustc's suggestion).",
        "{result}"
    );

    // Two candidates (cmp or atomic Ordering): left to the person.
    let result = execute(&client, "rust", "let o = Ordering::Less;\nprintln!(\"{:?}\", o);").await;
    assert_eq!(result["phase"], "build", "{result}");
    assert!(stderr(&result).contains("use std::cmp::Ordering;"), "{result}");
    assert_eq!(note(&result), "", "{result}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn sessions_fix_imports_too() {
    let client = start_server().await;
    let go = create_session(&client, "snippets-go", "go").await;
    let result = execute_in(&client, go.as_str(), "go", "fmt.Println(6*7)").await;
    assert_eq!(result["stdout"], "42\n", "{result}");
    assert!(note(&result).contains("Added imports: fmt (goimports)."), "{result}");

    let rust = create_session(&client, "snippets-rust", "rust").await;
    let code = "let mut s = BTreeSet::new();\ns.insert(2);\ns.insert(1);\nprintln!(\"{:?}\", s);";
    let result = execute_in(&client, rust.as_str(), "rust", code).await;
    assert_eq!(result["stdout"], "{1, 2}\n", "{result}");
    assert!(
        note(&result).contains("Added `use std::collections::BTreeSet;` (rustc's suggestion)."),
        "{result}"
    );
    drop((go, rust));
    client.cancel().await.ok();
}
