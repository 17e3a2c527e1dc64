//! Background tasks that cannot end unnoticed: [`spawn_supervised`] runs a provider's loop and
//! reports its end when nobody asked for it (a panic, or a return), so the provider can turn
//! its status to `Unavailable` with the reason instead of staying `Ready` with nothing
//! keeping its flags current.

use std::future::Future;
use tokio::task::AbortHandle;

/// Why a supervised background task ended without being stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; the panic's message.
    #[error("the background task stopped: it panicked ({0}); flags are no longer kept current")]
    Panicked(String),
    /// The task returned although it should run until stopped.
    #[error("the background task stopped unexpectedly; flags are no longer kept current")]
    Ended,
}

/// A handle to a task started by [`spawn_supervised`]. Dropping it leaves the task running;
/// [`Supervised::abort`] stops it (an abort is not reported as an unexpected end).
#[derive(Debug)]
pub struct Supervised {
    abort: AbortHandle,
}

impl Supervised {
    /// Stops the task.
    pub fn abort(&self) {
        self.abort.abort();
    }

    /// Whether the task has ended (for whatever reason).
    pub fn is_finished(&self) -> bool {
        self.abort.is_finished()
    }
}

/// Spawns `task` on the current Tokio runtime and calls `on_end` if it ends by itself: with
/// [`TaskError::Panicked`] when it panicked, [`TaskError::Ended`] when it returned. An abort
/// (through the returned handle, or the runtime shutting down) calls nothing. `on_end` decides
/// whether a return was expected (e.g. the provider was closed, or failed for good and said
/// so) and otherwise marks the provider `Unavailable`.
///
/// Must be called within a Tokio runtime.
pub fn spawn_supervised<F, E>(task: F, on_end: E) -> Supervised
where
    F: Future<Output = ()> + Send + 'static,
    E: FnOnce(TaskError) + Send + 'static,
{
    let inner = tokio::spawn(task);
    let abort = inner.abort_handle();
    tokio::spawn(async move {
        match inner.await {
            Ok(()) => on_end(TaskError::Ended),
            Err(e) if e.is_panic() => on_end(TaskError::Panicked(panic_message(e.into_panic()))),
            Err(_) => {}
        }
    });
    Supervised { abort }
}

/// The text of a panic payload (`panic!("...")` carries a `&str` or a `String`).
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "no message".to_owned(),
        },
    }
}

/// Records in `status` that `provider`'s background task ended without being stopped (unless
/// the provider is closed): `Unavailable`, not connected, with the reason, since nothing keeps
/// its flags current any more. The flags already published keep serving.
pub fn mark_task_died(
    status: &mut feature_core::provider::ProviderStatus,
    provider: &'static str,
    e: TaskError,
) {
    use feature_core::provider::{ProviderError, ProviderState};
    if status.state == ProviderState::Closed {
        return;
    }
    status.state = ProviderState::Unavailable;
    status.connected = false;
    status.last_error = Some((
        std::sync::Arc::new(ProviderError::Backend {
            provider,
            operation: "sync",
            source: Box::new(e),
        }),
        std::time::SystemTime::now(),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn panics_and_returns_are_reported_aborts_are_not() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = |seen: &Arc<Mutex<Vec<TaskError>>>| {
            let seen = seen.clone();
            move |e| seen.lock().unwrap().push(e)
        };
        let a = spawn_supervised(async { panic!("boom") }, record(&seen));
        let b = spawn_supervised(async {}, record(&seen));
        let c = spawn_supervised(std::future::pending(), record(&seen));
        c.abort();
        for _ in 0..100 {
            if a.is_finished()
                && b.is_finished()
                && c.is_finished()
                && seen.lock().unwrap().len() >= 2
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen.contains(&TaskError::Panicked("boom".to_owned())));
        assert!(seen.contains(&TaskError::Ended));
    }
}
