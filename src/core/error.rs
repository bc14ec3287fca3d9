//! What the execution core's operations fail with: executes, sessions,
//! package installs and file operations. Each message states what happened
//! and what to do in this layer's words; the tools add the next step in
//! theirs (`mcp::tools::next_step`), since only they know their own names.

use crate::core::egress::EgressError;
use crate::docker::DockerError;
use crate::images::templates::TemplateError;
use crate::runtime::UnknownLanguage;
use crate::runtime::packages::SpecError;
use thiserror::Error;

/// Why an execute could not produce a result.
#[derive(Debug, Error)]
pub enum ExecuteError {
    #[error(transparent)]
    UnknownLanguage(#[from] UnknownLanguage),
    #[error("`code` is empty: pass the program to run in `code`")]
    EmptyCode,
    #[error("cancelled: the request was stopped before it finished, and nothing it made was kept")]
    Cancelled,
    #[error("timeout {given} ms is out of range: use 1 to {max} milliseconds (default {default})")]
    InvalidTimeout { given: u64, max: u64, default: u64 },
    #[error("environment variable name `{0}` is invalid: use letters, digits and `_`, not starting with a digit")]
    InvalidEnvName(String),
    #[error("environment variable `{0}` contains a NUL character, which no program can receive")]
    InvalidEnvValue(String),
    #[error(
        "refused by the code policy: rule `{rule}` ({description}). This server blocks such code; if it is legitimate, write it without that pattern, or the user can set MULTILANG_SANDBOX_POLICY=audit"
    )]
    PolicyBlocked {
        rule: &'static str,
        description: &'static str,
    },
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Template(TemplateError),
    #[error(transparent)]
    Egress(#[from] EgressError),
    #[error(
        "`network` belongs to the session, not to one execute: change it with sandbox_session \
         {{action: \"network\", name, network: [...]}}"
    )]
    NetworkInSession,
    #[error(
        "a background job runs in this sandbox ({job}), and it runs one thing at a time: collect the job with \
         sandbox_job {{action: \"wait\", job: \"{job}\"}} or stop it with action \"cancel\", then run this again"
    )]
    JobRunning { job: String },
    #[error(transparent)]
    Job(#[from] crate::core::jobs::JobError),
    #[error(transparent)]
    Snapshot(#[from] crate::core::session::SnapshotError),
}

/// Failures of session operations.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error("invalid session name `{0}`: use 1 to 63 letters, digits, `-` or `_`, starting with a letter or digit")]
    InvalidName(String),
    #[error("`name` is required for this action: pass the session's name")]
    NameRequired,
    #[error("`language` is required to create a session: python, javascript, typescript, go, rust or bash")]
    LanguageRequired,
    #[error(
        "`network` is required for this action: pass the hosts the session may reach, for example [\"api.github.com\"]"
    )]
    NetworkRequired,
    #[error("a session named `{0}` already exists: use it, pick another name, or destroy it first")]
    Exists(String),
    #[error("no session named `{0}`")]
    Unknown(String),
    #[error("session `{0}` expired and was destroyed: create a new one (a larger `ttl` keeps it longer)")]
    Expired(String),
    #[error("ttl {given} s is out of range: use 1 to {max} seconds")]
    InvalidTtl { given: u64, max: u64 },
    #[error("there are already {max} sessions: destroy one you no longer need")]
    TooMany { max: usize },
    #[error(
        "session `{name}` is busy with another execute and did not free up within the timeout; try again, or pass a larger `timeout`"
    )]
    Busy { name: String },
    #[error(
        "session `{name}` did not answer the file operation within {seconds} s (it may be busy starting an interpreter, or frozen); try again"
    )]
    FileTimeout { name: String, seconds: u64 },
    #[error(
        "session `{name}` runs {session_language}; run {session_language} code in it, or `bash` for a shell command in the same container"
    )]
    LanguageMismatch { name: String, session_language: String },
    #[error("session `{name}` is {state} and cannot run code; destroy it and create a new one")]
    Unusable { name: String, state: String },
    #[error(
        "session `{name}` has stopped (for example the Docker engine restarted) and its files lived in memory, so they are gone"
    )]
    StoppedInMemory { name: String },
    #[error(
        "no host folder named `{name}` is configured; configured: {configured}. The user adds folders with MULTILANG_SANDBOX_HOST_FOLDERS (for example `data=/home/me/data`)"
    )]
    UnknownHostFolder { name: String, configured: String },
    #[error(
        "unknown seccomp profile `{0}`: use standard or strict (or permissive, when the server is configured with it)"
    )]
    UnknownSeccomp(String),
    #[error(
        "seccomp profile `{asked}` is weaker than this server's `{configured}`, and a session may only tighten it; leave `seccomp` out, or ask for strict"
    )]
    WeakerSeccomp { asked: String, configured: String },
    #[error(
        "host folder `{name}` ({path}) does not exist or is not a folder; create it on the host or fix MULTILANG_SANDBOX_HOST_FOLDERS"
    )]
    HostFolderMissing { name: String, path: String },
    #[error(
        "host folder `{name}` ({path}) is reached through a symbolic link (its real path is {real}); it is not mounted, because a link can be changed to point anywhere. Configure the real path in MULTILANG_SANDBOX_HOST_FOLDERS"
    )]
    HostFolderLinked { name: String, path: String, real: String },
    #[error(
        "session `{name}` is being snapshotted, restored or forked right now (its files are being copied); pause or resume it once that is done"
    )]
    Copying { name: String },
    #[error(
        "a spare session container was removed while it started (another server's gc, or the engine); it is made again"
    )]
    SpareGone,
    #[error(transparent)]
    UnknownLanguage(#[from] UnknownLanguage),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Egress(#[from] EgressError),
}

/// Failures of package installs and the package cache.
#[derive(Debug, Error)]
pub enum PackageError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(
        "the install was cancelled: a cached image keeps nothing; in a session, packages installed before the cancel may remain"
    )]
    Cancelled,
    #[error(
        "{manager} packages change the image itself and cannot be installed into a running session; create the session with `packages` instead"
    )]
    NotInSession { manager: &'static str },
    #[error("{manager} could not install {packages}:\n{output}")]
    Failed {
        manager: &'static str,
        packages: String,
        output: String,
    },
    #[error("the data-science image is not built; build it with `multilang-sandbox images build --ml`")]
    MlImageMissing,
    #[error("`ml: true` is for Python only")]
    MlNotPython,
    #[error(
        "`language` is required to prepare packages without a session: python, javascript, typescript, go, rust or bash"
    )]
    LanguageRequired,
    #[error(
        "`ml` and `template` cannot be combined; a template that builds on the data-science image (`ARG PYTHON_ML` and `FROM ${{PYTHON_ML}}`) has its libraries"
    )]
    MlAndTemplate,
    #[error("`packages`, `ml` and `template` apply to stateless executes and session create")]
    SessionPackages,
    #[error(
        "`ml` and `template` choose the image a sandbox starts from; a session's image is chosen when it is created, so leave them out when installing into a session"
    )]
    ImageInSession,
    #[error(
        "no install was made: the package registries {manager} is configured to use could not be found in the image ({detail}). \
         Check {hint}. Installs reach only those registries, through the egress proxy, and never get other network"
    )]
    NoRegistries {
        manager: &'static str,
        hint: &'static str,
        detail: String,
    },
    #[error("the install could not get its network through the egress proxy: {0}")]
    Egress(#[from] EgressError),
    #[error(transparent)]
    Docker(#[from] DockerError),
}

/// Failures of file operations in a session.
#[derive(Debug, Error)]
pub enum FileError {
    #[error("path `{0}` contains `..`; give a path inside /workspace (relative paths start there) or /outputs")]
    Traversal(String),
    #[error(
        "path `{0}` is outside the session's folders; use a path relative to /workspace, or one under /workspace, /outputs or a mounted host folder (/mnt/<name>, listed with the session)"
    )]
    Outside(String),
    #[error("`{0}` is in a read-only host folder; write under /workspace or /outputs instead")]
    ReadOnly(String),
    #[error(
        "`{path}` is a symbolic link to `{target}`, outside the session's folders (/workspace, /outputs, /mnt/<name>) or in a loop of links; it cannot be followed. Use the path it points to, if that is inside"
    )]
    SymlinkEscape { path: String, target: String },
    #[error("`{0}` does not exist; see what is there with operation list")]
    NotFound(String),
    #[error("`{0}` is a folder; use operation list to see its content")]
    IsFolder(String),
    #[error("`{0}` is not a folder; list the folder that holds it")]
    NotFolder(String),
    #[error(
        "`{path}` is {size} bytes, over the {max}-byte limit for one file; split it, compress it, or have code print the part you need"
    )]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("`{0}` is not UTF-8 text; read it with encoding base64")]
    NotUtf8(String),
    #[error("`content` is not valid base64: {0}")]
    BadBase64(String),
    #[error("`content` is required for write")]
    ContentRequired,
    #[error("`{0}` is one of the session's top folders and cannot be deleted; delete what is inside it instead")]
    RootFolder(String),
    #[error(
        "the folder holds more than {max} entries; list a sub-folder, or have code summarize it (for example `ls | head`, run as code)"
    )]
    ListTooLarge { max: u64 },
    #[error(
        "`{0}` may not be accessed by the sandbox user (uid 1000): its permissions forbid it, as they would for the code"
    )]
    PermissionDenied(String),
    #[error("`{0}` changed while it was being accessed (a link was swapped in); try again")]
    Changed(String),
    #[error("no space left for `{0}`: the session's storage is full; delete files you no longer need")]
    NoSpace(String),
    #[error("`{path}`: {message}")]
    Failed { path: String, message: String },
    #[error("path `{0}` contains a NUL character, which no file name can hold")]
    NulInPath(String),
    #[error("session `{0}` was created by an older multilang-sandbox whose runner cannot do file operations")]
    OldRunner(String),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Docker(#[from] DockerError),
}
impl From<TemplateError> for ExecuteError {
    /// An engine error stays one, so a lost engine connection is noticed
    /// (and reconnected) as for any other engine call.
    fn from(error: TemplateError) -> Self {
        match error {
            TemplateError::Docker(error) => ExecuteError::Docker(error),
            other => ExecuteError::Template(other),
        }
    }
}
