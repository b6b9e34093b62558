//! Disk work taken off the caller's task: [`Worker`] runs jobs one after another, in the order
//! they were submitted. In production a thread of its own runs them, so a caller on the raft
//! task never waits for an fsync it does not need to wait for; in simulation each job runs
//! inline when it is submitted, which keeps a run deterministic (the simulated disk costs no
//! real time, and its injected latency is modelled elsewhere).
//!
//! Invariant: every job submitted before the worker is dropped has run when the drop returns.

/// A job for the worker (production: sent to its thread).
#[cfg(not(madsim))]
type Job = Box<dyn FnOnce() + Send>;

/// Runs submitted jobs in order, off the caller's task (production) or inline (simulation).
pub struct Worker {
    #[cfg(not(madsim))]
    thread: Option<(std::sync::mpsc::Sender<Job>, std::thread::JoinHandle<()>)>,
}

impl Worker {
    /// A worker whose thread (production) is called `name`. If no thread can be started, jobs
    /// run inline.
    pub fn new(name: &str) -> Worker {
        #[cfg(madsim)]
        {
            let _ = name;
            Worker {}
        }
        #[cfg(not(madsim))]
        {
            let (jobs, queue) = std::sync::mpsc::channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || queue.into_iter().for_each(|job| job()));
            match spawned {
                Ok(handle) => Worker {
                    thread: Some((jobs, handle)),
                },
                Err(e) => {
                    tracing::warn!(error = %e, worker = name, "no thread for disk work; inline");
                    Worker { thread: None }
                }
            }
        }
    }

    /// Runs `job` after the jobs submitted before it.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) {
        #[cfg(not(madsim))]
        if let Some((jobs, _)) = &self.thread {
            if let Err(std::sync::mpsc::SendError(job)) = jobs.send(Box::new(job)) {
                job();
            }
            return;
        }
        job();
    }
}

#[cfg(not(madsim))]
impl Drop for Worker {
    fn drop(&mut self) {
        if let Some((jobs, handle)) = self.thread.take() {
            drop(jobs);
            let _ = handle.join();
        }
    }
}
