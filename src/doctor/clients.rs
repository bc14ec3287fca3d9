//! Finds the MCP client configurations on this machine (Claude Desktop,
//! Claude Code, LM Studio) and whether they start this server.

use super::{Check, Status};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// An MCP client and where its configuration lives.
struct Client {
    name: &'static str,
    /// Candidate files; the first that exists is read.
    files: Vec<PathBuf>,
    /// How to register this server with it.
    register: String,
}

fn clients(home: &Path, lookup: &dyn Fn(&str) -> Option<String>, binary: &str) -> Vec<Client> {
    let config_home = lookup("XDG_CONFIG_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    let snippet =
        format!("add to its \"mcpServers\": {{\"multilang-sandbox\": {{\"command\": \"{binary}\", \"args\": []}}}}");
    let mut desktop = vec![
        config_home.join("Claude/claude_desktop_config.json"),
        home.join("Library/Application Support/Claude/claude_desktop_config.json"),
    ];
    if let Some(appdata) = lookup("APPDATA") {
        desktop.push(PathBuf::from(appdata).join("Claude/claude_desktop_config.json"));
    }
    vec![
        Client {
            name: "Claude Desktop",
            files: desktop,
            register: snippet.clone(),
        },
        Client {
            name: "Claude Code",
            files: vec![home.join(".claude.json")],
            register: format!("claude mcp add --scope user multilang-sandbox -- {binary}"),
        },
        Client {
            name: "LM Studio",
            files: vec![home.join(".lmstudio/mcp.json")],
            register: snippet,
        },
    ]
}

/// One check per client whose configuration exists.
pub fn check_clients(home: &Path, lookup: &dyn Fn(&str) -> Option<String>, binary: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    for client in clients(home, lookup, binary) {
        let Some(file) = client.files.iter().find(|file| file.is_file()) else {
            continue;
        };
        let name = format!("client: {}", client.name);
        let parsed = std::fs::read_to_string(file)
            .map_err(|error| error.to_string())
            .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|error| error.to_string()));
        let json = match parsed {
            Ok(json) => json,
            Err(error) => {
                checks.push(Check::new(
                    &name,
                    Status::Problem,
                    format!("{} cannot be read: {error}", file.display()),
                    Some(format!("fix the JSON in {}", file.display())),
                ));
                continue;
            }
        };
        let commands = our_commands(&json);
        let check = match commands.first() {
            None => Check::new(
                &name,
                Status::Note,
                format!("{} does not start multilang-sandbox", file.display()),
                Some(client.register.clone()),
            ),
            Some(command) if runnable(command) => Check::new(
                &name,
                Status::Ok,
                format!("registered in {} ({command})", file.display()),
                None,
            ),
            Some(command) => Check::new(
                &name,
                Status::Problem,
                format!("{} starts `{command}`, which is not an executable file", file.display()),
                Some(format!(
                    "rerun ./install.sh, or set the command in {} to {binary}",
                    file.display()
                )),
            ),
        };
        checks.push(check);
    }
    checks
}

/// The commands of every `mcpServers` entry that runs multilang-sandbox,
/// at the top level or in a project (Claude Code keeps both).
fn our_commands(json: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut tables: Vec<&Value> = json.get("mcpServers").into_iter().collect();
    if let Some(projects) = json.get("projects").and_then(Value::as_object) {
        tables.extend(projects.values().filter_map(|project| project.get("mcpServers")));
    }
    for table in tables.into_iter().filter_map(Value::as_object) {
        for (name, server) in table {
            let command = server.get("command").and_then(Value::as_str).unwrap_or_default();
            if name.contains("multilang-sandbox") || command.ends_with("multilang-sandbox") {
                found.push(command.to_string());
            }
        }
    }
    found
}

fn runnable(command: &str) -> bool {
    // A bare name is looked up on PATH; a path must be an executable file.
    which::which(command).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_our_server_at_the_top_and_in_projects() {
        let config = json!({
            "mcpServers": {"other": {"command": "/bin/other"}},
            "projects": {"/src/app": {"mcpServers": {"sandbox": {"command": "/opt/bin/multilang-sandbox"}}}}
        });
        assert_eq!(our_commands(&config), vec!["/opt/bin/multilang-sandbox".to_string()]);
        assert!(our_commands(&json!({"mcpServers": {}})).is_empty());
    }

    #[test]
    fn reports_registered_missing_and_broken_entries() {
        let home = std::env::temp_dir().join(format!("doctor-clients-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(home.join(".lmstudio")).unwrap();
        std::fs::write(
            home.join(".lmstudio/mcp.json"),
            r#"{"mcpServers": {"multilang-sandbox": {"command": "/nonexistent/multilang-sandbox"}}}"#,
        )
        .unwrap();
        std::fs::write(home.join(".claude.json"), r#"{"mcpServers": {}}"#).unwrap();
        let checks = check_clients(&home, &|_| None, "/usr/local/bin/multilang-sandbox");
        let status = |name: &str| checks.iter().find(|check| check.name == name).map(|check| check.status);
        assert_eq!(status("client: LM Studio"), Some(Status::Problem));
        assert_eq!(status("client: Claude Code"), Some(Status::Note));
        assert_eq!(status("client: Claude Desktop"), None);
        std::fs::write(
            home.join(".lmstudio/mcp.json"),
            r#"{"mcpServers": {"multilang-sandbox": {"command": "/bin/sh"}}}"#,
        )
        .unwrap();
        let checks = check_clients(&home, &|_| None, "/usr/local/bin/multilang-sandbox");
        assert_eq!(
            checks.iter().find(|c| c.name == "client: LM Studio").map(|c| c.status),
            Some(Status::Ok)
        );
        std::fs::remove_dir_all(&home).ok();
    }
}
