//! The user's own images (templates): a folder per template under the
//! templates folder, holding a Dockerfile that starts `FROM` one of our
//! language images through a build argument (`ARG PYTHON` then
//! `FROM ${PYTHON}`), so the runner and the security posture stay ours.
//! Found, named, hashed and packed here; built by [`super::ImageBuilder`];
//! the built image is checked by [`check_built`] before anything runs in it.

use super::{PYTHON_ML, tag, tag_for};
use crate::config::Config;
use crate::docker::{BuildContext, DockerError, ImageFacts};
use crate::runtime::Language;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A template's build context (its folder) may hold at most this much.
pub const MAX_CONTEXT_BYTES: u64 = 64 * 1024 * 1024;

/// In the tag of a build not checked yet.
pub const UNCHECKED: &str = "-unchecked-";

/// Label naming the template an image was built from.
pub const TEMPLATE_LABEL: &str = "multilang-sandbox.template";

/// The users sandboxes run as; a template must end as one of them.
const SANDBOX_USERS: [&str; 2] = ["sandbox", "1000"];

/// Failures finding, reading, building or checking a template.
#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("no template named `{name}` (templates are folders with a Dockerfile in {folder}; {available})")]
    NotFound {
        name: String,
        folder: String,
        available: String,
    },
    #[error(
        "`{0}` is not a template name: use lower-case letters and digits, with single `-` or `_` between them (at most 40 characters)"
    )]
    BadName(String),
    #[error("template `{name}`: {problem}")]
    Dockerfile { name: String, problem: String },
    #[error(
        "template `{name}`: {path} is {what}; templates hold regular files and folders only (copy the file in, or rename it)"
    )]
    SpecialFile {
        name: String,
        path: String,
        what: &'static str,
    },
    #[error(
        "template `{name}`: its folder holds more than {} MiB; it is the build context, so keep large data out of it (download it in a RUN step, or mount a host folder)",
        MAX_CONTEXT_BYTES / 1024 / 1024
    )]
    ContextTooLarge { name: String },
    #[error("template `{name}`: cannot read {path}: {error}")]
    Read {
        name: String,
        path: String,
        error: std::io::Error,
    },
    #[error("template `{name}` is for {language}, not {asked}; ask for it with language: {language}")]
    WrongLanguage {
        name: String,
        language: &'static str,
        asked: &'static str,
    },
    #[error("template `{name}` is refused: {reason}")]
    Refused { name: String, reason: String },
    #[error("template `{name}` builds on {parent}, which is not built yet: run `multilang-sandbox images build{flag}`")]
    ParentMissing {
        name: String,
        parent: String,
        flag: &'static str,
    },
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("building template `{name}` failed: {message}")]
    BuildFailed { name: String, message: String },
}

/// The image a template starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateBase {
    Language(Language),
    /// The data-science Python image (`FROM ${PYTHON_ML}`).
    PythonMl,
}

impl TemplateBase {
    /// The language its sandboxes run.
    pub fn language(self) -> Language {
        match self {
            TemplateBase::Language(language) => language,
            TemplateBase::PythonMl => Language::Python,
        }
    }

    /// The build argument that names it.
    pub fn argument(self) -> String {
        match self {
            TemplateBase::Language(language) => language.name().to_uppercase(),
            TemplateBase::PythonMl => "PYTHON_ML".to_string(),
        }
    }

    /// Its image's tag under `config`.
    pub fn image(self, config: &Config) -> String {
        match self {
            TemplateBase::Language(language) => tag_for(language, config),
            TemplateBase::PythonMl => tag(&PYTHON_ML, config),
        }
    }

    fn every() -> impl Iterator<Item = TemplateBase> {
        Language::ALL
            .into_iter()
            .map(TemplateBase::Language)
            .chain(std::iter::once(TemplateBase::PythonMl))
    }
}

/// One template, as found in its folder.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub folder: PathBuf,
    pub base: TemplateBase,
}

/// A template's files, read for a build: its tag follows from them.
pub struct TemplateSource {
    pub template: Template,
    /// `<prefix>/template-<name>:<hash>`.
    pub tag: String,
    pub hash: String,
    pub context: BuildContext,
    /// The machine's CA bundle (`ca_bundle`), which the build and the
    /// template's sandboxes trust.
    pub ca_bundle: Option<String>,
}

impl TemplateSource {
    /// A tag of its own for a build not checked yet: the template's tag is
    /// only ever given to an image that passed the checks.
    pub fn unchecked_tag(&self) -> String {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        format!("{}{UNCHECKED}{}", self.tag, &unique[..12])
    }

    /// The repository every build of this template is tagged in.
    pub fn repository(&self) -> &str {
        super::repository_of(&self.tag)
    }
}

impl TemplateError {
    /// The image `template` builds on is not built.
    pub fn parent_missing(template: &Template, config: &Config) -> Self {
        TemplateError::ParentMissing {
            name: template.name.clone(),
            parent: template.base.image(config),
            flag: if template.base == TemplateBase::PythonMl {
                " --ml"
            } else {
                ""
            },
        }
    }
}

impl Template {
    /// The template in `folder/name`.
    pub fn find(templates_dir: &Path, name: &str) -> Result<Template, TemplateError> {
        validate_name(name)?;
        let folder = templates_dir.join(name);
        if !folder.join("Dockerfile").is_file() {
            let names: Vec<String> = discover(templates_dir).into_iter().map(|(name, _)| name).collect();
            let available = if names.is_empty() {
                "there are none".to_string()
            } else {
                format!("there are: {}", names.join(", "))
            };
            return Err(TemplateError::NotFound {
                name: name.to_string(),
                folder: templates_dir.display().to_string(),
                available,
            });
        }
        let dockerfile = read_file(name, &folder.join("Dockerfile"))?;
        let text = String::from_utf8_lossy(&dockerfile);
        let base = parse_base(&text).map_err(|problem| TemplateError::Dockerfile {
            name: name.to_string(),
            problem,
        })?;
        Ok(Template {
            name: name.to_string(),
            folder,
            base,
        })
    }

    /// Reads the template's folder: its build context and content-hash tag
    /// (the name, every file and its mode, and every image it may build on).
    /// Blocks on the file system.
    pub fn read(&self, config: &Config) -> Result<TemplateSource, TemplateError> {
        let mut files = BTreeMap::new();
        let mut total = 0;
        collect_files(&self.name, &self.folder, &self.folder, &mut files, &mut total)?;
        let mut hasher = Sha256::new();
        let mut feed = |part: &[u8]| {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        };
        feed(b"template");
        feed(self.name.as_bytes());
        // Every image a stage may start from, not only the final one's.
        for (argument, image) in build_args(config).into_iter().collect::<BTreeMap<_, _>>() {
            feed(argument.as_bytes());
            feed(image.as_bytes());
        }
        let ca_bundle = config.read_ca_bundle();
        feed(ca_bundle.as_deref().unwrap_or_default().as_bytes());
        let mut context = BuildContext::default();
        for (path, (mode, content)) in &files {
            feed(path.as_bytes());
            feed(&mode.to_le_bytes());
            feed(content);
            context.add_with_mode(path, *mode, content);
        }
        let hash = hex::encode(hasher.finalize())[..16].to_string();
        Ok(TemplateSource {
            tag: format!("{}/template-{}:{hash}", config.image_prefix, self.name),
            hash,
            template: self.clone(),
            context,
            ca_bundle,
        })
    }
}

/// Every template in `templates_dir` by name (sorted), or what is wrong
/// with it; an absent folder has none.
pub fn discover(templates_dir: &Path) -> Vec<(String, Result<Template, TemplateError>)> {
    let Ok(entries) = std::fs::read_dir(templates_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("Dockerfile").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let found = Template::find(templates_dir, &name);
            (name, found)
        })
        .collect()
}

/// Every template in the configured templates folder, read for a build
/// (its tag and context), or what is wrong with it. Blocks on the file
/// system.
pub fn read_all(config: &Config) -> Vec<(String, Result<TemplateSource, TemplateError>)> {
    discover(&config.templates_dir)
        .into_iter()
        .map(|(name, found)| (name, found.and_then(|template| template.read(config))))
        .collect()
}

/// Template names: lower-case letters and digits with single `-` or `_`
/// between them, at most 40 characters (safe in an image name).
pub fn validate_name(name: &str) -> Result<(), TemplateError> {
    let well_formed = !name.is_empty()
        && name.len() <= 40
        && name
            .split(['-', '_'])
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    if well_formed {
        Ok(())
    } else {
        Err(TemplateError::BadName(name.to_string()))
    }
}

/// The build arguments every template build gets: each of our images by
/// the name a template's `ARG` uses.
pub fn build_args(config: &Config) -> HashMap<String, String> {
    TemplateBase::every()
        .map(|base| (base.argument(), base.image(config)))
        .collect()
}

/// The labels a template's image is built with.
pub fn build_labels(source: &TemplateSource) -> HashMap<String, String> {
    HashMap::from([
        (super::HASH_LABEL.to_string(), source.hash.clone()),
        (
            super::IMAGE_LABEL.to_string(),
            format!("template-{}", source.template.name),
        ),
        (TEMPLATE_LABEL.to_string(), source.template.name.clone()),
    ])
}

/// Which of our images the Dockerfile's final stage starts from: its last
/// `FROM` (through the stages it names) must be `${ARG}` for one of our
/// build arguments, declared with `ARG` before the first `FROM`.
pub fn parse_base(dockerfile: &str) -> Result<TemplateBase, String> {
    let mut declared = Vec::new();
    let mut stages: Vec<(String, Option<String>)> = Vec::new();
    for line in instructions(dockerfile.trim_start_matches('\u{feff}')) {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else {
            continue;
        };
        if instruction.eq_ignore_ascii_case("ARG") && stages.is_empty() {
            declared.extend(words.map(|word| word.split('=').next().unwrap_or_default().to_string()));
        } else if instruction.eq_ignore_ascii_case("FROM") {
            let rest: Vec<&str> = words.filter(|word| !word.starts_with("--")).collect();
            let Some(image) = rest.first() else {
                return Err("a FROM line names no image".to_string());
            };
            let alias = match rest.get(1..) {
                Some([keyword, alias, ..]) if keyword.eq_ignore_ascii_case("AS") => Some(alias.to_lowercase()),
                _ => None,
            };
            stages.push((image.to_string(), alias));
        }
    }
    let how = "start the Dockerfile with `ARG PYTHON` and `FROM ${PYTHON}` (or JAVASCRIPT, TYPESCRIPT, GO, RUST, BASH, PYTHON_ML): a template builds on one of our images";
    let Some((mut image, _)) = stages.last().cloned() else {
        return Err(format!("the Dockerfile has no FROM line; {how}"));
    };
    // A final `FROM builder` names an earlier stage: follow it down.
    for _ in 0..stages.len() {
        let earlier = stages
            .iter()
            .find(|(_, alias)| alias.as_deref() == Some(image.to_lowercase().as_str()));
        match earlier {
            Some((from, _)) => image = from.clone(),
            None => break,
        }
    }
    let argument = image
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .or_else(|| image.strip_prefix('$'))
        .unwrap_or_default();
    let base = TemplateBase::every()
        .find(|base| base.argument() == argument)
        .ok_or_else(|| format!("its final image starts FROM `{image}`; {how}"))?;
    if !declared.iter().any(|name| name == argument) {
        return Err(format!(
            "it uses ${{{argument}}} without declaring it: put `ARG {argument}` before the first FROM"
        ));
    }
    Ok(base)
}

/// The Dockerfile's instructions, one per entry: comments and blank lines
/// dropped, `\` continuations joined.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        // Docker skips comment and empty lines, also inside a continuation.
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        joined.push(current);
    }
    joined
}

/// Checks a built template image against the image it builds on: it must
/// hold that image's layers (so its runner and users), end as the sandbox
/// user, and add no volumes, entry point, health check or labels of ours.
/// (Capabilities and network are the container's, which the server sets;
/// an image cannot grant them.)
pub fn check_built(name: &str, built: &ImageFacts, parent: &ImageFacts) -> Result<(), TemplateError> {
    let refuse = |reason: String| {
        Err(TemplateError::Refused {
            name: name.to_string(),
            reason,
        })
    };
    let user = built.user.split(':').next().unwrap_or_default();
    if !SANDBOX_USERS.contains(&user) {
        let shown = if user.is_empty() { "root" } else { user };
        return refuse(format!(
            "its image ends as user `{shown}`; sandboxes run as the unprivileged user `sandbox`, so end the Dockerfile with `USER sandbox` (use `USER root` only for the steps that need it)"
        ));
    }
    if !built.layers.starts_with(&parent.layers) {
        return refuse(
            "its image does not hold the layers of the image it names in FROM (a final stage that starts elsewhere, or a squashed build); build the final stage FROM one of our images".to_string(),
        );
    }
    let added: Vec<&str> = built
        .volumes
        .iter()
        .filter(|volume| !parent.volumes.contains(volume))
        .map(String::as_str)
        .collect();
    if !added.is_empty() {
        return refuse(format!(
            "it declares VOLUME {}; sandboxes keep files in /workspace (sessions) and take host folders from the user's configuration, so remove the VOLUME line",
            added.join(", ")
        ));
    }
    if built.entrypoint != parent.entrypoint {
        return refuse("it sets ENTRYPOINT; the sandbox's runner must be the container's first process, so remove it (put start-up steps in RUN lines)".to_string());
    }
    if built.healthcheck != parent.healthcheck && built.healthcheck != ["NONE"] {
        return refuse("it sets HEALTHCHECK, which the engine would run inside every sandbox; remove it".to_string());
    }
    // The server's labels, and those an engine reads as settings for the
    // container (Podman's `io.containers.capabilities`, say).
    let ours = |key: &str| {
        ["multilang-sandbox.", "io.containers.", "io.podman."]
            .iter()
            .any(|prefix| key.starts_with(prefix))
    };
    let expected_labels = [super::HASH_LABEL, super::IMAGE_LABEL, TEMPLATE_LABEL];
    if let Some(key) = built
        .labels
        .keys()
        .filter(|key| ours(key) && !expected_labels.contains(&key.as_str()))
        .find(|key| built.labels.get(*key) != parent.labels.get(*key))
    {
        return refuse(format!(
            "it sets the label `{key}`, which the server or the engine reads on the containers that inherit it; rename the label"
        ));
    }
    Ok(())
}

fn read_error(name: &str, path: &Path) -> impl FnOnce(std::io::Error) -> TemplateError {
    let (name, path) = (name.to_string(), path.display().to_string());
    move |error| TemplateError::Read { name, path, error }
}

fn read_file(name: &str, path: &Path) -> Result<Vec<u8>, TemplateError> {
    std::fs::read(path).map_err(read_error(name, path))
}

/// Every regular file under `folder` by its path relative to `root`, with
/// its mode; links and special files are refused (the context is what the
/// user sees in the folder), and a `.git` folder is left out (it changes
/// with every fetch and is no part of an image).
fn collect_files(
    name: &str,
    root: &Path,
    folder: &Path,
    files: &mut BTreeMap<String, (u32, Vec<u8>)>,
    total: &mut u64,
) -> Result<(), TemplateError> {
    for entry in std::fs::read_dir(folder).map_err(read_error(name, folder))? {
        let path = entry.map_err(read_error(name, folder))?.path();
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let Some(relative) = relative.to_str().map(str::to_string) else {
            return Err(TemplateError::SpecialFile {
                name: name.to_string(),
                path: relative.to_string_lossy().into_owned(),
                what: "named in a way that is not UTF-8",
            });
        };
        let metadata = std::fs::symlink_metadata(&path).map_err(read_error(name, &path))?;
        let kind = metadata.file_type();
        if kind.is_dir() {
            if relative != ".git" {
                collect_files(name, root, &path, files, total)?;
            }
            continue;
        }
        if !kind.is_file() {
            let what = if kind.is_symlink() {
                "a symbolic link"
            } else {
                "not a regular file"
            };
            return Err(TemplateError::SpecialFile {
                name: name.to_string(),
                path: relative,
                what,
            });
        }
        let content = read_file(name, &path)?;
        *total += content.len() as u64;
        if *total > MAX_CONTEXT_BYTES {
            return Err(TemplateError::ContextTooLarge { name: name.to_string() });
        }
        files.insert(relative, (file_mode(&metadata), content));
    }
    Ok(())
}

fn file_mode(metadata: &std::fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o111 != 0 {
            return 0o755;
        }
    }
    let _ = metadata;
    0o644
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_stage_names_its_base_through_a_build_argument() {
        assert_eq!(
            parse_base("ARG PYTHON\nFROM ${PYTHON}\nUSER root\nRUN true\nUSER sandbox\n"),
            Ok(TemplateBase::Language(Language::Python))
        );
        assert_eq!(
            parse_base("# syntax comment\narg  BASH=x\nfrom $BASH as final\n"),
            Ok(TemplateBase::Language(Language::Bash))
        );
        assert_eq!(
            parse_base("ARG PYTHON_ML\nFROM ${PYTHON_ML}\n"),
            Ok(TemplateBase::PythonMl)
        );
        let multi_stage = "ARG GO\nARG RUST\nFROM ${RUST} AS build\nRUN cargo build\n\
                           FROM ${GO} AS final\nCOPY --from=build /x /y\n";
        assert_eq!(parse_base(multi_stage), Ok(TemplateBase::Language(Language::Go)));
        let via_alias = "ARG TYPESCRIPT\nFROM ${TYPESCRIPT} AS Base\nRUN \\\n  true\nFROM base\n";
        assert_eq!(parse_base(via_alias), Ok(TemplateBase::Language(Language::TypeScript)));
        // A byte-order mark, an empty line and a comment inside a
        // continuation (Docker goes on with the instruction), two names in one ARG.
        let edited = "\u{feff}ARG GO RUST\nRUN echo \\\n\n# a comment\n  FROM ${GO}\nFROM ${RUST}\n";
        assert_eq!(parse_base(edited), Ok(TemplateBase::Language(Language::Rust)));
    }

    #[test]
    fn a_template_that_starts_elsewhere_is_told_how_to_start() {
        let elsewhere = parse_base("FROM debian:trixie\nRUN true\n").unwrap_err();
        assert!(
            elsewhere.contains("`debian:trixie`") && elsewhere.contains("ARG PYTHON"),
            "{elsewhere}"
        );
        let last_elsewhere = parse_base("ARG PYTHON\nFROM ${PYTHON} AS a\nFROM alpine\n").unwrap_err();
        assert!(last_elsewhere.contains("`alpine`"), "{last_elsewhere}");
        let undeclared = parse_base("FROM ${PYTHON}\n").unwrap_err();
        assert!(undeclared.contains("`ARG PYTHON` before"), "{undeclared}");
        assert!(parse_base("ARG X\nFROM ${X}\n").is_err());
        assert!(parse_base("").unwrap_err().contains("no FROM"));
    }

    #[test]
    fn names_are_safe_in_image_names() {
        for good in ["data", "ml-2", "a_b", "x1"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Data", "-a", "a-", "a--b", "a.b", "../x", "a b", &"x".repeat(41)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    fn parent() -> ImageFacts {
        ImageFacts {
            user: "sandbox".into(),
            layers: vec!["sha256:a".into(), "sha256:b".into()],
            labels: HashMap::from([(super::super::HASH_LABEL.to_string(), "p".to_string())]),
            ..ImageFacts::default()
        }
    }

    fn built() -> ImageFacts {
        let mut built = parent();
        built.layers.push("sha256:c".into());
        built.labels.insert(TEMPLATE_LABEL.into(), "t".into());
        built.labels.insert("maintainer".into(), "me".into());
        built
    }

    fn refusal(facts: ImageFacts) -> String {
        check_built("t", &facts, &parent()).unwrap_err().to_string()
    }

    #[test]
    fn a_built_template_keeps_the_boundary() {
        assert!(check_built("t", &built(), &parent()).is_ok());
        for user in ["1000", "sandbox:sandbox", "1000:1000"] {
            assert!(
                check_built(
                    "t",
                    &ImageFacts {
                        user: user.into(),
                        ..built()
                    },
                    &parent()
                )
                .is_ok()
            );
        }
        for user in ["root", "", "0", "0:0", "nobody"] {
            let refused = refusal(ImageFacts {
                user: user.into(),
                ..built()
            });
            assert!(refused.contains("USER sandbox"), "{user}: {refused}");
        }
        let elsewhere = refusal(ImageFacts {
            layers: vec!["sha256:z".into()],
            ..built()
        });
        assert!(elsewhere.contains("layers"), "{elsewhere}");
        let inherited = ImageFacts {
            volumes: vec!["/inherited".into()],
            ..parent()
        };
        let volume = check_built(
            "t",
            &ImageFacts {
                volumes: vec!["/inherited".into(), "/data".into()],
                ..built()
            },
            &inherited,
        )
        .unwrap_err()
        .to_string();
        assert!(
            volume.contains("VOLUME /data;"),
            "only the new volume is named: {volume}"
        );
        assert!(
            check_built(
                "t",
                &ImageFacts {
                    healthcheck: vec!["NONE".into()],
                    ..built()
                },
                &parent()
            )
            .is_ok()
        );
        assert!(
            refusal(ImageFacts {
                entrypoint: vec!["/bin/sh".into()],
                ..built()
            })
            .contains("ENTRYPOINT")
        );
        assert!(
            refusal(ImageFacts {
                healthcheck: vec!["CMD".into()],
                ..built()
            })
            .contains("HEALTHCHECK")
        );
        for label in [
            "multilang-sandbox.session",
            "io.containers.capabilities",
            "io.podman.annotations.x",
        ] {
            let mut labelled = built();
            labelled.labels.insert(label.into(), "x".into());
            assert!(refusal(labelled).contains(label), "{label}");
        }
    }

    #[test]
    fn the_tag_follows_the_files_their_modes_and_the_base() {
        let root = tempfile::tempdir().expect("a temporary folder");
        let folder = root.path().join("tools");
        std::fs::create_dir_all(folder.join("conf")).expect("folders");
        std::fs::write(folder.join("Dockerfile"), "ARG BASH\nFROM ${BASH}\n").expect("Dockerfile");
        std::fs::write(folder.join("conf/a.txt"), "1").expect("a file");
        std::fs::create_dir(folder.join(".git")).expect("a .git folder");
        std::fs::write(folder.join(".git/HEAD"), "ref: main").expect("a .git file");
        let config = Config::default();
        let template = Template::find(root.path(), "tools").expect("found");
        assert_eq!(template.base, TemplateBase::Language(Language::Bash));
        let first = template.read(&config).expect("read");
        assert!(
            first.tag.starts_with("multilang-sandbox/template-tools:"),
            "{}",
            first.tag
        );
        assert_eq!(template.read(&config).expect("read").tag, first.tag);
        std::fs::write(folder.join(".git/HEAD"), "ref: other").expect("a .git file");
        assert_eq!(
            template.read(&config).expect("read").tag,
            first.tag,
            ".git is no part of it"
        );
        std::fs::write(folder.join("conf/a.txt"), "2").expect("a file");
        let changed = template.read(&config).expect("read").tag;
        assert_ne!(changed, first.tag);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(folder.join("conf/a.txt"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
            assert_ne!(template.read(&config).expect("read").tag, changed);
            std::os::unix::fs::symlink("/etc/passwd", folder.join("link")).expect("a link");
            let refused = template.read(&config).err().expect("a link is refused").to_string();
            assert!(refused.contains("link is a symbolic link"), "{refused}");
        }
        let other_base = Config {
            base_image: "example/other:1".into(),
            ..Config::default()
        };
        std::fs::remove_file(folder.join("link")).ok();
        assert_ne!(template.read(&other_base).expect("read").tag, changed);
    }

    #[test]
    fn a_missing_template_lists_those_there_are() {
        let root = tempfile::tempdir().expect("a temporary folder");
        let none = Template::find(root.path(), "data").unwrap_err().to_string();
        assert!(none.contains("there are none"), "{none}");
        std::fs::create_dir(root.path().join("tools")).expect("folder");
        std::fs::write(root.path().join("tools/Dockerfile"), "ARG GO\nFROM ${GO}\n").expect("Dockerfile");
        let listed = Template::find(root.path(), "data").unwrap_err().to_string();
        assert!(listed.contains("there are: tools"), "{listed}");
        assert!(matches!(
            Template::find(root.path(), "../x"),
            Err(TemplateError::BadName(_))
        ));
        assert_eq!(discover(root.path()).len(), 1);
        assert!(discover(&root.path().join("absent")).is_empty());
    }
}
