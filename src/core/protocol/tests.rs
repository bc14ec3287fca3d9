//! The protocol checked against the golden messages in
//! `images/runner/fixtures/`: every runner message parses into its variant,
//! and every message this side builds serializes to its fixture. (The
//! runner's own tests, `images/runner/test_protocol.py`, check the same
//! files from the other side.)

use super::*;
use crate::config::Config;
use crate::core::run::{ExecuteRequest, RunSpec, run_request};
use crate::core::watch::Watch;
use crate::runtime::{Language, Program};
use serde_json::Value;
use std::path::PathBuf;

fn fixtures(direction: &str) -> Vec<(String, String)> {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("images/runner/fixtures")
        .join(direction);
    let mut found: Vec<(String, String)> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    found.sort();
    found
}

fn names(found: &[(String, String)]) -> Vec<&str> {
    found.iter().map(|(name, _)| name.as_str()).collect()
}

/// What each runner → host fixture must parse into.
fn expected_runner_message(name: &str, message: &RunnerMessage) -> bool {
    use RunnerMessage::*;
    let result = |check: &dyn Fn(&RunResult) -> bool| matches!(message, Result(run) if check(run));
    let file_error = |kind: &str, check: &dyn Fn(&FileReplyError) -> bool| matches!(message, File(FileReply { error: Some(error), .. }) if error.kind == kind && check(error));
    match name {
        "ready" => {
            *message
                == Ready {
                    protocol: PROTOCOL,
                    kernel: None,
                }
        }
        "ready_kernel" => {
            *message
                == Ready {
                    protocol: PROTOCOL,
                    kernel: Some(Kernel::Python),
                }
        }
        "result" => {
            result(&|run| run.exit_code == 0 && run.signal.is_none() && run.phase == Phase::Run && run.stdout == "hi\n")
        }
        "result_build_failed" => result(&|run| run.exit_code == 1 && run.phase == Phase::Build),
        "result_setup" => result(&|run| run.exit_code == 126 && run.phase == Phase::Setup),
        "result_timed_out" => result(&|run| run.timed_out && !run.cancelled && run.signal == Some(9)),
        "result_cancelled" => result(&|run| run.cancelled && !run.timed_out),
        "result_artifacts" => result(&|run| {
            run.artifacts_omitted == 1
                && run.artifacts.len() == 2
                && run.artifacts[0].data_base64.is_none()
                && run.artifacts[1].mime == "image/png"
                && run.artifacts[1].data_base64.is_some()
        }),
        "result_output_lost" => result(&|run| run.output_lost == ["stdout"] && !run.state_lost),
        "result_state_lost" => result(&|run| run.state_lost && run.exit_code == 3),
        "result_notes" => result(&|run| run.exit_code == 0 && run.notes.len() == 1 && run.notes[0].contains("HashMap")),
        "progress" => matches!(message, Progress(progress)
            if progress.phase == Phase::Build
                && progress.describe().starts_with("compiling for 2 s, 41 bytes of output; latest:\n")),
        "error" => {
            matches!(message, Error { id: Some(id), message } if id == "run-3" && message.contains("timeout_ms"))
        }
        "error_unreadable" => matches!(message, Error { id: None, .. }),
        "pong" => {
            *message
                == Pong {
                    id: Some("ping-1".into()),
                }
        }
        "file_read" => matches!(message, File(reply) if reply.content_base64.is_some() && reply.error.is_none()),
        "file_write" | "file_delete" => {
            matches!(message, File(FileReply { entry: Some(entry), .. }) if entry.kind == "file")
        }
        "file_mkdir" => matches!(message, File(FileReply { entry: Some(entry), .. }) if entry.kind == "folder"),
        "file_list" => matches!(message, File(reply) if reply.entries.len() == 2 && reply.entry.is_none()),
        "file_error_not_found" => file_error("not_found", &|error| error.message.is_none()),
        "file_error_too_large" => file_error("too_large", &|error| error.size.is_some() && error.max.is_some()),
        "file_error_list_too_large" => file_error("list_too_large", &|error| error.max == Some(20_000)),
        "file_error_symlink_escape" => file_error("symlink_escape", &|error| error.target.is_some()),
        "file_error_failed" => file_error("failed", &|error| error.message.is_some()),
        "job_list" => matches!(message, Job { jobs, .. }
            if jobs.len() == 1 && jobs[0].state == JobState::Running && jobs[0].stdout.is_none()),
        "job_running" => matches!(message, Job { jobs, .. }
            if jobs[0].stdout.as_deref() == Some("epoch 1: 0.9\n") && jobs[0].result.is_none()),
        "job_done" => matches!(message, Job { jobs, .. }
            if jobs[0].state == JobState::Done
                && jobs[0].result.as_ref().is_some_and(|run| run.exit_code == 0 && run.stdout.is_empty())
                && !jobs[0].unread),
        "busy" => matches!(message, Busy { id: Some(id), job } if id == "run-2" && job == "run-1"),
        "cells" => matches!(message, Cells { cells, complete: true, .. }
            if cells.iter().map(|cell| cell.exit_code).eq([0, 1, 0]) && cells[0].request["mode"] == "kernel"),
        "replayed" => matches!(message, Replayed(report)
            if report.replayed == 2 && report.differed == [0] && !report.cancelled && report.failed[0].cell == 2
                && report.failed[0].stderr.contains("FileNotFoundError")),
        other => panic!("no expectation for the runner fixture {other}: add one here"),
    }
}

#[test]
fn every_runner_fixture_parses_into_its_variant() {
    let found = fixtures("runner_to_host");
    assert!(found.len() >= 20, "{:?}", names(&found));
    for (name, text) in &found {
        let message: RunnerMessage =
            serde_json::from_str(text).unwrap_or_else(|error| panic!("{name}.json does not parse: {error}"));
        assert!(
            expected_runner_message(name, &message),
            "{name}.json parsed as {message:?}"
        );
        if name != "ready" && name != "ready_kernel" && name != "error_unreadable" {
            assert!(message.id().is_some(), "{name}.json has no id");
        }
    }
}

/// A program as the language modules make them (their own tests pin the
/// exact steps).
fn program(files: &[(&str, &str)], steps: &[(Phase, &[&str])], kernel_source: Option<&str>) -> Program {
    Program {
        files: files
            .iter()
            .map(|(path, content)| SourceFile {
                path: path.to_string(),
                content: content.to_string(),
            })
            .collect(),
        steps: steps
            .iter()
            .map(|(phase, argv)| Step::new(*phase, argv.iter().map(|arg| arg.to_string()).collect()))
            .collect(),
        kernel_source: kernel_source.map(str::to_string),
    }
}

fn value(message: &HostMessage<'_>) -> Value {
    serde_json::from_slice(&message.encode().unwrap()).unwrap()
}

#[test]
fn every_host_message_serializes_as_its_fixture() {
    let config = Config {
        max_output_bytes: 1024 * 1024,
        max_artifacts: 10,
        max_artifact_bytes: 8 * 1024 * 1024,
        ..Config::default()
    };
    let no_env = BTreeMap::new();
    let quiet = Watch::default();
    // A package install's run: no outputs, no stdin, no progress.
    let install = |program| RunSpec {
        program,
        kernel: None,
        env: &no_env,
        stdin: None,
        timeout_ms: 30_000,
        collect_outputs: false,
        watch: &quiet,
        keep: false,
        label: None,
    };
    let go = program(
        &[("/tmp/run/main.go", "package main\n\nfunc main() { println(\"hi\") }\n")],
        &[
            (
                Phase::Build,
                &["go", "build", "-o", "/tmp/run/main", "/tmp/run/main.go"],
            ),
            (Phase::Run, &["/tmp/run/main"]),
        ],
        None,
    );
    // An execute in a session whose caller listens for progress.
    let (updates, _listening) = tokio::sync::mpsc::unbounded_channel();
    let mut execute = ExecuteRequest::stateless(Language::TypeScript, "unused", 10_000);
    execute.stdin = Some("input\n".into());
    execute.env = BTreeMap::from([("N".to_string(), "1".to_string())]);
    execute.watch = Watch::new(Default::default(), Some(updates), true);
    let cell = program(
        &[(
            "/tmp/run/cell.ts",
            "const n: number = Number(process.env.N)\nconsole.log(n)\n",
        )],
        &[(
            Phase::Build,
            &["esbuild", "/tmp/run/cell.ts", "--outfile=/tmp/run/cell.js"],
        )],
        Some("/tmp/run/cell.js"),
    );
    let roots = || -> Vec<FileRoot> {
        [("/workspace", true), ("/outputs", true), ("/mnt/data", false)]
            .map(|(path, writable)| FileRoot { path, writable })
            .into()
    };
    let file = |id, op, path, content: Option<&str>| {
        value(&HostMessage::File(FileRequest {
            id,
            op,
            path,
            roots: roots(),
            content_base64: content.map(str::to_string),
            max_bytes: 10 * 1024 * 1024,
            max_entries: 20_000,
        }))
    };
    let job = |id, op, label| {
        value(&HostMessage::Job(JobQuery {
            id,
            op,
            job: (op != JobOp::List).then_some("run-1"),
            label,
        }))
    };
    // A replay sends back the cells the runner logged, as it logged them.
    let logged = match serde_json::from_str(
        &fixtures("runner_to_host")
            .into_iter()
            .find(|(name, _)| name == "cells")
            .expect("a cells fixture")
            .1,
    ) {
        Ok(RunnerMessage::Cells { cells, .. }) => cells,
        other => panic!("cells.json is not a cells answer: {other:?}"),
    };
    let built = [
        (
            "run_exec",
            value(&HostMessage::Run(run_request("run-1", &install(&go), &config))),
        ),
        (
            "run_kernel",
            value(&HostMessage::Run(run_request(
                "run-2",
                &execute.run_spec(&cell, Some(Kernel::Node)),
                &config,
            ))),
        ),
        (
            "run_fix_imports",
            value(&HostMessage::Run(run_request(
                "run-3",
                &install(&Language::Go.prepare("fmt.Println(6 * 7)")),
                &config,
            ))),
        ),
        (
            "run_transform",
            value(&HostMessage::Run(run_request(
                "run-4",
                &install(&Language::TypeScript.prepare("const n: number = 6 * 7\nconsole.log(n)\n")),
                &config,
            ))),
        ),
        ("cancel", value(&HostMessage::Cancel { id: "run-2" })),
        ("job_keep", job("query-1", JobOp::Keep, Some("train(model, epochs=50)"))),
        ("job_read", job("query-2", JobOp::Read, None)),
        ("job_forget", job("query-3", JobOp::Forget, None)),
        ("job_list", job("query-4", JobOp::List, None)),
        ("ping", value(&HostMessage::Ping { id: "ping-1" })),
        ("retire", value(&HostMessage::Retire { id: "retire" })),
        ("cells", value(&HostMessage::Cells { id: "cells-1" })),
        (
            "replay",
            value(&HostMessage::Replay {
                id: "replay-1",
                cells: &logged,
                complete: true,
            }),
        ),
        ("file_read", file("file-1", FileOp::Read, "/mnt/data/input.csv", None)),
        (
            "file_write",
            file("file-2", FileOp::Write, "/workspace/notes.txt", Some("aGVsbG8K")),
        ),
        ("file_mkdir", file("file-3", FileOp::Mkdir, "/workspace/results", None)),
        ("file_list", file("file-4", FileOp::List, "/outputs", None)),
        (
            "file_delete",
            file("file-5", FileOp::Delete, "/workspace/old.txt", None),
        ),
    ];
    let found = fixtures("host_to_runner");
    let mut built_names: Vec<&str> = built.iter().map(|(name, _)| *name).collect();
    built_names.sort();
    assert_eq!(
        names(&found),
        built_names,
        "a host fixture without a message built here, or the reverse"
    );
    for (name, message) in &built {
        let text = &found.iter().find(|(found, _)| found == name).unwrap().1;
        let fixture: Value = serde_json::from_str(text).unwrap();
        assert_eq!(message, &fixture, "{name}.json differs from what the host sends");
    }
}

#[test]
fn a_kernel_run_needs_a_kernel_and_a_cell() {
    let config = Config::default();
    let execute = ExecuteRequest::stateless(Language::Python, "x = 1", 1000);
    let cell = Language::Python.prepare_cell("x = 1");
    let in_kernel = run_request("a", &execute.run_spec(&cell, Some(Kernel::Python)), &config);
    assert_eq!(in_kernel.mode, RunMode::Kernel);
    assert_eq!(in_kernel.kernel_source, Some("/tmp/run/main.py"));
    // No kernel in the container (a stateless Python run with no pool
    // kernel): the same cell runs as a fresh process.
    let without = run_request("b", &execute.run_spec(&cell, None), &config);
    assert_eq!(
        (without.mode, without.kernel, without.kernel_source),
        (RunMode::Exec, None, None)
    );
    let program = Language::Bash.prepare("echo 1");
    let plain = run_request("c", &execute.run_spec(&program, Some(Kernel::Bash)), &config);
    assert_eq!((plain.mode, plain.kernel), (RunMode::Exec, None));
}

#[test]
fn results_of_older_runners_parse_with_defaults() {
    // Sessions made by an older image keep their runner: fields added
    // since (cancelled, output_lost, artifacts) default.
    let result: RunnerMessage = serde_json::from_str(
        r#"{"type":"result","id":"a","exit_code":0,"signal":null,"stdout":"hi\n","stderr":"",
            "duration_ms":3,"timed_out":false,"truncated":false,"phase":"run","state_lost":false}"#,
    )
    .unwrap();
    match result {
        RunnerMessage::Result(run) => {
            assert!(!run.cancelled && run.output_lost.is_empty() && run.artifacts.is_empty() && run.notes.is_empty());
            assert_eq!(run.artifacts_omitted, 0);
        }
        other => panic!("unexpected {other:?}"),
    }
}
