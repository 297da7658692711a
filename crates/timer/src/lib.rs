//! Sleeps that end within about a tenth of a millisecond of their deadline.
//!
//! Tokio's timer fires on 1 ms ticks and rounds a sleep up to the next one, so a 1 ms sleep
//! lasts 1 to 2 ms, and 1.5 on average. Two meshbench tools cannot live with that:
//! - trafficgen paces an open loop by it, and measures each latency from the intended send
//!   time, so a late send would be charged to the server;
//! - sample-app adds a configured latency to each answer, which tests and demos then expect to
//!   find in trafficgen's figures.
//!
//! Spinning through the last millisecond would be exact, but burns a core, which on a small
//! machine is taken from the server under test. Instead, one timer thread per process sleeps on
//! a condition variable with a microsecond timeout until the earliest deadline and wakes that
//! task's `Waker`. What lateness is left is mostly Linux's timer slack (50 µs by default).
//!
//! ```
//! # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # runtime.block_on(async {
//! let deadline = std::time::Instant::now() + std::time::Duration::from_micros(1500);
//! meshbench_timer::sleep_until(deadline).await;
//! assert!(std::time::Instant::now() >= deadline);
//! # });
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

struct Entry {
    deadline: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

struct Pacer {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// The timer thread's queue, or `None` when the thread could not be started (a thread limit):
/// sleeps then poll until their deadline rather than wait for a wake-up that never comes.
fn pacer() -> Option<&'static Arc<Pacer>> {
    static PACER: OnceLock<Option<Arc<Pacer>>> = OnceLock::new();
    PACER
        .get_or_init(|| {
            let pacer = Arc::new(Pacer {
                queue: Mutex::new(Queue::default()),
                changed: Condvar::new(),
            });
            let worker = Arc::clone(&pacer);
            // The thread lives as long as the process; it sleeps when nothing is waiting.
            std::thread::Builder::new()
                .name("meshbench-timer".to_owned())
                .spawn(move || worker.run())
                .ok()
                .map(|_| pacer)
        })
        .as_ref()
}

impl Pacer {
    fn run(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while queue
                .heap
                .peek()
                .is_some_and(|Reverse(e)| e.deadline <= now)
            {
                if let Some(Reverse(e)) = queue.heap.pop() {
                    due.push(e.waker);
                }
            }
            if !due.is_empty() {
                drop(queue);
                due.into_iter().for_each(Waker::wake);
                queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            queue = match queue.heap.peek() {
                None => self
                    .changed
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(Reverse(e)) => {
                    let wait = e.deadline.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(queue, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    fn register(&self, deadline: Instant, waker: Waker) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.seq += 1;
        let seq = queue.seq;
        let earliest = queue
            .heap
            .peek()
            .is_none_or(|Reverse(e)| deadline < e.deadline);
        queue.heap.push(Reverse(Entry {
            deadline,
            seq,
            waker,
        }));
        drop(queue);
        if earliest {
            self.changed.notify_one();
        }
    }
}

/// Completes at `deadline`, give or take a tenth of a millisecond. Works on any executor: the
/// timer thread only calls the task's `Waker`.
pub fn sleep_until(deadline: Instant) -> PreciseSleep {
    PreciseSleep {
        deadline,
        registered: None,
    }
}

/// Completes `duration` from now; see [`sleep_until`].
pub fn sleep(duration: std::time::Duration) -> PreciseSleep {
    sleep_until(Instant::now() + duration)
}

/// The future of [`sleep_until`].
#[derive(Debug)]
#[must_use = "a sleep does nothing unless awaited"]
pub struct PreciseSleep {
    deadline: Instant,
    /// The waker the timer thread holds, once registered.
    registered: Option<Waker>,
}

impl Future for PreciseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        // Registered once; a spurious poll before the deadline keeps that registration unless
        // the task's waker changed (the old entry then wakes its task once, harmlessly).
        let Some(pacer) = pacer() else {
            // No timer thread: correct, at the cost of a busy task.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        if !self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            pacer.register(self.deadline, cx.waker().clone());
            self.registered = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wakes_close_to_the_deadline() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut lateness = runtime.block_on(async {
            let mut lateness = Vec::new();
            for i in 0..50u32 {
                let deadline = Instant::now() + Duration::from_micros(300 + 37 * u64::from(i));
                sleep_until(deadline).await;
                lateness.push(Instant::now() - deadline);
            }
            lateness
        });
        lateness.sort();
        // Generous bounds: a shared CI machine; the point is "well under tokio's 1 ms tick".
        assert!(
            lateness[25] < Duration::from_millis(1),
            "median lateness {:?}",
            lateness[25]
        );
    }

    #[test]
    fn a_sleep_polled_with_a_new_waker_wakes_that_one() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (first, second) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let mut sleep = Box::pin(sleep(Duration::from_millis(2)));
        for count in [&first, &second] {
            let waker = Waker::from(Arc::clone(count));
            let mut cx = Context::from_waker(&waker);
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
        }
        let waited = Instant::now();
        while second.0.load(Ordering::SeqCst) == 0 {
            assert!(
                waited.elapsed() < Duration::from_secs(5),
                "the task polled last was never woken"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Once polled after its deadline, the sleep is over.
        let waker = Waker::from(second);
        assert!(
            sleep
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
        );
    }

    #[test]
    fn many_waiters_all_wake_in_order() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let start = Instant::now();
            let local = tokio::task::LocalSet::new();
            let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            for i in (0..20u64).rev() {
                let order = std::rc::Rc::clone(&order);
                local.spawn_local(async move {
                    sleep_until(start + Duration::from_millis(2 * i + 1)).await;
                    order.borrow_mut().push(i);
                });
            }
            local.await;
            assert_eq!(*order.borrow(), (0..20).collect::<Vec<_>>());
        });
    }
}
