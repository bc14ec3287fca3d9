//! The next step after a failed tool call, in the words of this server's
//! tools. Core errors say what happened (and what to do within their own
//! layer); only the tools know their names and arguments, so the pointer to
//! the tool that helps is added here.

use crate::core::error::{ExecuteError, FileError, PackageError, SessionError};
use std::error::Error;

/// The message a client sees for `error`: its own text, then the tool to
/// use next when there is one.
pub(crate) fn explain(error: &(dyn Error + 'static)) -> String {
    let mut message = error.to_string();
    if let Some(step) = next_step(error) {
        message.push_str(step);
    }
    message
}

fn next_step(error: &(dyn Error + 'static)) -> Option<&'static str> {
    if let Some(error) = error.downcast_ref::<ExecuteError>() {
        return match error {
            ExecuteError::Session(error) => session_step(error),
            ExecuteError::Package(error) => package_step(error),
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

fn session_step(error: &SessionError) -> Option<&'static str> {
    match error {
        SessionError::Unknown(_) => Some(": create it with sandbox_session action=create, or see action=list"),
        SessionError::TooMany { .. } => Some(" (see sandbox_session action=list)"),
        SessionError::FileTimeout { .. } => Some(", and check it with sandbox_session get"),
        SessionError::StoppedInMemory { .. } => {
            Some("; run any sandbox_execute in it to start it again, then use sandbox_file_ops")
        }
        SessionError::Package(error) => package_step(error),
        _ => None,
    }
}

fn package_step(error: &PackageError) -> Option<&'static str> {
    match error {
        PackageError::SessionPackages => Some("; to add packages to a session use sandbox_install with `session`"),
        _ => None,
    }
}

fn file_step(error: &FileError) -> Option<&'static str> {
    match error {
        FileError::Session(error) => session_step(error),
        FileError::Outside(_) => Some(" (see the mounted folders with sandbox_session get)"),
        FileError::ListTooLarge { .. } => Some(" with sandbox_execute"),
        FileError::OldRunner(_) => {
            Some("; read and write its files with sandbox_execute, or destroy it and create it again")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_get_the_tool_to_use_next() {
        let unknown = ExecuteError::Session(SessionError::Unknown("calc".into()));
        assert_eq!(
            explain(&unknown),
            "no session named `calc`: create it with sandbox_session action=create, or see action=list"
        );
        let stopped = FileError::Session(SessionError::StoppedInMemory { name: "calc".into() });
        assert!(
            explain(&stopped).ends_with("then use sandbox_file_ops"),
            "{}",
            explain(&stopped)
        );
        assert!(explain(&ExecuteError::Package(PackageError::SessionPackages)).ends_with("with `session`"));
        assert!(
            explain(&FileError::ListTooLarge { max: 5 }).ends_with("(for example `ls | head`) with sandbox_execute")
        );
        // Errors with nothing to add keep their own words.
        assert_eq!(explain(&ExecuteError::EmptyCode), ExecuteError::EmptyCode.to_string());
    }

    #[test]
    fn core_messages_name_no_tool() {
        let errors: Vec<Box<dyn Error>> = vec![
            Box::new(SessionError::Unknown("a".into())),
            Box::new(SessionError::TooMany { max: 1 }),
            Box::new(SessionError::FileTimeout {
                name: "a".into(),
                seconds: 1,
            }),
            Box::new(SessionError::StoppedInMemory { name: "a".into() }),
            Box::new(PackageError::SessionPackages),
            Box::new(FileError::Outside("/etc".into())),
            Box::new(FileError::ListTooLarge { max: 1 }),
            Box::new(FileError::OldRunner("a".into())),
        ];
        for error in errors {
            assert!(!error.to_string().contains("sandbox_"), "{error}");
        }
    }
}
