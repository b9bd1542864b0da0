//! A team of threads for the trainer's per-window fork-join.
//!
//! A seed-size window is about 14 microseconds of work on one core. Handing half of it to a
//! rayon worker each window (`par_iter_mut`) pays for waking that worker, which by then has
//! begun to yield or sleep: on the 2-core VM, 2 threads ran the seed configuration at only
//! 1.13x one thread (median). A team keeps `size - 1` rayon workers for a whole
//! [`crate::train::Trainer::run`], each waiting on a barrier between windows, and runs a job
//! on all members at once.
//!
//! A waiting member spins for about [`SPIN_LIMIT`] iterations (tens of microseconds, longer
//! than the serial part between two windows), then sleeps on a futex until the barrier
//! opens. Spinning keeps the hand-off to a few hundred nanoseconds while the team is busy;
//! sleeping gives the core back when it is not (a slow callback, an oversubscribed
//! machine).
//!
//! Busy members make the machine look fully used, and Linux then stops searching for an idle
//! core when it wakes a thread: it puts the wakee on the waker's core. On the 2-core VM two
//! members were seen sharing one core, the other idle, for 15..100 ms at a time (each round
//! then costs two sleeps: ~145 us instead of ~7). So each member `k >= 1` notes its CPU every
//! round, and if it finds itself on the CPU of a lower member it moves itself once to a CPU
//! that no member is on (`cpu::move_off`: a momentary affinity change, restored at once, so
//! nothing is pinned and the scheduler stays free to place the threads afterwards).
//!
//! The threads come from rayon's pool (`ThreadPool::in_place_scope`); only the
//! synchronisation is ours. A panic in a job reaches the caller of [`Team::run`] after every
//! member has finished the round, and [`Team::dismiss`] ends the members' loops on every
//! way out.

use crossbeam_utils::CachePadded;
use std::any::Any;
use std::hint::spin_loop;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Spin iterations before a waiting member sleeps. A `pause` took 25 ns on the 2-core VM (a
/// loop of 10^6 `spin_loop` calls), so this is about 60 us: longer than the serial update between two windows (about a
/// microsecond at the seed size), short enough that an idle team soon stops burning cores.
pub const SPIN_LIMIT: u32 = 2_500;

/// A member moves itself at most once in this many rounds (so that a machine with other
/// work on it cannot make the members chase each other round after round).
const MOVE_EVERY: u64 = 64;

/// Members whose CPUs [`Team::spread`] keeps clear of (the trainer's teams have at most
/// `train::MAX_SHARDS` = 64 members, one per shard at most).
const MAX_MEMBERS: usize = 64;

/// The job of one round: called once on every member with the member's index.
pub type Job<'a> = dyn Fn(usize) + Sync + 'a;

/// A barrier-synchronised team of `size` members; the caller of [`Team::run`] is member 0.
///
/// The fields that members write while others spin have cache lines of their own
/// ([`CachePadded`]), and so does the team as a whole (its alignment, and so its size, is a
/// multiple of 128 bytes; it lives on member 0's stack, next to data that member 0 writes
/// while it works): a spinning member must not keep pulling a line that a working member
/// writes (false sharing).
pub struct Team {
    size: usize,
    /// Members arrived at the current barrier.
    arrived: CachePadded<AtomicUsize>,
    /// Bumped when a barrier opens (and by [`Team::dismiss`]); sleepers wait on it.
    generation: CachePadded<AtomicU32>,
    /// Members asleep (or about to sleep) on `generation`.
    sleepers: CachePadded<AtomicU32>,
    stop: AtomicBool,
    /// The current round's job: a `*const &Job` set by member 0 before the start barrier and
    /// valid until the end barrier.
    job: AtomicPtr<()>,
    /// The first panic of a member other than 0 in the current round.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// The CPU each member last ran a job on (`usize::MAX`: unknown).
    cpus: Vec<CachePadded<AtomicUsize>>,
}

impl Team {
    #[must_use]
    pub fn new(size: usize) -> Self {
        assert!(size >= 1, "a team has at least one member");
        Self {
            size,
            arrived: CachePadded::new(AtomicUsize::new(0)),
            generation: CachePadded::new(AtomicU32::new(0)),
            sleepers: CachePadded::new(AtomicU32::new(0)),
            stop: AtomicBool::new(false),
            job: AtomicPtr::new(std::ptr::null_mut()),
            panic: Mutex::new(None),
            cpus: (0..size)
                .map(|_| CachePadded::new(AtomicUsize::new(usize::MAX)))
                .collect(),
        }
    }

    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Opens the barrier: a new generation, and a wake-up for the sleepers, if any.
    fn open(&self) {
        // SeqCst pairs with the sleeper's SeqCst increment: either it sees the new
        // generation (and the futex does not sleep), or this sees it counted and wakes it.
        self.generation.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            atomic_wait::wake_all(&*self.generation);
        }
    }

    /// Waits until all `size` members have arrived, or the team is dismissed.
    fn barrier(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        // After a dismissal the generation may already have moved on: do not wait for it.
        if self.stop.load(Ordering::Acquire) {
            return;
        }
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.size {
            self.arrived.store(0, Ordering::Relaxed);
            self.open();
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if spins < SPIN_LIMIT {
                spins += 1;
                spin_loop();
            } else {
                self.sleepers.fetch_add(1, Ordering::SeqCst);
                // Sleeps only while the generation is still the one we wait on.
                atomic_wait::wait(&self.generation, generation);
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Member 0: runs `job(k)` on every member `k` (itself included) and returns when all
    /// are done. A panic of any member's job is resumed here, after the round.
    pub fn run(&self, job: &Job<'_>) {
        let slot: *const &Job<'_> = &job;
        self.job.store(slot.cast_mut().cast(), Ordering::Release);
        self.cpus[0].store(cpu::current(), Ordering::Relaxed);
        self.barrier();
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        self.barrier();
        self.job.store(std::ptr::null_mut(), Ordering::Release);
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        let theirs = self
            .panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(payload) = theirs {
            resume_unwind(payload);
        }
    }

    /// Members 1..size: serve rounds until [`Team::dismiss`].
    pub fn serve(&self, member: usize) {
        debug_assert!(member >= 1 && member < self.size);
        // The round of the last move.
        let mut moved_at: Option<u64> = None;
        for round in 0u64.. {
            self.barrier();
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let slot = self.job.load(Ordering::Acquire).cast::<&Job<'_>>();
            // SAFETY: member 0 stored a pointer to a live `&Job` before the start barrier and
            // keeps it alive (a local of `Team::run`, which waits in the end barrier below)
            // until every member has passed the end barrier. The barrier's release/acquire
            // pair orders the store before this load. A dismissal between rounds is seen
            // above, before the pointer is read.
            let job: &Job<'_> = unsafe { *slot };
            let may_move = moved_at.is_none_or(|at| round >= at + MOVE_EVERY);
            if self.spread(member, may_move) {
                moved_at = Some(round);
            }
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| job(member))) {
                let mut first = self.panic.lock().unwrap_or_else(PoisonError::into_inner);
                first.get_or_insert(payload);
            }
            self.barrier();
        }
    }

    /// Member `member`: notes its CPU, and (if `may_move`) moves to a CPU that no member is
    /// on if a lower member shares its own. Returns whether it moved.
    fn spread(&self, member: usize, may_move: bool) -> bool {
        let here = cpu::current();
        self.cpus[member].store(here, Ordering::Relaxed);
        if !may_move
            || here == usize::MAX
            || !self.cpus[..member]
                .iter()
                .any(|c| c.load(Ordering::Relaxed) == here)
        {
            return false;
        }
        let mut taken = [usize::MAX; MAX_MEMBERS];
        for (t, c) in taken.iter_mut().zip(&self.cpus) {
            *t = c.load(Ordering::Relaxed);
        }
        cpu::move_off(&taken[..self.size.min(MAX_MEMBERS)])
    }

    /// Member 0: ends every member's [`Team::serve`] loop (between rounds).
    pub fn dismiss(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.open();
    }
}

/// Where the calling thread runs, and a way to move it elsewhere without pinning it.
#[cfg(target_os = "linux")]
mod cpu {
    use std::mem::{size_of, zeroed};

    /// The CPU the calling thread is running on (`usize::MAX` if unknown).
    pub fn current() -> usize {
        // SAFETY: no arguments; returns -1 on failure.
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).unwrap_or(usize::MAX)
    }

    /// Moves the calling thread to one of its allowed CPUs not in `avoid`, if there is one,
    /// by allowing only those for a moment (the kernel migrates a thread at once off a CPU it
    /// may no longer use), then restores the allowed set. Returns whether it moved.
    pub fn move_off(avoid: &[usize]) -> bool {
        let size = size_of::<libc::cpu_set_t>();
        // SAFETY: cpu_set_t is plain data (all zeros is the empty set); the calls get a
        // pointer to one of `size` bytes, and CPU_CLR is only given indices below the set's
        // capacity (CPU_SETSIZE bits).
        unsafe {
            let mut allowed: libc::cpu_set_t = zeroed();
            if libc::sched_getaffinity(0, size, &raw mut allowed) != 0 {
                return false;
            }
            let mut elsewhere = allowed;
            for &cpu in avoid {
                if cpu < libc::CPU_SETSIZE as usize {
                    libc::CPU_CLR(cpu, &mut elsewhere);
                }
            }
            if libc::CPU_COUNT(&elsewhere) == 0 {
                return false;
            }
            let moved = libc::sched_setaffinity(0, size, &raw const elsewhere) == 0;
            libc::sched_setaffinity(0, size, &raw const allowed);
            moved
        }
    }
}

/// Elsewhere the members stay where the scheduler puts them.
#[cfg(not(target_os = "linux"))]
mod cpu {
    pub fn current() -> usize {
        usize::MAX
    }
    pub fn move_off(_avoid: &[usize]) -> bool {
        false
    }
}

/// Dismisses a team when dropped, so that no member waits on after its caller has left
/// (a panic or an early return included).
pub struct Dismiss<'a>(pub &'a Team);

impl Drop for Dismiss<'_> {
    fn drop(&mut self) {
        self.0.dismiss();
    }
}

/// Runs `body` with a team of `size` members: the calling thread (member 0) and `size - 1`
/// workers of `pool`, which must have at least that many threads and nothing else to do.
pub fn with_team<R>(pool: &rayon::ThreadPool, size: usize, body: impl FnOnce(&Team) -> R) -> R {
    assert!(
        size <= pool.current_num_threads() + 1,
        "a team of {size} needs {} pool threads",
        size - 1
    );
    let team = Team::new(size);
    pool.in_place_scope(|scope| {
        for member in 1..size {
            let team = &team;
            scope.spawn(move |_| team.serve(member));
        }
        let _dismiss = Dismiss(&team);
        body(&team)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool")
    }

    #[test]
    fn every_member_runs_every_round_once() {
        for size in 1..=4 {
            let pool = pool(3);
            let counts: Vec<AtomicU64> = (0..size).map(|_| AtomicU64::new(0)).collect();
            with_team(&pool, size, |team| {
                for round in 0..1000u64 {
                    team.run(&|m| {
                        counts[m].fetch_add(1, Ordering::Relaxed);
                    });
                    // The round is over for everyone when run returns.
                    for c in &counts {
                        assert_eq!(c.load(Ordering::Relaxed), round + 1);
                    }
                    if round % 100 == 0 {
                        // Long enough between rounds for the members to fall asleep.
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
            });
        }
    }

    #[test]
    fn a_members_panic_reaches_the_caller_after_the_round() {
        let pool = pool(2);
        let done = AtomicU64::new(0);
        let result = catch_unwind(AssertUnwindSafe(|| {
            with_team(&pool, 3, |team| {
                team.run(&|m| {
                    if m == 2 {
                        panic!("member 2 fails");
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                });
            });
        }));
        let payload = result.expect_err("the panic is resumed");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"member 2 fails"));
        assert_eq!(done.load(Ordering::Relaxed), 2);
        // The pool's workers were released: a new team runs on them.
        with_team(&pool, 3, |team| team.run(&|_| {}));
    }

    #[test]
    fn member_zeros_panic_dismisses_the_team() {
        let pool = pool(1);
        let result = catch_unwind(AssertUnwindSafe(|| {
            with_team(&pool, 2, |team| {
                team.run(&|m| assert_ne!(m, 0, "member 0 fails"));
            });
        }));
        assert!(result.is_err());
        with_team(&pool, 2, |team| team.run(&|_| {}));
    }
}
