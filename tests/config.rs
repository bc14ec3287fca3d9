//! Configuration precedence through the real binary: environment over the
//! config file over defaults, as `config show` reports it, and clear errors
//! for a broken file.

use std::path::PathBuf;
use std::process::{Command, Output};

fn config_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("multilang-sandbox-config-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp folder");
    dir
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_multilang-sandbox"));
    command.args(args);
    // Only what the test sets counts.
    for (key, _) in std::env::vars() {
        if key.starts_with("MULTILANG_SANDBOX_") || key == "XDG_CONFIG_HOME" {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("the binary runs")
}

fn line_of<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|line| line.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

#[test]
fn environment_beats_file_beats_default() {
    let dir = config_dir("precedence");
    let file = dir.join("multilang-sandbox/config.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        "memory_mb = 384\ncpus = 0.5\npool_size = { python = 3 }\nhost_folders = [\"data=/srv/data\"]\n",
    )
    .unwrap();
    let xdg = dir.display().to_string();
    let output = run(
        &["config", "show"],
        &[("XDG_CONFIG_HOME", &xdg), ("MULTILANG_SANDBOX_CPUS", "2")],
    );
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let shown = file.display().to_string();
    assert_eq!(
        line_of(&text, "cpus"),
        "cpus = 2  # env MULTILANG_SANDBOX_CPUS (default 1)"
    );
    assert_eq!(
        line_of(&text, "memory_mb"),
        format!("memory_mb = 384  # file {shown} (default 512)")
    );
    assert!(line_of(&text, "pool_size").starts_with("pool_size = \"python=3,javascript=1,"));
    assert!(line_of(&text, "host_folders").contains("\"data=/srv/data\"  # file"));
    assert_eq!(line_of(&text, "tmpfs_mb"), "tmpfs_mb = 256  # default");
    assert!(text.contains(&format!("# {shown} over defaults")), "{text}");
    // MULTILANG_SANDBOX_CONFIG names another file, which must exist.
    let other = dir.join("other.toml");
    std::fs::write(&other, "timeout_ms = 5000\n").unwrap();
    let output = run(
        &["config", "show"],
        &[("MULTILANG_SANDBOX_CONFIG", other.to_str().unwrap())],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        line_of(&text, "timeout_ms").starts_with("timeout_ms = 5000  # file"),
        "{text}"
    );
    assert_eq!(line_of(&text, "memory_mb"), "memory_mb = 512  # default");
    let missing = dir.join("missing.toml");
    let output = run(
        &["config", "show"],
        &[("MULTILANG_SANDBOX_CONFIG", missing.to_str().unwrap())],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_broken_file_or_value_is_refused_with_its_place() {
    let dir = config_dir("broken");
    let file = dir.join("config.toml");
    let path = file.to_str().unwrap().to_string();
    for (content, expected) in [
        ("memory = 512\n", "unknown key `memory`"),
        ("memory_mb = [\n", "config.toml"),
        ("memory_mb = 8\n", "`memory_mb` in"),
        ("pids_limit = \"lots\"\n", "`pids_limit` in"),
    ] {
        std::fs::write(&file, content).unwrap();
        let output = run(&["config", "show"], &[("MULTILANG_SANDBOX_CONFIG", &path)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{content}: {stderr}");
        assert!(stderr.contains(expected), "{content}: {stderr}");
    }
    // The same bad value from the environment names the variable.
    std::fs::write(&file, "").unwrap();
    let output = run(
        &["config", "show"],
        &[
            ("MULTILANG_SANDBOX_CONFIG", &path),
            ("MULTILANG_SANDBOX_MEMORY_MB", "8"),
        ],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("MULTILANG_SANDBOX_MEMORY_MB"));
    std::fs::remove_dir_all(&dir).ok();
}

/// The README's Configuration table has a row per key with the key table's
/// default and meaning; any other `MULTILANG_SANDBOX_*` row is a variable
/// that says it is read from the environment only.
#[test]
fn the_readme_table_lists_every_key_with_its_default_and_meaning() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Configuration section");
    let rows: Vec<Vec<&str>> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `MULTILANG_SANDBOX_")?.strip_suffix(" |"))
        .map(|row| row.split(" | ").collect())
        .collect();
    let row_of = |variable: &str| {
        rows.iter()
            .find(|cells| cells[0].strip_suffix('`') == variable.strip_prefix("MULTILANG_SANDBOX_"))
    };
    for key in multilang_sandbox::config::KEYS {
        let variable = key.variable();
        let cells =
            row_of(&variable).unwrap_or_else(|| panic!("README's Configuration table has no row for {variable}"));
        assert_eq!(
            cells[1..],
            [key.documented_default().as_str(), key.doc],
            "README's row for {variable} (default, meaning)"
        );
    }
    for cells in &rows {
        let name = cells[0].trim_end_matches('`');
        assert!(
            multilang_sandbox::config::KEYS
                .iter()
                .any(|key| key.variable() == format!("MULTILANG_SANDBOX_{name}"))
                || cells[2].contains("environment only"),
            "README lists MULTILANG_SANDBOX_{name}, which is no configuration key and not marked environment only"
        );
    }
}

/// The `egress` group from the file as an `[egress]` table, one key from
/// the environment; `config show` writes dotted keys, and its output,
/// used as the config file, shows the same values again.
#[test]
fn egress_keys_come_from_a_table_or_the_environment_and_show_reads_back() {
    let dir = config_dir("egress");
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        "memory_mb = 384\n[egress]\nallow = [\"api.github.com\", \"*.example.org:8443\"]\n\
         allow_private = [\"10.9.0.0/16\"]\nbudget_mb = 2048\n",
    )
    .unwrap();
    let path = file.to_str().unwrap().to_string();
    let environment = [
        ("MULTILANG_SANDBOX_CONFIG", path.as_str()),
        ("MULTILANG_SANDBOX_EGRESS_ASK", "false"),
    ];
    let output = run(&["config", "show"], &environment);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert_eq!(
        line_of(&text, "egress.allow"),
        format!("egress.allow = [\"api.github.com\", \"*.example.org:8443\"]  # file {path} (default [])")
    );
    assert!(line_of(&text, "egress.allow_private").starts_with("egress.allow_private = [\"10.9.0.0/16\"]  # file"));
    assert_eq!(
        line_of(&text, "egress.ask"),
        "egress.ask = false  # env MULTILANG_SANDBOX_EGRESS_ASK (default true)"
    );
    assert!(line_of(&text, "egress.budget_mb").starts_with("egress.budget_mb = 2048  # file"));
    assert_eq!(
        line_of(&text, "egress.max_connections"),
        "egress.max_connections = 64  # default"
    );
    // The shown configuration is a config file giving the same values.
    let shown = dir.join("shown.toml");
    std::fs::write(&shown, text.as_bytes()).unwrap();
    let output = run(
        &["config", "show"],
        &[("MULTILANG_SANDBOX_CONFIG", shown.to_str().unwrap())],
    );
    assert!(output.status.success(), "{output:?}");
    let again = String::from_utf8_lossy(&output.stdout).to_string();
    let values = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| line.split("  # ").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(values(&again), values(&text));
    // A bad entry stops loading, naming the key and file or the variable.
    std::fs::write(&file, "egress.allow = [\"https://example.org\"]\n").unwrap();
    let output = run(&["config", "show"], &[("MULTILANG_SANDBOX_CONFIG", &path)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`egress.allow` in") && stderr.contains("has a scheme"),
        "{stderr}"
    );
    std::fs::write(&file, "[egress]\nallow_everything = true\n").unwrap();
    let output = run(&["config", "show"], &[("MULTILANG_SANDBOX_CONFIG", &path)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown key `egress.allow_everything`"), "{stderr}");
    std::fs::write(&file, "").unwrap();
    let output = run(
        &["config", "show"],
        &[
            ("MULTILANG_SANDBOX_CONFIG", &path),
            ("MULTILANG_SANDBOX_EGRESS_BUDGET_MB", "0"),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("MULTILANG_SANDBOX_EGRESS_BUDGET_MB") && stderr.contains("at least 1"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
