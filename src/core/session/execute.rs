//! Running code in a session: its turn, the container brought to running
//! (resumed, or started again with a note on what was lost), the program
//! sent to its runner.

use super::super::connection::RunnerConnection;
use super::super::jobs::{Detachable, Executed, JobPlace, JobTable, Ran};
use super::super::launcher::READY_TIMEOUT;
use super::super::run::{
    CANCEL_GRACE, ExecuteRequest, RunFailure, cancelled_outcome, host_timeout_outcome, not_started_outcome, outcome,
};
use super::labels::SessionFacts;
use super::{SessionHandle, SessionManager};
use crate::clock::unix_now;
use crate::config::SessionStorage;
use crate::core::egress::Owner;
use crate::core::error::{ExecuteError, SessionError};
use crate::docker::ContainerState;
use crate::runtime::Language;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl SessionManager {
    /// Runs code in a session (serialized with its other executes; a job
    /// in the session refuses them). Past its detach deadline it goes on
    /// as a job in `jobs`.
    pub async fn execute(
        &self,
        name: &str,
        request: &ExecuteRequest,
        jobs: &JobTable,
    ) -> Result<Executed, ExecuteError> {
        let handle = self.handle(name).await?;
        let program = if request.language == handle.language {
            request.language.prepare_cell(&request.code)
        } else if request.language == Language::Bash {
            Language::Bash.prepare(&request.code)
        } else {
            return Err(SessionError::LanguageMismatch {
                name: name.to_string(),
                session_language: handle.language.name().to_string(),
            }
            .into());
        };
        let kernel = handle.language.kernel().filter(|_| program.uses_kernel());
        let wait = Duration::from_millis(request.timeout_ms);
        let _turn = tokio::select! {
            locked = tokio::time::timeout(wait, handle.turn.lock()) => {
                locked.map_err(|_| SessionError::Busy { name: name.to_string() })?
            }
            // Cancelled while waiting for the session's previous execute.
            () = request.watch.cancel.cancelled() => return Ok(Executed::Done(not_started_outcome(request))),
        };
        let mut notes = Vec::new();
        let mut restarted = false;
        let facts = self.lookup(name).await?;
        if facts.info.id != handle.container_id {
            // The session was destroyed and created again by another server.
            self.lock_handles().remove(name);
            return Err(SessionError::Unknown(name.to_string()).into());
        }
        if facts.expires_at() <= unix_now() && !self.runs_job(&facts).await {
            self.retire(&facts).await?;
            return Err(SessionError::Expired(name.to_string()).into());
        }
        let engine = self.launcher.engine();
        if readiness(facts.info.state, facts.storage()) == Readiness::Paused {
            engine
                .unpause_sandbox(&facts.info.id)
                .await
                .map_err(SessionError::from)?;
            notes.push("The session was paused; it was resumed to run this code.".to_string());
        } else if let Some(note) = self.start_if_stopped(&handle, &facts).await? {
            request.watch.warn(format!("Session {name}: {note}"));
            notes.push(note);
            restarted = true;
        }
        self.serve_network(&facts, restarted).await?;
        let live = handle.connect(engine.as_ref()).await?;
        let config = self.launcher.config();
        self.touch(&facts.info.id);
        let _asking = facts
            .grants
            .is_some()
            .then(|| {
                self.egress
                    .asking(&Owner::Session(name.to_string()), &request.asker, wait)
            })
            .flatten();
        let ran = Detachable {
            table: jobs,
            config,
            connection: live,
            request,
            program,
            kernel,
            place: JobPlace::Session(name.to_string()),
        }
        .run()
        .await?;
        self.touch(&facts.info.id);
        let result = match ran {
            Ran::Ended(result) => result,
            Ran::Job(started) => return Ok(Executed::Running(started.progress(request.language, notes))),
        };
        if facts.grants.is_some() {
            notes.extend(self.egress.refusal_notes(&Owner::Session(name.to_string())).await);
        }
        let done = |outcome| Ok(Executed::Done(outcome));
        match result {
            Ok(mut run) => {
                if request.watch.cancel.is_cancelled() {
                    // The caller gets no result to read a loss in (nor one
                    // left untold before): only ever recorded here.
                    if run.state_lost {
                        handle.state_lost_untold.store(true, Ordering::SeqCst);
                    }
                } else if handle.state_lost_untold.swap(false, Ordering::SeqCst) {
                    run.state_lost = true;
                }
                done(outcome(config, request, run, notes))
            }
            Err(RunFailure::HostTimeout) => {
                handle.set_connection(None);
                done(host_timeout_outcome(request))
            }
            Err(RunFailure::Cancelled) => {
                // The runner did not confirm the stop in time: it may be
                // restarting the interpreter, so the next result says the
                // state may be gone.
                handle.set_connection(None);
                handle.state_lost_untold.store(true, Ordering::SeqCst);
                request.watch.warn(format!(
                    "Session {name}: the cancelled code did not stop within {} s; its interpreter may be restarting, and variables may be lost.",
                    CANCEL_GRACE.as_secs()
                ));
                done(cancelled_outcome(request))
            }
            Err(RunFailure::NotStarted) => done(not_started_outcome(request)),
            Err(RunFailure::Busy { job }) => Err(ExecuteError::JobRunning {
                job: format!("{name}/{job}"),
            }),
            Err(failure @ RunFailure::Gone(_)) => {
                handle.set_connection(None);
                let still_there = engine.inspect_sandbox(&facts.info.id).await.ok().flatten().is_some();
                if !still_there {
                    self.lock_handles().remove(name);
                    return Err(SessionError::Unknown(name.to_string()).into());
                }
                Err(failure.into())
            }
        }
    }

    /// Starts the session's container again when it has stopped (for
    /// example the engine restarted), with a fresh connection; returns the
    /// note saying what was lost. Running containers are left alone;
    /// paused ones are the caller's to resume.
    pub(super) async fn start_if_stopped(
        &self,
        handle: &SessionHandle,
        facts: &SessionFacts,
    ) -> Result<Option<String>, SessionError> {
        match readiness(facts.info.state, facts.storage()) {
            Readiness::Ready | Readiness::Paused => Ok(None),
            Readiness::Stopped { files_lost } => {
                self.start_again(handle, facts).await?;
                let files = if files_lost {
                    "files in /workspace and /outputs were lost (they live in memory); installed packages were kept"
                } else {
                    "files in /workspace and installed packages were kept"
                };
                Ok(Some(format!(
                    "The session's container had stopped (for example the Docker engine restarted); it was started again: variables were lost, {files}."
                )))
            }
            Readiness::Unusable => Err(SessionError::Unusable {
                name: facts.name.clone(),
                state: facts.info.state.name().to_string(),
            }),
        }
    }
}

impl SessionManager {
    /// Starts the session's stopped container with a fresh connection to
    /// its runner, and waits until the runner is ready.
    pub(super) async fn start_again(&self, handle: &SessionHandle, facts: &SessionFacts) -> Result<(), SessionError> {
        let engine = self.launcher.engine();
        if let Some(network) = facts.network().filter(|network| network.holder != facts.info.id) {
            // The sandbox joins its holder's network namespace.
            engine.start_network_holder_again(&network.holder).await?;
        }
        let fresh = RunnerConnection::new(engine.attach_sandbox(&facts.info.id).await?);
        engine.restart_sandbox(&facts.info.id).await?;
        fresh.wait_ready(READY_TIMEOUT).await?;
        handle.set_connection(Some(fresh));
        Ok(())
    }
}

/// What must happen before a session's runner can take code, decided from
/// its container's state and where its files live. (The connection to the
/// runner is attached on demand by [`SessionHandle::connect`], whatever is
/// decided here.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Readiness {
    /// Running: send the code.
    Ready,
    /// Paused: resume it first.
    Paused,
    /// Stopped (the engine restarted, say): start it again; variables are
    /// lost, and the files too when they lived in memory.
    Stopped { files_lost: bool },
    /// Restarting, being removed, or in a state the engine did not name:
    /// it cannot take code.
    Unusable,
}

pub(super) fn readiness(state: ContainerState, storage: SessionStorage) -> Readiness {
    match state {
        ContainerState::Running => Readiness::Ready,
        ContainerState::Paused => Readiness::Paused,
        state if state.is_stopped() => Readiness::Stopped {
            files_lost: storage == SessionStorage::Memory,
        },
        _ => Readiness::Unusable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_and_storage_has_one_readiness() {
        use ContainerState::*;
        for storage in [SessionStorage::Memory, SessionStorage::Disk] {
            let memory = storage == SessionStorage::Memory;
            let expected = [
                (Running, Readiness::Ready),
                (Paused, Readiness::Paused),
                (Created, Readiness::Stopped { files_lost: memory }),
                (Exited, Readiness::Stopped { files_lost: memory }),
                (Dead, Readiness::Stopped { files_lost: memory }),
                (Restarting, Readiness::Unusable),
                (Removing, Readiness::Unusable),
                (Unknown, Readiness::Unusable),
            ];
            for (state, readying) in expected {
                assert_eq!(readiness(state, storage), readying, "{state:?} with {storage:?}");
            }
        }
    }
}
