//! Adding a host pattern to `egress.allow` in the user's config file: the
//! "always" answer to an egress question (issue #14). The file is edited
//! with `toml_edit`, so the user's comments, order and formatting stay as
//! written; `egress.allow` may be a dotted key (`egress.allow = [...]`),
//! in an `[egress]` table (or an inline one), or the quoted key
//! `"egress.allow"`, as the loader reads it. A pattern already listed (or
//! covered by one listed) is not added again. A missing file, and its
//! folder, is created. The new text replaces the file atomically (a
//! temporary file in the same folder, renamed over it), so a failure
//! leaves the file as it was, never half written; a file that is not
//! valid TOML, or whose `egress.allow` is not a list of strings, or that
//! is read-only, is left untouched and the error says why.

use crate::security::egress::{ALLOW_KEY, HostPattern};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use thiserror::Error;
use toml_edit::{Array, DocumentMut, Item, Table, Value};

/// One edit at a time in this server (two answers at once must not lose
/// one another's host).
static EDITING: Mutex<()> = Mutex::new(());

/// What adding a pattern did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowEdit {
    /// The pattern was added (`created`: the file did not exist).
    Added { created: bool },
    /// The file lists it already (or a pattern that covers it).
    AlreadyListed,
}

/// The config file could not take the pattern; it was left as it was.
#[derive(Debug, Error)]
pub enum AllowFileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is read-only")]
    ReadOnly { path: PathBuf },
    #[error("{path} is not valid TOML, so it was left as it is: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("{path} was left as it is: {reason}")]
    Shape { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Adds `pattern` to `egress.allow` in the config file at `path`
/// (created, with its folder, when missing). A symbolic link is followed:
/// the file it names is the one edited.
pub fn add_to_allow(path: &Path, pattern: &HostPattern) -> Result<AllowEdit, AllowFileError> {
    let _editing = EDITING.lock();
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let existing = match std::fs::read_to_string(&target) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(AllowFileError::Read { path: target, source }),
    };
    if existing.is_some() {
        let metadata = std::fs::metadata(&target).map_err(|source| AllowFileError::Read {
            path: target.clone(),
            source,
        })?;
        if metadata.permissions().readonly() {
            return Err(AllowFileError::ReadOnly { path: target });
        }
    }
    let created = existing.is_none();
    let edited = match existing {
        Some(text) => add_to_text(&text, pattern).map_err(|error| match error {
            EditError::Syntax(reason) => AllowFileError::Syntax {
                path: target.clone(),
                reason,
            },
            EditError::Shape(reason) => AllowFileError::Shape {
                path: target.clone(),
                reason,
            },
        })?,
        None => Some(new_file(pattern)),
    };
    let Some(text) = edited else {
        return Ok(AllowEdit::AlreadyListed);
    };
    crate::atomic_file::write_atomically(&target, &text)
        .map_err(|source| AllowFileError::Write { path: target, source })?;
    Ok(AllowEdit::Added { created })
}

/// Why a text could not be edited.
#[derive(Debug, PartialEq, Eq)]
enum EditError {
    Syntax(String),
    Shape(String),
}

/// The config file `text` with `pattern` added to `egress.allow`, or
/// `None` when it is listed already.
fn add_to_text(text: &str, pattern: &HostPattern) -> Result<Option<String>, EditError> {
    let mut document: DocumentMut = text
        .parse()
        .map_err(|error: toml_edit::TomlError| EditError::Syntax(error.to_string().trim().to_string()))?;
    let added = if let Some(allow) = document.get_mut(ALLOW_KEY) {
        // `"egress.allow" = [...]`: the quoted key the loader also reads.
        add_to_list(allow, pattern)?
    } else if let Some(group) = document.get_mut("egress") {
        let table = group
            .as_table_like_mut()
            .ok_or_else(|| EditError::Shape("`egress` is not a table of keys".to_string()))?;
        match table.get_mut("allow") {
            Some(allow) => add_to_list(allow, pattern)?,
            None => {
                // In the table's own form: `egress.ask = …` gets
                // `egress.allow = […]` beside it, `[egress]` an `allow` line.
                table.insert("allow", Item::Value(Value::Array(list_of(pattern))));
                true
            }
        }
    } else {
        let mut table = Table::new();
        table.insert("allow", Item::Value(Value::Array(list_of(pattern))));
        table
            .decor_mut()
            .set_prefix(if text.trim().is_empty() { "" } else { "\n" });
        document.insert("egress", Item::Table(table));
        true
    };
    Ok(added.then(|| document.to_string()))
}

/// A new config file holding only `pattern` in `egress.allow`.
fn new_file(pattern: &HostPattern) -> String {
    format!(
        "# multilang-sandbox configuration (`multilang-sandbox config show` lists every key).\n\
         # Created when the user allowed a host \"always\" from their MCP client.\n\n\
         [egress]\nallow = [\"{pattern}\"]\n"
    )
}

fn list_of(pattern: &HostPattern) -> Array {
    let mut list = Array::new();
    list.push(pattern.to_string());
    list
}

/// Adds `pattern` to the list `item` unless a listed pattern covers it;
/// true when added. A new entry is formatted like the last one (a list
/// written one entry a line gets one more line, a comment after the last
/// entry stays with it).
fn add_to_list(item: &mut Item, pattern: &HostPattern) -> Result<bool, EditError> {
    let not_a_list = || EditError::Shape(format!("`{ALLOW_KEY}` is not a list of strings"));
    let list = item.as_array_mut().ok_or_else(not_a_list)?;
    for entry in list.iter() {
        let text = entry.as_str().ok_or_else(not_a_list)?;
        let listed = text.parse::<HostPattern>().is_ok_and(|listed| listed.covers(pattern));
        if listed || text.trim() == pattern.to_string() {
            return Ok(false);
        }
    }
    let mut value = Value::from(pattern.to_string());
    let trailing = raw_text(Some(list.trailing()));
    let mut tail = None;
    if let Some(last) = list.iter_mut().last() {
        let decor = last.decor_mut();
        let prefix = raw_text(decor.prefix());
        match prefix.rfind('\n') {
            // One entry a line: the new one goes on a line of its own,
            // indented alike; a comment after the last entry stays with
            // it, and the line break before `]` stays before it.
            Some(line) => {
                let after = format!("{}{trailing}", raw_text(decor.suffix()));
                let (comment, rest) = after.split_at(after.rfind('\n').unwrap_or(after.len()));
                value
                    .decor_mut()
                    .set_prefix(format!("{}{}", comment.trim_end(), &prefix[line..]));
                decor.set_suffix("");
                tail = Some(rest.to_string());
            }
            // One line: `["a", "b"]`.
            None => value.decor_mut().set_prefix(" "),
        }
        value.decor_mut().set_suffix("");
    }
    if let Some(tail) = tail {
        list.set_trailing(tail);
    }
    list.push_formatted(value);
    Ok(true)
}

fn raw_text(raw: Option<&toml_edit::RawString>) -> String {
    raw.and_then(|raw| raw.as_str()).unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;

    fn pattern(text: &str) -> HostPattern {
        text.parse().unwrap()
    }

    /// The text edited, and what the loader reads from it.
    fn edit(text: &str, add: &str) -> (String, String) {
        let edited = add_to_text(text, &pattern(add)).unwrap().expect("added");
        let file = ConfigFile::parse(Path::new("/c.toml"), &edited).unwrap();
        let allow = file.value(ALLOW_KEY).unwrap_or_default().to_string();
        (edited, allow)
    }

    #[test]
    fn a_dotted_key_gets_the_pattern_and_keeps_comments_and_layout() {
        let text =
            "# my sandbox\nmemory_mb = 256 # enough\negress.allow = [\"api.github.com\"]  # APIs\negress.ask = true\n";
        let (edited, allow) = edit(text, "origin.example:8080");
        assert_eq!(
            edited,
            "# my sandbox\nmemory_mb = 256 # enough\negress.allow = [\"api.github.com\", \"origin.example:8080\"]  # APIs\negress.ask = true\n"
        );
        assert_eq!(allow, "api.github.com,origin.example:8080");
        // Other dotted egress keys but no allow: added beside them.
        let (edited, allow) = edit("egress.ask = true # yes\n", "a.example");
        assert_eq!(allow, "a.example");
        assert!(edited.starts_with("egress.ask = true # yes\n"), "{edited}");
        assert!(!edited.contains("[egress]"), "{edited}");
    }

    #[test]
    fn a_table_gets_the_pattern_one_entry_a_line_kept() {
        let text = "cpus = 1\n\n# Network\n[egress]\n# hosts\nallow = [\n    \"a.example\",\n    \"b.example\", # the b one\n]\nask = false\n";
        let (edited, allow) = edit(text, "c.example");
        assert_eq!(
            edited,
            "cpus = 1\n\n# Network\n[egress]\n# hosts\nallow = [\n    \"a.example\",\n    \"b.example\", # the b one\n    \"c.example\",\n]\nask = false\n"
        );
        assert_eq!(allow, "a.example,b.example,c.example");
        // Without a trailing comma, a comment after the last entry.
        let (edited, _) = edit(
            "egress.allow = [ # hosts\n  \"a.example\" # the a one\n]\n",
            "c.example",
        );
        assert_eq!(
            edited,
            "egress.allow = [ # hosts\n  \"a.example\", # the a one\n  \"c.example\"\n]\n"
        );
        // A table without allow gets an allow line.
        let (edited, allow) = edit("[egress]\nask = false\n", "[2001:db8::1]:8443");
        assert_eq!(edited, "[egress]\nask = false\nallow = [\"[2001:db8::1]:8443\"]\n");
        assert_eq!(allow, "[2001:db8::1]:8443");
        // An inline table, and the quoted key.
        let (_, allow) = edit("egress = { ask = false }\n", "a.example");
        assert_eq!(allow, "a.example");
        let (edited, allow) = edit("\"egress.allow\" = []\n", "a.example");
        assert_eq!(
            (edited.as_str(), allow.as_str()),
            ("\"egress.allow\" = [\"a.example\"]\n", "a.example")
        );
    }

    #[test]
    fn a_file_without_egress_gets_a_table_at_the_end() {
        let (edited, allow) = edit("# mine\nmemory_mb = 256\n\n[pool_size]\npython = 1\n", "a.example");
        assert_eq!(
            edited,
            "# mine\nmemory_mb = 256\n\n[pool_size]\npython = 1\n\n[egress]\nallow = [\"a.example\"]\n"
        );
        assert_eq!(allow, "a.example");
        let (edited, _) = edit("", "a.example");
        assert_eq!(edited, "[egress]\nallow = [\"a.example\"]\n");
    }

    #[test]
    fn a_listed_or_covered_pattern_is_not_added_again() {
        for (text, add) in [
            ("egress.allow = [\"a.example\"]\n", "a.example"),
            ("egress.allow = [\"A.Example\"]\n", "a.example"),
            ("[egress]\nallow = [\"*.example.org\"]\n", "api.example.org"),
            ("egress.allow = [\"a.example\"]\n", "a.example:443"),
            ("egress.allow = [\"h.example:8080\"]\n", "h.example:8080"),
        ] {
            assert_eq!(add_to_text(text, &pattern(add)), Ok(None), "{text} {add}");
        }
        // Another port is another pattern.
        let (_, allow) = edit("egress.allow = [\"h.example\"]\n", "h.example:8080");
        assert_eq!(allow, "h.example,h.example:8080");
    }

    #[test]
    fn what_is_not_a_config_is_refused_untouched() {
        for text in ["egress.allow = [\"a\"", "memory_mb = ", "[egress\n"] {
            assert!(
                matches!(add_to_text(text, &pattern("a.example")), Err(EditError::Syntax(_))),
                "{text}"
            );
        }
        for text in [
            "egress.allow = \"a.example\"\n",
            "egress.allow = [1]\n",
            "egress = 1\n",
            "[[egress.allow]]\n",
        ] {
            let error = add_to_text(text, &pattern("a.example")).unwrap_err();
            assert!(matches!(error, EditError::Shape(_)), "{text}: {error:?}");
        }
    }

    fn folder() -> PathBuf {
        let folder = std::env::temp_dir().join(format!("allow-file-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&folder).unwrap();
        folder
    }

    /// The names in `folder` (no temporary file left behind).
    fn names(folder: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_missing_file_and_folder_are_created_then_read_back() {
        let root = folder();
        let path = root.join("multilang-sandbox/config.toml");
        assert_eq!(
            add_to_allow(&path, &pattern("a.example")).unwrap(),
            AllowEdit::Added { created: true }
        );
        assert_eq!(
            add_to_allow(&path, &pattern("b.example:8443")).unwrap(),
            AllowEdit::Added { created: false }
        );
        assert_eq!(
            add_to_allow(&path, &pattern("a.example")).unwrap(),
            AllowEdit::AlreadyListed
        );
        let file = ConfigFile::read(&path, true).unwrap().unwrap();
        assert_eq!(file.value(ALLOW_KEY), Some("a.example,b.example:8443"));
        assert_eq!(names(&root.join("multilang-sandbox")), vec!["config.toml"]);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn bad_or_read_only_files_are_left_as_they_are() {
        let root = folder();
        let path = root.join("config.toml");
        let bad = "# mine\negress.allow = [\"a.example\"\n";
        std::fs::write(&path, bad).unwrap();
        let error = add_to_allow(&path, &pattern("b.example")).unwrap_err();
        assert!(
            matches!(&error, AllowFileError::Syntax { path: named, .. } if named == &path),
            "{error}"
        );
        assert!(error.to_string().contains("config.toml is not valid TOML"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
        let fine = "egress.allow = []\n";
        std::fs::write(&path, fine).unwrap();
        let mut permissions = std::fs::metadata(&path).unwrap().permissions();
        permissions.set_readonly(true);
        std::fs::set_permissions(&path, permissions).unwrap();
        let error = add_to_allow(&path, &pattern("b.example")).unwrap_err();
        assert!(matches!(error, AllowFileError::ReadOnly { .. }), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), fine);
        assert_eq!(names(&root), vec!["config.toml"]);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_file_is_edited_where_it_is_with_its_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let root = folder();
        let real = root.join("real.toml");
        std::fs::write(&real, "cpus = 1\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = root.join("config.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        add_to_allow(&link, &pattern("a.example")).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(
            std::fs::read_to_string(&real).unwrap(),
            "cpus = 1\n\n[egress]\nallow = [\"a.example\"]\n"
        );
        assert_eq!(std::fs::metadata(&real).unwrap().permissions().mode() & 0o777, 0o640);
        std::fs::remove_dir_all(root).unwrap();
    }
}
