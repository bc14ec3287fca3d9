//! The next step after a failed tool call, in the words of this server's
//! tools. Core errors say what happened (and what to do within their own
//! layer); only the tools know their names and arguments, so the pointer to
//! the tool that helps is added here.

use crate::core::error::{ExecuteError, FileError, PackageError, SessionError};
use crate::core::session::SnapshotError;
use std::error::Error;

/// The message a client sees for `error`: its own text, with the tool to
/// use next where there is one.
pub(crate) fn explain(error: &(dyn Error + 'static)) -> String {
    let mut message = error.to_string();
    match next_step(error) {
        Some(Step::Then(step)) => message.push_str(step),
        Some(Step::Instead { core, tool }) => message = message.replace(core, tool),
        None => {}
    }
    message
}

/// How the tool's words join the core's.
enum Step {
    /// Added after the message.
    Then(&'static str),
    /// The core's general words `core`, in the message, said with the tool.
    Instead { core: &'static str, tool: &'static str },
}

fn next_step(error: &(dyn Error + 'static)) -> Option<Step> {
    if let Some(error) = error.downcast_ref::<ExecuteError>() {
        return match error {
            ExecuteError::Session(error) => session_step(error),
            ExecuteError::Package(error) => package_step(error),
            ExecuteError::Snapshot(SnapshotError::Session(error)) => session_step(error),
            _ => None,
        };
    }
    if let Some(error) = error.downcast_ref::<SessionError>() {
        return session_step(error);
    }
    if let Some(error) = error.downcast_ref::<PackageError>() {
        return package_step(error);
    }
    if let Some(error) = error.downcast_ref::<FileError>() {
        return file_step(error);
    }
    None
}

fn session_step(error: &SessionError) -> Option<Step> {
    let step = match error {
        SessionError::Unknown(_) => Step::Then(": create it with sandbox_session action=create, or see action=list"),
        SessionError::TooMany { .. } => Step::Then(" (see sandbox_session action=list)"),
        SessionError::FileTimeout { .. } => Step::Then(", and check it with sandbox_session get"),
        SessionError::StoppedInMemory { .. } => {
            Step::Then("; run any sandbox_execute in it to start it again, then use sandbox_file_ops")
        }
        SessionError::Package(error) => return package_step(error),
        _ => return None,
    };
    Some(step)
}

fn package_step(error: &PackageError) -> Option<Step> {
    match error {
        PackageError::SessionPackages => Some(Step::Then(
            "; to add packages to a session use sandbox_install with `session`",
        )),
        _ => None,
    }
}

fn file_step(error: &FileError) -> Option<Step> {
    let step = match error {
        FileError::Session(error) => return session_step(error),
        FileError::Outside(_) => Step::Instead {
            core: "(/mnt/<name>, listed with the session)",
            tool: "(/mnt/<name>, see sandbox_session get)",
        },
        FileError::ListTooLarge { .. } => Step::Instead {
            core: "(for example `ls | head`, run as code)",
            tool: "(for example `ls | head` with sandbox_execute)",
        },
        FileError::OldRunner(_) => {
            Step::Then("; read and write its files with sandbox_execute, or destroy it and create it again")
        }
        _ => return None,
    };
    Some(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message with a tool in it reads as it did when the tool names
    /// were in the core's own messages.
    #[test]
    fn core_errors_get_the_tool_to_use_next() {
        let session = |error: SessionError| ExecuteError::Session(error);
        let cases: Vec<(Box<dyn Error>, &str)> = vec![
            (
                Box::new(session(SessionError::Unknown("calc".into()))),
                "no session named `calc`: create it with sandbox_session action=create, or see action=list",
            ),
            (
                Box::new(session(SessionError::TooMany { max: 32 })),
                "there are already 32 sessions: destroy one you no longer need (see sandbox_session action=list)",
            ),
            (
                Box::new(FileError::Session(SessionError::FileTimeout {
                    name: "calc".into(),
                    seconds: 30,
                })),
                "session `calc` did not answer the file operation within 30 s (it may be busy starting an interpreter, or frozen); try again, and check it with sandbox_session get",
            ),
            (
                Box::new(FileError::Session(SessionError::StoppedInMemory {
                    name: "calc".into(),
                })),
                "session `calc` has stopped (for example the Docker engine restarted) and its files lived in memory, so they are gone; run any sandbox_execute in it to start it again, then use sandbox_file_ops",
            ),
            (
                Box::new(ExecuteError::Package(PackageError::SessionPackages)),
                "`packages`, `ml` and `template` apply to stateless executes and session create; to add packages to a session use sandbox_install with `session`",
            ),
            (
                Box::new(FileError::Outside("/etc".into())),
                "path `/etc` is outside the session's folders; use a path relative to /workspace, or one under /workspace, /outputs or a mounted host folder (/mnt/<name>, see sandbox_session get)",
            ),
            (
                Box::new(FileError::ListTooLarge { max: 20000 }),
                "the folder holds more than 20000 entries; list a sub-folder, or have code summarize it (for example `ls | head` with sandbox_execute)",
            ),
            (
                Box::new(FileError::OldRunner("calc".into())),
                "session `calc` was created by an older multilang-sandbox whose runner cannot do file operations; read and write its files with sandbox_execute, or destroy it and create it again",
            ),
        ];
        for (error, shown) in cases {
            assert_eq!(explain(error.as_ref()), shown);
            assert!(!error.to_string().contains("sandbox_"), "core names a tool: {error}");
        }
        // Errors with nothing to add keep their own words.
        assert_eq!(explain(&ExecuteError::EmptyCode), ExecuteError::EmptyCode.to_string());
    }
}
