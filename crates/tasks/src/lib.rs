//! The one owner of the proxy's tasks: a [`CancellationToken`] that tells them to
//! stop and a [`TaskTracker`] that knows when every one has ended.
//!
//! Two kinds of task: [`Tasks::spawn`] runs a loop (an accept loop, a receive
//! loop, a ticker, a connection) until it ends by itself or shutdown is asked
//! for; [`Tasks::track`] runs a task that ends by itself within a bound (a
//! source's TEARDOWN, a connection's writer flushing its last bytes), which
//! shutdown waits for instead of cutting short. [`Tasks::child`] gives a part of
//! the proxy (the accept loops) a token of its own, stopped before the rest.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

/// A handle on the task owner; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Tasks {
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    #[must_use]
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// Runs `task` until it ends or [`Tasks::cancel`] (of this handle or of a
    /// parent) is called; then it is dropped at its next `.await` and the handle
    /// gives `None`.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<Option<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(until_cancelled(self.stop.clone(), task))
    }

    /// Runs `task`, which ends by itself within a bound, to its end: shutdown
    /// waits for it (see [`Tasks::wait`]) rather than cutting it short.
    pub fn track<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// A handle whose tasks stop with this one's, and also alone when its own
    /// [`Tasks::cancel`] is called; the same tracker waits for them.
    #[must_use]
    pub fn child(&self) -> Tasks {
        Tasks {
            stop: self.stop.child_token(),
            tracker: self.tracker.clone(),
        }
    }

    /// Tells the tasks of this handle (and of its children) to stop.
    pub fn cancel(&self) {
        self.stop.cancel();
    }

    /// Whether [`Tasks::cancel`] was called on this handle or a parent.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves once this handle (or a parent) is cancelled.
    pub async fn cancelled(&self) {
        self.stop.cancelled().await;
    }

    /// Tasks running now (every handle sharing the tracker).
    #[must_use]
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Cancels every task, then waits at most `within` for all of them to end
    /// (the tracked ones included). Returns how many are still running.
    pub async fn wait(&self, within: Duration) -> usize {
        self.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(within, self.tracker.wait()).await;
        self.tracker.len()
    }
}

pin_project_lite::pin_project! {
    /// `task` run until `cancelled` fires, holding `task` once. An `async`
    /// wrapper (`async move { stop.run_until_cancelled(task).await }`) keeps
    /// the moved-from `task` in its own state and again in each future it
    /// awaits (rust-lang/rust#62958): three copies, which tripled every
    /// connection's task allocation (4.3 KiB to 13 KiB a client).
    #[must_use = "futures do nothing unless polled"]
    struct UntilCancelled<F> {
        #[pin]
        cancelled: WaitForCancellationFutureOwned,
        #[pin]
        task: F,
    }
}

impl<F: Future> Future for UntilCancelled<F> {
    type Output = Option<F::Output>;

    /// The token first: a task whose token is cancelled is not polled again
    /// (nor at all, if it was cancelled before the task started).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.cancelled.poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        this.task.poll(cx).map(Some)
    }
}

/// `task` until it ends (`Some` of its output) or `stop` is cancelled (`None`).
fn until_cancelled<F: Future>(stop: CancellationToken, task: F) -> UntilCancelled<F> {
    UntilCancelled {
        cancelled: stop.cancelled_owned(),
        task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancel_ends_loops_and_wait_sees_tracked_tasks_through() {
        let tasks = Tasks::new();
        tasks.spawn(std::future::pending::<()>());
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tasks.track(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = done_tx.send(());
        });
        assert_eq!(tasks.running(), 2);
        assert_eq!(tasks.wait(Duration::from_secs(5)).await, 0);
        done_rx.await.expect("the tracked task ran to its end");
    }

    #[tokio::test]
    async fn a_child_stops_alone_and_with_its_parent() {
        let root = Tasks::new();
        let accept = root.child();
        let looping = accept.spawn(std::future::pending::<()>());
        let other = root.spawn(std::future::pending::<()>());
        accept.cancel();
        assert_eq!(looping.await.expect("no panic"), None, "cancelled");
        assert!(!root.is_cancelled());
        assert!(!other.is_finished());
        let second = root.child();
        root.cancel();
        assert!(second.is_cancelled());
        other.await.expect("the root's loop ended");
    }

    #[tokio::test]
    async fn wait_gives_up_after_the_bound() {
        let tasks = Tasks::new();
        tasks.track(std::future::pending::<()>());
        assert_eq!(tasks.wait(Duration::from_millis(50)).await, 1);
    }

    /// A spawned loop is held once: the wrapper adds the token's waiter, not
    /// two more copies of the task (a connection's task is kilobytes, one per
    /// client).
    #[test]
    fn the_cancellable_wrapper_holds_its_task_once() {
        let task = async {
            let state = [7u8; 4096];
            tokio::task::yield_now().await;
            std::hint::black_box(&state);
        };
        let task_size = std::mem::size_of_val(&task);
        let wrapped = until_cancelled(CancellationToken::new(), task);
        let size = std::mem::size_of_val(&wrapped);
        assert!(
            size < task_size + 256,
            "{size} bytes to hold a {task_size}-byte task"
        );
    }

    #[tokio::test]
    async fn a_task_spawned_after_the_cancel_never_runs() {
        let tasks = Tasks::new();
        tasks.cancel();
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let handle = tasks.spawn(async move {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        assert_eq!(handle.await.expect("no panic"), None);
        assert!(!ran.load(std::sync::atomic::Ordering::Relaxed));
        let live = Tasks::new();
        assert_eq!(live.spawn(async { 7 }).await.expect("no panic"), Some(7));
    }
}
