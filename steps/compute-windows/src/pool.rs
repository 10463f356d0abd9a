//! The threads that split the input and then compute: the same few threads do both.
//!
//! glibc's malloc gives each thread an arena and hands a freed block back to the arena it
//! came from. When the long-lived threads that split the chunks into partition pieces are
//! also the ones that sort, compute and write, the pieces' memory, freed as partitions are
//! sorted, serves the compute phase's allocations; pieces made on other threads would free
//! into arenas the compute phase never allocates from, and it would fault in fresh pages
//! instead (on the benchmark, a tenth of the run's page faults, each costing microseconds on
//! a virtual machine).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use featurekit::{Error, Result};

type Task = Box<dyn FnOnce() + Send>;

/// How long dropping the pool waits for its threads to finish their tasks (a stopped run's
/// workers notice the stop between partitions, then drop their unfinished files).
const DRAIN: Duration = Duration::from_secs(10);

/// A fixed set of named OS threads taking closures from one queue.
pub struct Pool {
    tasks: Option<Sender<Task>>,
    /// Disconnects once every thread has exited.
    exited: Mutex<Receiver<()>>,
}

impl Pool {
    pub fn new(threads: usize) -> Result<Pool> {
        let (tasks, queue) = channel::<Task>();
        let (alive, exited) = channel::<()>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let (queue, alive) = (queue.clone(), alive.clone());
            std::thread::Builder::new()
                .name(format!("compute-{i}"))
                .spawn(move || {
                    let _alive = alive;
                    loop {
                        // the lock is held only while waiting for the next task
                        let next = queue.lock().map_err(|_| ()).and_then(|q| q.recv().map_err(|_| ()));
                        match next {
                            Ok(task) => task(),
                            Err(()) => break, // the pool is gone
                        }
                    }
                })
                .map_err(|e| Error::bug(format!("starting a compute thread: {e}")))?;
        }
        Ok(Pool {
            tasks: Some(tasks),
            exited: Mutex::new(exited),
        })
    }

    /// Queues `f` at once to run on one of the pool's threads; the future resolves to its
    /// result. A panic in `f` is caught there (the thread lives on) and becomes a bug error
    /// carrying the panic's message.
    pub fn run<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let queued = self.tasks.as_ref().map(|tasks| {
            tasks.send(Box::new(move || {
                let _ = done.send(catch_unwind(AssertUnwindSafe(f)).map_err(|panic| panic_message(&*panic)));
            }))
        });
        async move {
            if !matches!(queued, Some(Ok(()))) {
                return Err(Error::bug("the compute threads are gone"));
            }
            match result.await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(message)) => Err(Error::bug(format!("a compute thread panicked: {message}"))),
                Err(_) => Err(Error::bug("a compute thread stopped")),
            }
        }
    }
}

impl Drop for Pool {
    /// Closes the queue and waits (up to [`DRAIN`]) for the threads to finish what they
    /// run: a run stopped by a signal drops the pool while its workers are still writing,
    /// and their unfinished uploads must be aborted before the process exits.
    fn drop(&mut self) {
        self.tasks.take();
        let Ok(exited) = self.exited.lock() else { return };
        let deadline = Instant::now() + DRAIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match exited.recv_timeout(left) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    tracing::warn!("compute threads still busy after {DRAIN:?}; leaving them");
                    break;
                }
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_tasks_and_reports_panics_without_losing_a_thread() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let pool = Pool::new(1).unwrap();
        let panicked = rt.block_on(pool.run(|| -> u32 { panic!("boom") }));
        assert!(panicked.unwrap_err().to_string().contains("boom"));
        // the one thread survived the panic and takes the next task
        assert_eq!(rt.block_on(pool.run(|| 41 + 1)).unwrap(), 42);
        let busy = pool.run(|| std::thread::sleep(Duration::from_millis(50)));
        drop(pool); // waits for the queued task to finish
        assert!(rt.block_on(busy).is_ok());
    }
}
