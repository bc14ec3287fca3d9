//! Templates, the user's own images: a Dockerfile in the templates folder
//! that builds on one of our language images. Built on first use and when
//! its files change, kept across restarts, usable by stateless executes,
//! sessions and the package cache, named in the tool descriptions, listed
//! by sandbox_inspect; one that would leave the boundary is refused.

mod common;

use common::origin::docker;
use common::*;
use serde_json::{Value, json};
use std::path::PathBuf;

/// A templates folder of this test's own; on drop, the images built from
/// its templates (and cached package images on them) are removed.
struct Templates {
    folder: tempfile::TempDir,
    names: Vec<String>,
    cache_images: Vec<String>,
}

impl Templates {
    fn new() -> Self {
        Self {
            folder: tempfile::tempdir().expect("a temporary templates folder"),
            names: Vec::new(),
            cache_images: Vec::new(),
        }
    }

    /// Writes template `prefix-<unique>` with `dockerfile`; returns its name.
    fn add(&mut self, prefix: &str, dockerfile: &str) -> String {
        let name = format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        self.write(&name, dockerfile);
        self.names.push(name.clone());
        name
    }

    fn write(&self, name: &str, dockerfile: &str) {
        let folder = self.folder.path().join(name);
        std::fs::create_dir_all(&folder).expect("the template's folder");
        std::fs::write(folder.join("Dockerfile"), dockerfile).expect("the Dockerfile");
    }

    fn path(&self) -> PathBuf {
        self.folder.path().to_path_buf()
    }

    async fn server(&self) -> Client {
        require_docker().await;
        let folder = self.path();
        start_server_with_env(&[
            ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
            (
                "MULTILANG_SANDBOX_TEMPLATES_DIR",
                folder.to_str().expect("a UTF-8 path"),
            ),
        ])
        .await
    }
}

/// Runs the docker CLI within its time limit: whether it succeeded, and
/// its output.
fn docker_quietly_status(args: &[&str]) -> (bool, String) {
    std::process::Command::new("timeout")
        .arg(common::origin::DOCKER_LIMIT.as_secs().to_string())
        .arg("docker")
        .args(args)
        .output()
        .map(|output| {
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            )
        })
        .unwrap_or_default()
}

/// The same for clean-up (failures are left to the next run's clean-up).
fn docker_quietly(args: &[&str]) -> String {
    docker_quietly_status(args).1
}

impl Drop for Templates {
    fn drop(&mut self) {
        for image in &self.cache_images {
            docker_quietly(&["rmi", "-f", image]);
        }
        for name in &self.names {
            let listed = docker_quietly(&["images", "-q", &format!("multilang-sandbox/template-{name}")]);
            for id in listed.split_whitespace() {
                docker_quietly(&["rmi", "-f", id]);
            }
        }
    }
}

/// The ids of template `name`'s images. Asked again when the listing
/// fails: Podman fails one that meets an image another test removes.
fn template_images(name: &str) -> Vec<String> {
    let reference = format!("multilang-sandbox/template-{name}");
    let args = ["images", "-q", reference.as_str()];
    let listed = (0..4)
        .map(|attempt| {
            std::thread::sleep(std::time::Duration::from_millis(200 * attempt));
            docker_quietly_status(&args)
        })
        .find_map(|(ok, output)| ok.then_some(output))
        .unwrap_or_else(|| docker(&args));
    listed.split_whitespace().map(str::to_string).collect()
}

fn tools_dockerfile(mark: &str) -> String {
    format!(
        "# A Debian package and a pip package on our Python image.\n\
         ARG PYTHON\n\
         FROM ${{PYTHON}}\n\
         USER root\n\
         RUN apt-get update \\\n \
           && apt-get install -y --no-install-recommends jq \\\n \
           && rm -rf /var/lib/apt/lists/*\n\
         RUN pip install --no-cache-dir --break-system-packages tomli-w\n\
         ENV TEMPLATE_MARK={mark}\n\
         USER sandbox\n"
    )
}

const USES_BOTH: &str = "import os, subprocess, tomli_w\n\
print(subprocess.run(['jq', '--version'], capture_output=True, text=True).stdout.strip())\n\
print(tomli_w.dumps({'answer': 42}).strip())\n\
print(os.environ.get('TEMPLATE_MARK'))";

async fn run_in_template(client: &Client, template: &str, code: &str, extra: Value) -> Value {
    let mut arguments = json!({
        "language": "python",
        "template": template,
        "code": code,
        "detach_after": 0,
        "timeout": 60_000,
    });
    if let (Some(arguments), Value::Object(extra)) = (arguments.as_object_mut(), extra) {
        arguments.extend(extra);
    }
    let result = execute_with(client, arguments).await;
    assert_eq!(result["exit_code"], 0, "{result}");
    result
}

fn note(result: &Value) -> &str {
    result["note"].as_str().unwrap_or_default()
}

async fn tool_description(client: &Client, tool: &str) -> String {
    let tools = tokio::time::timeout(CALL_LIMIT, client.list_all_tools())
        .await
        .expect("tools/list answers in time")
        .expect("tools/list");
    tools
        .into_iter()
        .find(|listed| listed.name == tool)
        .and_then(|listed| listed.description.map(|text| text.to_string()))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_template_with_a_debian_and_a_pip_package_runs_code_that_uses_both() {
    let mut templates = Templates::new();
    let name = templates.add("tools", &tools_dockerfile("one"));
    let client = templates.server().await;

    let description = tool_description(&client, "sandbox_execute").await;
    assert!(description.contains(&format!("`{name}` (python)")), "{description}");

    let first = run_in_template(&client, &name, USES_BOTH, json!({})).await;
    let stdout = first["stdout"].as_str().unwrap_or_default();
    assert!(stdout.starts_with("jq-1."), "{first}");
    assert!(stdout.contains("answer = 42\none"), "{first}");
    assert!(note(&first).contains(&format!("Built template `{name}`")), "{first}");
    let built = template_images(&name);
    assert_eq!(built.len(), 1, "one image, under the template's tag only");

    // Built once: the next use starts from the kept image.
    let again = run_in_template(&client, &name, "print('again')", json!({})).await;
    assert!(!note(&again).contains("Built template"), "{again}");
    assert_eq!(template_images(&name), built);

    // The package cache works on top of the template.
    let installed = call(
        &client,
        "sandbox_install",
        json!({"template": name, "packages": ["six"]}),
    )
    .await;
    let installed = installed.structured_content.expect("a structured install result");
    assert_eq!(installed["language"], "python", "{installed}");
    if let Some(image) = installed["image"].as_str() {
        templates.cache_images.push(image.to_string());
    }
    let with_six = run_in_template(
        &client,
        &name,
        "import six, tomli_w\nprint(six.__name__, tomli_w.__name__)",
        json!({"packages": ["six"]}),
    )
    .await;
    assert_eq!(with_six["stdout"], "six tomli_w\n", "{with_six}");

    // A session on the template (its language is the template's).
    let session = TestSession::adopt(unique_name("tpl"));
    let created = call(
        &client,
        "sandbox_session",
        json!({"action": "create", "name": session.as_str(), "template": name}),
    )
    .await;
    assert_ne!(created.is_error, Some(true), "{}", text_of(&created));
    let created = created.structured_content.expect("a structured create result");
    assert_eq!(created["sessions"][0]["template"], name.as_str(), "{created}");
    assert_eq!(created["sessions"][0]["language"], "python", "{created}");
    execute_in(
        &client,
        session.as_str(),
        "python",
        "import tomli_w\nkept = tomli_w.dumps({'k': 1})",
    )
    .await;
    let kept = execute_in(&client, session.as_str(), "python", "print(kept.strip())").await;
    assert_eq!(kept["stdout"], "k = 1\n", "{kept}");

    let inspected = inspect(&client, "templates").await;
    let listed = inspected["templates"]
        .as_array()
        .and_then(|all| all.iter().find(|template| template["name"] == name.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not listed: {inspected}"));
    assert_eq!(listed["language"], "python", "{listed}");
    assert_eq!(listed["built"], true, "{listed}");
    assert!(listed["size_bytes"].as_i64().unwrap_or(0) > 0, "{listed}");
}

const PRINT_MARK: &str = "import os\nprint(os.environ['TEMPLATE_MARK'])";

#[tokio::test]
async fn a_template_is_rebuilt_when_its_dockerfile_changes_and_kept_across_restarts() {
    let mut templates = Templates::new();
    let name = templates.add("marks", &tools_dockerfile("one"));
    let client = templates.server().await;
    let first = run_in_template(&client, &name, PRINT_MARK, json!({})).await;
    assert_eq!(first["stdout"], "one\n", "{first}");
    let first_image = template_images(&name);

    templates.write(&name, &tools_dockerfile("two"));
    let changed = run_in_template(&client, &name, PRINT_MARK, json!({})).await;
    assert_eq!(changed["stdout"], "two\n", "{changed}");
    assert!(note(&changed).contains("Built template"), "{changed}");
    let changed_image = template_images(&name);
    assert_eq!(changed_image.len(), 1, "the earlier build, unused, is removed");
    assert_ne!(changed_image, first_image);
    drop(client);

    let restarted = templates.server().await;
    let kept = run_in_template(&restarted, &name, PRINT_MARK, json!({})).await;
    assert_eq!(kept["stdout"], "two\n", "{kept}");
    assert!(!note(&kept).contains("Built template"), "a restart rebuilt it: {kept}");
    assert_eq!(template_images(&name), changed_image);
}

#[tokio::test]
async fn a_template_that_would_leave_the_boundary_is_refused_and_leaves_no_image() {
    let mut templates = Templates::new();
    let as_root = templates.add("root", "ARG BASH\nFROM ${BASH}\nUSER root\nRUN true\n");
    let volume = templates.add("volume", "ARG BASH\nFROM ${BASH}\nVOLUME /data\n");
    let elsewhere = templates.add("elsewhere", "FROM debian:trixie\nRUN true\n");
    let entrypoint = templates.add(
        "entry",
        "ARG BASH\nFROM ${BASH}\nENTRYPOINT [\"/bin/sh\", \"-c\", \"exec sleep 1000\"]\n",
    );
    let labelled = templates.add(
        "label",
        "ARG BASH\nFROM ${BASH}\nLABEL multilang-sandbox.session=someone-else\n",
    );
    let no_runner = templates.add(
        "norunner",
        "ARG BASH\nFROM ${BASH}\nUSER root\nRUN rm /opt/sandbox/runner.py\nUSER sandbox\n",
    );
    let client = templates.server().await;

    let refused = tool_error_text(
        &client,
        "sandbox_execute",
        json!({"language": "bash", "template": as_root, "code": "id -u"}),
    )
    .await;
    assert!(
        refused.contains("user `root`") && refused.contains("USER sandbox"),
        "{refused}"
    );
    assert!(template_images(&as_root).is_empty(), "a refused image was kept");

    let session = TestSession::adopt(unique_name("tpl"));
    let refused = tool_error_text(
        &client,
        "sandbox_session",
        json!({"action": "create", "name": session.as_str(), "template": volume}),
    )
    .await;
    assert!(refused.contains("VOLUME /data"), "{refused}");
    assert!(template_images(&volume).is_empty(), "a refused image was kept");

    let refused = tool_error_text(
        &client,
        "sandbox_execute",
        json!({"language": "bash", "template": elsewhere, "code": "true"}),
    )
    .await;
    assert!(
        refused.contains("`debian:trixie`") && refused.contains("ARG PYTHON"),
        "{refused}"
    );

    for (template, expected) in [
        (&entrypoint, "ENTRYPOINT"),
        (&labelled, "multilang-sandbox.session"),
        (&no_runner, "did not answer"),
    ] {
        let refused = tool_error_text(
            &client,
            "sandbox_execute",
            json!({"language": "bash", "template": template, "code": "echo ran", "detach_after": 0}),
        )
        .await;
        assert!(refused.contains(expected), "{template}: {refused}");
        assert!(
            template_images(template).is_empty(),
            "{template}: a refused image was kept"
        );
    }

    let wrong_language = tool_error_text(
        &client,
        "sandbox_execute",
        json!({"language": "python", "template": as_root, "code": "print(1)"}),
    )
    .await;
    assert!(wrong_language.contains("is for bash"), "{wrong_language}");

    let missing = tool_error_text(
        &client,
        "sandbox_execute",
        json!({"language": "bash", "template": "no-such", "code": "true"}),
    )
    .await;
    assert!(missing.contains("no template named `no-such`"), "{missing}");

    // The broken ones are listed with what is wrong, and not offered.
    let inspected = inspect(&client, "templates").await;
    let problem = inspected["templates"]
        .as_array()
        .and_then(|all| all.iter().find(|template| template["name"] == elsewhere.as_str()))
        .and_then(|template| template["problem"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(problem.contains("FROM"), "{inspected}");
    let description = tool_description(&client, "sandbox_session").await;
    assert!(!description.contains(&elsewhere), "{description}");
    assert!(description.contains(&format!("`{as_root}` (bash)")), "{description}");
}

/// Runs the binary's `args` with this test's templates folder, within a
/// time limit; returns its exit code and its output (stdout and stderr).
fn run_binary(templates: &Templates, args: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new("timeout")
        .arg("600")
        .arg(env!("CARGO_BIN_EXE_multilang-sandbox"))
        .args(args)
        .env("MULTILANG_SANDBOX_TEMPLATES_DIR", templates.path())
        .env("MULTILANG_SANDBOX_LOG", "warn")
        .output()
        .expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[tokio::test]
async fn images_build_builds_templates_and_doctor_checks_each() {
    require_docker().await;
    let mut templates = Templates::new();
    let good = templates.add("good", "ARG BASH\nFROM ${BASH}\nENV GREETING=hello\n");
    let bad = templates.add("bad", "FROM debian:trixie\n");

    let (code, output) = run_binary(&templates, &["images", "build"]);
    assert_ne!(code, Some(0), "a broken template fails the build: {output}");
    assert!(
        output.contains(&format!("{good:<11} built multilang-sandbox/template-{good}:")),
        "{output}"
    );
    assert!(output.contains(&format!("{bad:<11} FAILED")), "{output}");
    assert_eq!(template_images(&good).len(), 1, "{output}");

    let (code, again) = run_binary(&templates, &["images", "build"]);
    assert_ne!(code, Some(0), "{again}");
    assert!(again.contains(&format!("{good:<11} up to date")), "{again}");

    let (code, report) = run_binary(&templates, &["doctor"]);
    assert_ne!(code, Some(0), "a broken template is a problem: {report}");
    let good_line = report
        .lines()
        .find(|line| line.contains(&format!("template {good}")))
        .unwrap_or_default();
    assert!(
        good_line.starts_with("ok") && good_line.contains("its runner answers"),
        "{report}"
    );
    let bad_line = report
        .lines()
        .find(|line| line.contains(&format!("template {bad}")))
        .unwrap_or_default();
    assert!(
        bad_line.starts_with("PROBLEM") && bad_line.contains("ARG PYTHON"),
        "{report}"
    );
}
