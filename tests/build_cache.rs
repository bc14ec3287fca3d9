//! Go and Rust sessions keep their build caches: a changed program's second
//! build reuses what the first one compiled (what the cache holds, not how
//! long it took: timings are `examples/bench.rs`'s). The programs look at
//! the caches in their own container: a cache file older than the source
//! just written for this execute was made by an earlier build. The pool is
//! off (these tests run in sessions).

mod common;

use common::*;

async fn server() -> Client {
    require_docker().await;
    start_server_with_env(&[("MULTILANG_SANDBOX_POOL_SIZE", "0")]).await
}

/// A Go program that uses `regexp` (not among the packages the image
/// builds), prints `number`, its build info's path and how many files in
/// the build cache are newer than its source (written by this build).
fn go_program(number: u32) -> String {
    format!(
        r#"package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
)

func main() {{
	source, err := os.Stat("/tmp/run/main.go")
	if err != nil {{
		panic(err)
	}}
	fresh := 0
	filepath.WalkDir("/tmp/gocache", func(path string, entry fs.DirEntry, err error) error {{
		if err == nil && !entry.IsDir() {{
			if info, err := entry.Info(); err == nil && info.ModTime().After(source.ModTime()) {{
				fresh++
			}}
		}}
		return nil
	}})
	info, _ := debug.ReadBuildInfo()
	fmt.Println(regexp.MustCompile("b+").FindString("abbbc"), {number}, info.Path, "fresh", fresh)
}}
"#
    )
}

#[tokio::test]
async fn a_go_session_builds_again_from_its_cache() {
    let client = server().await;
    let name = create_session(&client, "gocache", "go").await;
    let first = execute_in(&client, &name, "go", &go_program(1)).await;
    let stdout = first["stdout"].as_str().unwrap_or_default();
    assert!(stdout.starts_with("bbb 1 command-line-arguments fresh "), "{first}");
    assert_ne!(
        stdout, "bbb 1 command-line-arguments fresh 0\n",
        "regexp was compiled: {first}"
    );
    let second = execute_in(&client, &name, "go", &go_program(2)).await;
    assert_eq!(
        second["stdout"], "bbb 2 command-line-arguments fresh 0\n",
        "the changed program was built from the cached packages, compiling none: {second}"
    );
    // The fast path leaves the messages of a failed build to go build.
    let broken = execute_in(&client, &name, "go", "package main\nfunc main() { undefinedThing() }").await;
    assert_eq!(broken["phase"], "build", "{broken}");
    assert!(
        broken["stderr"]
            .as_str()
            .unwrap_or_default()
            .contains("undefined: undefinedThing"),
        "{broken}"
    );
    client.cancel().await.ok();
}

/// A Rust program with a module that does not change between builds; it
/// prints `number` and how many object files in the session's incremental
/// cache are older than its source (reused from an earlier build).
fn rust_program(number: u32) -> String {
    format!(
        r#"use std::path::Path;

mod unchanged {{
    pub fn total() -> u64 {{
        (1..=10).sum()
    }}
}}

fn reused(dir: &Path, source: std::time::SystemTime, count: &mut usize) {{
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {{
        let path = entry.path();
        if path.is_dir() {{
            reused(&path, source, count);
        }} else if path.extension().is_some_and(|e| e == "o")
            && entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < source)
        {{
            *count += 1;
        }}
    }}
}}

fn main() {{
    let source = std::fs::metadata("/tmp/run/main.rs").and_then(|m| m.modified()).unwrap();
    let mut count = 0;
    reused(Path::new("/tmp/rust-incremental"), source, &mut count);
    println!("{{}} {number} reused {{}}", unchanged::total(), count);
}}
"#
    )
}

#[tokio::test]
async fn a_rust_session_compiles_incrementally() {
    let client = server().await;
    let name = create_session(&client, "rscache", "rust").await;
    let first = execute_in(&client, &name, "rust", &rust_program(1)).await;
    assert_eq!(first["stdout"], "55 1 reused 0\n", "{first}");
    let second = execute_in(&client, &name, "rust", &rust_program(2)).await;
    let stdout = second["stdout"].as_str().unwrap_or_default();
    assert!(stdout.starts_with("55 2 reused "), "{second}");
    assert_ne!(
        stdout, "55 2 reused 0\n",
        "the unchanged code was not compiled again: {second}"
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn stateless_go_and_rust_build_as_before() {
    let client = server().await;
    // Build constraints are go build's to judge (it builds a file it is
    // given whatever its constraints say).
    let excluded = "//go:build ignore\n\npackage main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"built\") }\n";
    let result = execute(&client, "go", excluded).await;
    assert_eq!(result["stdout"], "built\n", "{result}");
    // A package the image did not build: go build compiles it.
    let result = execute(
        &client,
        "go",
        "package main\nimport (\"fmt\"; \"regexp\")\nfunc main() { fmt.Println(regexp.MustCompile(\"a+\").FindString(\"baac\")) }",
    )
    .await;
    assert_eq!(result["stdout"], "aa\n", "{result}");
    // No incremental cache outside sessions; a panic still names its line.
    let result = execute(
        &client,
        "rust",
        "fn main() { println!(\"{}\", std::path::Path::new(\"/tmp/rust-incremental\").exists()); let v: Vec<u8> = Vec::new(); let _ = v[1]; }",
    )
    .await;
    assert_eq!(result["stdout"], "false\n", "{result}");
    assert!(
        result["stderr"].as_str().unwrap_or_default().contains("main.rs:1:"),
        "{result}"
    );
    client.cancel().await.ok();
}
