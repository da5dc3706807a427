//! Scheduling classes for the database's background threads, which share a core with the
//! workers. The settlement writer woke every few tens of milliseconds under load and ran a
//! batch commit of a hundred rows or more (about half a millisecond) ahead of whatever request
//! the worker had in hand: most of the added p99 at 2,000 RPS was requests that arrived during
//! a commit. A settlement is durable once journalled, so the fold into the database can wait
//! until no worker has anything to do.

/// The calling thread runs only on a core nothing else wants (`SCHED_IDLE`), and a waking
/// worker preempts it at once. Such a thread can be starved under saturation: its caller must
/// bound what piles up behind it (see `usage_writer::MAX_BACKLOG`).
pub fn idle() {
    #[cfg(target_os = "linux")]
    set(NormalThreadSchedulePolicy::Idle);
}

/// The calling thread keeps its fair share of the core, but waking up does not preempt a
/// running worker (`SCHED_BATCH`): for work that is periodic and can wait a scheduler tick.
pub fn batch() {
    #[cfg(target_os = "linux")]
    set(NormalThreadSchedulePolicy::Batch);
}

#[cfg(target_os = "linux")]
use thread_priority::unix::NormalThreadSchedulePolicy;

/// Moves the calling thread to `policy` at nice 0 (lowering one's own priority needs no
/// privilege; a failure leaves the thread as it was, which only costs latency).
#[cfg(target_os = "linux")]
fn set(policy: NormalThreadSchedulePolicy) {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, ThreadSchedulePolicy,
    };
    use thread_priority::{ThreadPriority, ThreadPriorityOsValue};
    let nice_zero = ThreadPriority::Os(ThreadPriorityOsValue::default());
    let set = set_thread_priority_and_policy(
        thread_native_id(),
        nice_zero,
        ThreadSchedulePolicy::Normal(policy),
    );
    if let Err(e) = set {
        log::debug!("cannot move a database thread to the {policy:?} scheduling class: {e:?}");
    }
}
