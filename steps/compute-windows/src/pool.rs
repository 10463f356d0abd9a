//! The threads that split the input and then compute: the same few threads do both.
//!
//! glibc's malloc keeps the memory a thread frees in that thread's arena, for that thread's
//! next allocations. A chunk's partition pieces are freed by the thread that sorts them;
//! when that thread also split them, the compute phase reuses their memory instead of
//! faulting in fresh pages (on the benchmark, about a fifth of the run's page faults, each
//! costing microseconds on a virtual machine).

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};

use featurekit::{Error, Result};

type Task = Box<dyn FnOnce() + Send>;

/// A fixed set of named OS threads taking closures from one queue.
pub struct Pool {
    tasks: Sender<Task>,
}

impl Pool {
    pub fn new(threads: usize) -> Result<Pool> {
        let (tasks, queue) = channel::<Task>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("compute-{i}"))
                .spawn(move || {
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
        Ok(Pool { tasks })
    }

    /// Queues `f` at once to run on one of the pool's threads; the future resolves to its
    /// result. The threads exit once the pool is dropped and the queue is empty.
    pub fn run<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let queued = self.tasks.send(Box::new(move || {
            let _ = done.send(f());
        }));
        async move {
            queued.map_err(|_| Error::bug("the compute threads are gone"))?;
            result.await.map_err(|_| Error::bug("a compute thread panicked"))
        }
    }
}
