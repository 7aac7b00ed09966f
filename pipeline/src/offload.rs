//! A side worker for a stage: hand a job to another thread without blocking the frame path, and
//! join its result back through a mailbox when a later frame passes.
//!
//! The frame path stays linear: the stage that owns an [`Offload`] is both the fan-out (it loads a
//! frame's input into the job, swapping buffers rather than copying, and submits it) and the join
//! (it polls the mailbox as each later frame passes and puts the result on that frame, stamped
//! with the [`FrameId`] it was computed on). One job is in flight at a time: the worker takes the
//! newest frame whenever it is free, which is what a slow detector on a live camera wants.
//!
//! The job object itself is recycled: it travels to the worker and back, so buffers inside it
//! (a tensor, an output vector) keep their capacity and steady state allocates nothing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use hdrhistogram::Histogram;

use crate::frame::FrameId;
use crate::metrics::{new_histogram, record, LatencySummary, WorkerReport};

/// When a finished job counts as back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// As soon as the worker is done (wall clock): the production setting.
    Wall,
    /// Each job takes exactly this long on the frames' source clock (`source_ts`): its result is
    /// joined to the first frame at least this much younger than the frame it was computed on,
    /// waiting for the worker if it is really slower. Makes a schedule deterministic for a replay
    /// (tests, evaluations), whatever the machine's speed.
    Virtual(Duration),
}

/// What one worker did, shared between its thread and the report.
#[derive(Debug)]
pub struct WorkerStats {
    name: String,
    jobs: AtomicU64,
    errors: AtomicU64,
    busy_ns: AtomicU64,
    /// Time per job; locked once per job by the worker, read at the end.
    run: Mutex<Histogram<u64>>,
}

impl WorkerStats {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            jobs: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            run: Mutex::new(new_histogram()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Jobs finished (successfully or not).
    pub fn jobs(&self) -> u64 {
        self.jobs.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Total time the worker spent on jobs.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }

    fn finished(&self, took: Duration, ok: bool) {
        self.jobs.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.busy_ns.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        if let Ok(mut h) = self.run.lock() {
            record(&mut h, took);
        }
    }

    /// The report line over a run of `wall` (duty cycle = busy / wall).
    pub fn report(&self, wall: Duration) -> WorkerReport {
        let latency = self.run.lock().map(|h| LatencySummary::from_histogram(&h)).unwrap_or_default();
        let busy = self.busy();
        WorkerReport {
            name: self.name.clone(),
            jobs: self.jobs(),
            errors: self.errors(),
            busy_s: busy.as_secs_f64(),
            duty_cycle: busy.as_secs_f64() / wall.as_secs_f64().max(1e-9),
            latency,
        }
    }
}

/// Where stages register their side workers at `start`, so the run report lists them.
#[derive(Clone, Debug, Default)]
pub struct WorkerBoard {
    workers: Arc<Mutex<Vec<Arc<WorkerStats>>>>,
}

impl WorkerBoard {
    pub fn register(&self, stats: Arc<WorkerStats>) {
        if let Ok(mut w) = self.workers.lock() {
            w.push(stats);
        }
    }

    pub fn reports(&self, wall: Duration) -> Vec<WorkerReport> {
        self.workers.lock().map(|w| w.iter().map(|s| s.report(wall)).collect()).unwrap_or_default()
    }
}

/// A job back from the worker.
pub struct Done<J> {
    /// The frame the job's input came from.
    pub origin: FrameId,
    pub job: J,
    /// The work's error, or its panic, as text.
    pub outcome: Result<(), String>,
    /// Wall time the worker spent on it.
    pub took: Duration,
}

/// A side worker with one job slot. See the module docs.
pub struct Offload<J: Send + 'static> {
    name: String,
    tx: Option<Sender<(FrameId, J)>>,
    rx: Receiver<Done<J>>,
    /// The job on hand while nothing is in flight.
    spare: Option<J>,
    in_flight: Option<FrameId>,
    timing: Timing,
    stats: Arc<WorkerStats>,
    thread: Option<JoinHandle<()>>,
}

impl<J: Send + 'static> Offload<J> {
    /// Start the worker thread `perch-<name>-worker`, which runs `work` on each submitted job.
    /// `job` is the one job object that will travel back and forth.
    pub fn spawn<F>(name: &str, job: J, timing: Timing, mut work: F) -> anyhow::Result<Self>
    where
        F: FnMut(&mut J) -> anyhow::Result<()> + Send + 'static,
    {
        // Bounded to the single job slot: the array-backed channels never allocate per message.
        let (tx, jobs) = crossbeam_channel::bounded::<(FrameId, J)>(1);
        let (done_tx, rx) = crossbeam_channel::bounded::<Done<J>>(1);
        let stats = Arc::new(WorkerStats::new(name));
        let worker_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name(format!("perch-{name}-worker"))
            .spawn(move || {
                for (origin, mut job) in jobs.iter() {
                    let t0 = Instant::now();
                    let outcome = match catch_unwind(AssertUnwindSafe(|| work(&mut job))) {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(format!("{e:#}")),
                        Err(_) => Err("the worker panicked".to_string()),
                    };
                    let took = t0.elapsed();
                    worker_stats.finished(took, outcome.is_ok());
                    if done_tx.send(Done { origin, job, outcome, took }).is_err() {
                        break;
                    }
                }
            })
            .with_context(|| format!("spawning the `{name}` worker thread"))?;
        Ok(Self {
            name: name.to_string(),
            tx: Some(tx),
            rx,
            spare: Some(job),
            in_flight: None,
            timing,
            stats,
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// The frame whose job is at the worker, if any.
    pub fn in_flight(&self) -> Option<FrameId> {
        self.in_flight
    }

    pub fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The job on hand, to load the next input into before [`Offload::submit`]; `None` while busy.
    pub fn job(&mut self) -> Option<&mut J> {
        self.spare.as_mut()
    }

    /// Send the loaded job to the worker; the result will belong to `origin`.
    pub fn submit(&mut self, origin: FrameId) -> anyhow::Result<()> {
        let Some(job) = self.spare.take() else {
            bail!("`{}` worker: a job is already in flight", self.name);
        };
        let tx = self.tx.as_ref().context("worker stopped")?;
        if tx.send((origin, job)).is_err() {
            bail!("the `{}` worker thread is gone", self.name);
        }
        self.in_flight = Some(origin);
        Ok(())
    }

    /// The finished job, if it is back by the time frame `now` passes (see [`Timing`]). Never
    /// blocks with [`Timing::Wall`].
    pub fn poll(&mut self, now: &FrameId) -> Option<Done<J>> {
        let origin = self.in_flight?;
        match self.timing {
            Timing::Wall => match self.rx.try_recv() {
                Ok(done) => self.landed(done),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => self.lost(),
            },
            Timing::Virtual(d) if now.source_ts >= origin.source_ts + d => self.wait(),
            Timing::Virtual(_) => None,
        }
    }

    /// Block until the job in flight is back (`None` if nothing is in flight).
    pub fn wait(&mut self) -> Option<Done<J>> {
        self.in_flight?;
        match self.rx.recv() {
            Ok(done) => self.landed(done),
            Err(_) => self.lost(),
        }
    }

    fn landed(&mut self, done: Done<J>) -> Option<Done<J>> {
        self.in_flight = None;
        Some(done)
    }

    fn lost(&mut self) -> Option<Done<J>> {
        // Only if the worker thread died outside a job (it catches panics in jobs): no more work.
        tracing::error!("the `{}` worker thread ended unexpectedly; no further jobs run", self.name);
        self.in_flight = None;
        None
    }

    /// Put a job back on hand after its output was read, so the next submit reuses it.
    pub fn recycle(&mut self, job: J) {
        self.spare = Some(job);
    }

    /// Stop the worker: the job in flight (if any) finishes and is returned, then the thread ends.
    pub fn shutdown(&mut self) -> Option<Done<J>> {
        let last = self.wait();
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        last
    }
}

impl<J: Send + 'static> Drop for Offload<J> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64, ms: u64) -> FrameId {
        FrameId { seq, source_ts: Duration::from_millis(ms), captured_at: Instant::now() }
    }

    #[test]
    fn a_job_goes_to_the_worker_and_comes_back_with_its_origin() {
        let mut w = Offload::spawn("t", Vec::<u64>::with_capacity(4), Timing::Wall, |v: &mut Vec<u64>| {
            v.push(7);
            Ok(())
        })
        .unwrap();
        assert!(!w.is_busy());
        w.job().unwrap().clear();
        w.submit(id(3, 100)).unwrap();
        assert!(w.is_busy() && w.job().is_none());
        assert!(w.submit(id(4, 133)).is_err(), "one job slot");
        let done = w.wait().unwrap();
        assert_eq!(done.origin.seq, 3);
        assert_eq!(done.job, vec![7]);
        assert!(done.outcome.is_ok());
        w.recycle(done.job);
        assert!(!w.is_busy() && w.job().is_some());
        assert_eq!(w.stats().jobs(), 1);
    }

    #[test]
    fn errors_and_panics_come_back_as_outcomes_and_the_worker_keeps_going() {
        let mut n = 0;
        let mut w = Offload::spawn("t", (), Timing::Wall, move |_: &mut ()| {
            n += 1;
            match n {
                1 => anyhow::bail!("bad input"),
                2 => panic!("boom"),
                _ => Ok(()),
            }
        })
        .unwrap();
        for want in ["bad input", "panicked", ""] {
            w.submit(id(0, 0)).unwrap();
            let d = w.wait().unwrap();
            match d.outcome {
                Err(e) => assert!(e.contains(want), "{e}"),
                Ok(()) => assert_eq!(want, ""),
            }
            w.recycle(d.job);
        }
        assert_eq!((w.stats().jobs(), w.stats().errors()), (3, 2));
    }

    #[test]
    fn virtual_timing_joins_at_the_first_frame_old_enough() {
        let mut w = Offload::spawn("t", (), Timing::Virtual(Duration::from_millis(90)), |_: &mut ()| Ok(())).unwrap();
        w.submit(id(0, 0)).unwrap();
        // Frames every 33 ms: not back at 33 or 66 ms whatever the real speed, back at 100 ms.
        std::thread::sleep(Duration::from_millis(20));
        assert!(w.poll(&id(1, 33)).is_none());
        assert!(w.poll(&id(2, 66)).is_none());
        let d = w.poll(&id(3, 100)).unwrap();
        assert_eq!(d.origin.seq, 0);
    }
}
