//! How a caller follows a long operation: a cancellation token it may
//! fire, and a channel of progress updates and warnings it may listen to.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Something the caller should hear about while an operation runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// A step or the latest output of a long run.
    Progress(String),
    /// Something the user should see (for example lost session state).
    Warning(String),
}

/// Cancellation and updates of one operation. The default is never
/// cancelled and reports to nobody.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    pub cancel: CancellationToken,
    updates: Option<mpsc::UnboundedSender<Update>>,
    /// The caller asked for progress (not only warnings).
    reports_progress: bool,
}

impl Watch {
    /// A watch whose updates go to `updates`; progress only when
    /// `reports_progress`.
    pub fn new(
        cancel: CancellationToken,
        updates: Option<mpsc::UnboundedSender<Update>>,
        reports_progress: bool,
    ) -> Self {
        Self {
            cancel,
            updates,
            reports_progress,
        }
    }

    /// True when someone listens for progress (the runner then reports it).
    pub fn wants_progress(&self) -> bool {
        self.reports_progress && self.updates.as_ref().is_some_and(|updates| !updates.is_closed())
    }

    pub fn progress(&self, message: impl Into<String>) {
        if self.reports_progress {
            self.send(Update::Progress(message.into()));
        }
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.send(Update::Warning(message.into()));
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A watch of its own for work that may outlive this one's caller (a
    /// job): cancelled when this one is, and its updates passed on to this
    /// one's listener, as long as the returned link lives (updates sent
    /// before the link is dropped are passed on; later ones go nowhere,
    /// since the caller's call has ended).
    pub fn linked(&self) -> (Watch, WatchLink) {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Update>();
        let own = Watch {
            cancel: CancellationToken::new(),
            updates: self.updates.as_ref().map(|_| sender),
            reports_progress: self.reports_progress,
        };
        let link = WatchLink {
            unlinked: CancellationToken::new(),
        };
        if self.cancel.is_cancelled() {
            // Already cancelled: so is the linked one, before anything runs.
            own.cancel.cancel();
        }
        let (caller, child, unlinked) = (self.cancel.clone(), own.cancel.clone(), link.unlinked.clone());
        let listener = self.updates.clone();
        let pass_on = move |update: Update| {
            if let Some(listener) = &listener {
                let _ = listener.send(update);
            }
        };
        tokio::spawn(async move {
            let (mut following, mut listening) = (true, true);
            while following || listening {
                tokio::select! {
                    biased;
                    () = unlinked.cancelled() => {
                        while let Ok(update) = receiver.try_recv() {
                            pass_on(update);
                        }
                        return;
                    }
                    () = caller.cancelled(), if following => {
                        child.cancel();
                        following = false;
                    }
                    update = receiver.recv(), if listening => match update {
                        Some(update) => pass_on(update),
                        // No listener (or the work is over): the cancel
                        // still has to be passed on.
                        None => listening = false,
                    },
                }
            }
        });
        (own, link)
    }

    fn send(&self, update: Update) {
        if let Some(updates) = &self.updates {
            let _ = updates.send(update);
        }
    }
}

/// While it lives, cancelling the caller's watch cancels the linked one,
/// and the linked one's updates reach the caller's listener
/// ([`Watch::linked`]).
pub struct WatchLink {
    unlinked: CancellationToken,
}

impl Drop for WatchLink {
    fn drop(&mut self) {
        self.unlinked.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_reach_the_listener_and_nobody_is_fine() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let watch = Watch::new(CancellationToken::new(), Some(sender), true);
        assert!(watch.wants_progress());
        watch.progress("step 1");
        watch.warn("careful");
        assert_eq!(receiver.try_recv().ok(), Some(Update::Progress("step 1".into())));
        assert_eq!(receiver.try_recv().ok(), Some(Update::Warning("careful".into())));
        drop(receiver);
        assert!(!watch.wants_progress());
        let silent = Watch::default();
        assert!(!silent.wants_progress());
        silent.progress("nobody hears this");
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let warnings_only = Watch::new(CancellationToken::new(), Some(sender), false);
        assert!(!warnings_only.wants_progress());
        warnings_only.progress("not asked for");
        warnings_only.warn("heard");
        assert_eq!(receiver.try_recv().ok(), Some(Update::Warning("heard".into())));
    }

    #[tokio::test]
    async fn a_linked_watch_follows_its_caller_until_unlinked() {
        let caller = Watch::default();
        let (own, link) = caller.linked();
        caller.cancel.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), own.cancel.cancelled())
            .await
            .expect("the linked watch is cancelled with its caller");
        let already = Watch::default();
        already.cancel.cancel();
        assert!(
            already.linked().0.is_cancelled(),
            "a cancelled caller's link starts cancelled"
        );
        let caller = Watch::default();
        let (own, link_two) = caller.linked();
        drop(link_two);
        tokio::task::yield_now().await;
        caller.cancel.cancel();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !own.is_cancelled(),
            "unlinked: the caller's cancel no longer reaches it"
        );
        drop(link);
    }
}
