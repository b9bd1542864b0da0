//! A team of threads for the trainer's per-window fork-join.
//!
//! A seed-size window is a few microseconds of work on one core. Handing half of it to a
//! rayon worker each window (`par_iter_mut`) pays for waking that worker, which by then has
//! begun to yield or sleep: on the 2-core VM, 2 threads ran the seed configuration at only
//! 1.13x one thread (median). A team keeps `size - 1` rayon workers for a whole
//! [`crate::train::Trainer::run`], waiting between windows, and runs each window's units of
//! work (blocks of shards) on whichever members are ready.
//!
//! # Units are claimed, not assigned
//!
//! A round has `units` units, cut into one contiguous slice per member, each slice with its
//! own atomic claim word. Every member, member 0 (the caller) included, claims the units of
//! its own slice first (so that in the steady state a member runs the same shards every
//! window, their buffers warm in its cache), then those left in the others' slices, until
//! none is left; the round ends when every unit is done. No member ever waits for another to *arrive*: a member that is late (still
//! waking up, descheduled by another process, moved to another CPU) simply finds fewer units
//! or none, and member 0 runs them itself. Which member runs a unit never changes a result:
//! each unit writes only its own shards' buffers, and the gradients are summed afterwards in
//! the fixed tree order of the shard index (`crate::train`). What is left is a member
//! descheduled while it *holds* a unit: member 0 must wait for that unit, which on a machine
//! with other work can take a scheduler time slice (milliseconds, against a window of
//! microseconds). Hence the adaptation below.
//!
//! # The team adapts: never slower than one thread for long
//!
//! Member 0 times each round: its own units' time gives the round's cost on one thread
//! (`own time / own units x units`), against the round's wall time. Every [`BATCH`] rounds it
//! compares the sums: if the team was slower than one thread would have been, the next
//! rounds run on member 0 alone ("solo": the others spin a little, then sleep), first
//! [`SOLO_MIN`] rounds, doubling after each batch that still loses, up to [`SOLO_MAX`]; a
//! batch that wins resets it. So a busy machine costs at most a batch of slow rounds per
//! solo stretch, and a machine that becomes free again gets its team back soon.
//! [`Team::stats`] counts the rounds of each kind (`train` reports them in `summary.json`).
//!
//! A member that Linux wakes onto member 0's CPU waits there, ready to run, while member 0
//! does every unit (so the adaptation sees no loss) and the other CPU idles, until the
//! scheduler's load balancing moves it: 2 to 4 ms, the first 200 to 400 seed-size windows at
//! one thread's speed (measured 2026-12-02). So when the others have taken no unit for
//! `ABSENT_ROUNDS` rounds in a row, member 0 yields its CPU once, letting such a member run,
//! see that it shares member 0's CPU and move (`Team::spread`); each yield after which they
//! are still absent doubles the wait for the next. It does not yield when more threads are
//! ready to run than the process has CPUs (`/proc/loadavg`): then the member could only move
//! onto a CPU another process is using (a pipeline's reader starting up), and member 0 alone
//! is the faster choice; it looks again `ABSENT_RETRY` rounds later.
//!
//! A member that is descheduled while it holds a unit (another process wants its CPU: a
//! pipeline's reader starting up, a busy loop) held the round for a whole time slice, 2 to
//! 4 ms. So member 0, once it has waited for held units `PULL_AFTER` and `PULL_UNITS`
//! times its own mean unit time, moves the members that are inside their work onto its own
//! CPU (`Team::pull_holders`: a momentary affinity change of that thread, restored at
//! once) and yields: the holder finishes there. `train --json | python3 ...` at the seed
//! size went from 1.04x to 1.2x one thread, and with a busy loop pinned to the other CPU from
//! 0.86x to 1.17x (`scripts/team_under_load.sh`, 2026-12-02).
//!
//! # Waiting
//!
//! A waiting member spins for [`SPIN_TIME`] (longer than the serial part between two
//! windows), then sleeps on a futex until member 0 publishes a round. Spinning keeps the
//! hand-off to a few hundred nanoseconds while the team is busy; sleeping gives the core back
//! when it is not (a solo stretch, a slow callback, an oversubscribed machine). The spin is
//! timed rather than counted: a `pause` takes 25 ns on the AMD VM and several times that on
//! recent Intel cores. Member 0, waiting for a held unit, spins and then yields its core, in
//! case the holder was descheduled to make room for it.
//!
//! Busy members make the machine look fully used, and Linux then stops searching for an idle
//! core when it wakes a thread: it puts the wakee on the waker's core. On the 2-core VM two
//! members were seen sharing one core, the other idle, for 15..100 ms at a time. So each
//! member `k >= 1` notes its CPU when it wakes for a round, and if it finds itself on the CPU
//! of a lower member it moves itself once to a CPU that no member is on (`cpu::move_off`: a
//! momentary affinity change, restored at once, so nothing is pinned and the scheduler stays
//! free to place the threads afterwards).
//!
//! The threads come from rayon's pool (`ThreadPool::in_place_scope`); only the
//! synchronisation is ours. A panic in a unit reaches the caller of [`Team::run`] after the
//! round, and [`Team::dismiss`] ends the members' loops on every way out.

use crossbeam_utils::CachePadded;
use std::any::Any;
use std::hint::spin_loop;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a waiting member spins before it sleeps: longer than the serial update between
/// two windows (about a microsecond at the seed size), short enough that an idle team soon
/// stops burning cores.
pub const SPIN_TIME: Duration = Duration::from_micros(60);

/// How long member 0 spins on a held unit before it starts yielding its core.
const HOLD_SPIN: Duration = Duration::from_micros(20);

/// How long member 0 waits for held units before it pulls their holders onto its own CPU
/// ([`Team::pull_holders`]): far longer than a seed-size unit takes (about 2 us), far shorter
/// than a time slice...
const PULL_AFTER: Duration = Duration::from_micros(100);
/// ... and at least this many times member 0's own mean unit time in the round.
const PULL_UNITS: f64 = 8.0;

/// Rounds per adaptation decision; see the module docs. Long enough (about 1.5 ms at the seed
/// size) that one stall of a few hundred microseconds, which the 2-vCPU VM's host causes now
/// and then on either vCPU, does not outweigh a batch of the team's gains (a seed round: 6 us
/// on a team of two against 9 us alone, measured 2026-12-01); a member that a busy process
/// deschedules for a time slice (milliseconds) does.
pub const BATCH: u32 = 256;
/// The first (and shortest) and the longest solo stretch in rounds: a false alarm costs little (32 rounds
/// at one thread's speed), a lasting one doubles the stretch batch after batch.
pub const SOLO_MIN: u32 = 32;
pub const SOLO_MAX: u32 = 1 << 16;

/// Team rounds in a row without a unit run by another member after which member 0 yields
/// its core once: a member woken onto member 0's CPU waits there, runnable, while member 0
/// works (the other CPU idle) until the scheduler's load balancing moves it, 2 to 4 ms later
/// (hundreds of seed-size windows at one thread's speed); yielding lets it run, see that it
/// shares member 0's CPU, and move ([`Team::spread`]).
const ABSENT_ROUNDS: u32 = 8;
/// The longest wait between two such checks (each yield after which the others are still
/// absent doubles the wait; a round that another member takes part in resets it).
const ABSENT_MAX: u32 = 1 << 12;
/// Rounds until the next check after one that found more threads ready than CPUs (each
/// check reads `/proc/loadavg`: about 10 us, against 32 rounds of at least 6 us).
const ABSENT_RETRY: u32 = 32;

/// A member moves itself at most once in this many rounds it takes part in (so that a
/// machine with other work on it cannot make the members chase each other round after round).
const MOVE_EVERY: u64 = 64;

/// Members whose CPUs [`Team::spread`] keeps clear of (the trainer's teams have at most
/// `shards::MAX_SHARDS` = 64 members, one per shard at most).
const MAX_MEMBERS: usize = 64;

/// Units per round, at most (they are counted in 16 bits of the claim word).
pub const MAX_UNITS: usize = u16::MAX as usize;

/// The job of one round: called once for every unit, with the unit's index, on whichever
/// member claims it.
pub type Job<'a> = dyn Fn(usize) + Sync + 'a;

/// Rounds run so far, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TeamStats {
    /// Rounds published to the team.
    pub team_rounds: u64,
    /// Rounds member 0 ran alone because the team was losing to one thread.
    pub solo_rounds: u64,
    /// Units run by members other than 0.
    pub units_by_others: u64,
    /// Times member 0 gave up its core because the others had taken no unit for
    /// `ABSENT_ROUNDS` rounds.
    pub absent_yields: u64,
    /// Members that member 0 moved onto its own CPU because they held a unit it waited for.
    pub pulls: u64,
}

impl std::ops::AddAssign for TeamStats {
    /// Totals over several teams (a trainer forms one per `Trainer::run`).
    fn add_assign(&mut self, other: Self) {
        self.team_rounds += other.team_rounds;
        self.solo_rounds += other.solo_rounds;
        self.units_by_others += other.units_by_others;
        self.absent_yields += other.absent_yields;
        self.pulls += other.pulls;
    }
}

/// Member 0's bookkeeping for the adaptation.
#[derive(Debug, Default)]
struct Adapt {
    stats: TeamStats,
    /// Rounds and sums of the current batch: wall time, and the one-thread estimate.
    batch_rounds: u32,
    batch_wall: f64,
    batch_solo_estimate: f64,
    /// Solo rounds left in the current stretch, and the next stretch's length.
    solo_left: u32,
    next_solo: u32,
    /// Team rounds in a row that member 0 ran alone, and how many make the next check.
    absent_rounds: u32,
    absent_limit: u32,
}

impl Adapt {
    /// Whether the next round runs on member 0 alone.
    fn solo(&mut self) -> bool {
        if self.solo_left > 0 {
            self.solo_left -= 1;
            self.stats.solo_rounds += 1;
            true
        } else {
            false
        }
    }

    /// After a check that [`Adapt::record`] asked for: a yield that still finds the others
    /// absent doubles the wait for the next check; a check that did not yield (more threads
    /// ready than CPUs) comes back after [`ABSENT_RETRY`] rounds, so that the team gathers
    /// soon once the other process is done.
    fn checked(&mut self, yielded: bool) {
        self.absent_limit = if yielded {
            self.stats.absent_yields += 1;
            (self.absent_limit.max(ABSENT_ROUNDS) * 2).min(ABSENT_MAX)
        } else {
            ABSENT_RETRY
        };
    }

    /// A team round took `wall` seconds; member 0 ran `own` of `units` units in `own_s`.
    fn record(&mut self, units: usize, own: usize, own_s: f64, wall: f64) -> bool {
        self.stats.team_rounds += 1;
        if own == units {
            self.absent_rounds += 1;
        } else {
            self.absent_rounds = 0;
        }
        let absent = self.absent_rounds >= self.absent_limit.max(ABSENT_ROUNDS);
        if absent {
            self.absent_rounds = 0;
        } else if own < units {
            self.absent_limit = ABSENT_ROUNDS;
        }
        self.stats.units_by_others += (units - own) as u64;
        self.batch_rounds += 1;
        self.batch_wall += wall;
        // Without a unit of its own, member 0 has no estimate: count the round as a draw.
        self.batch_solo_estimate += if own > 0 {
            own_s / own as f64 * units as f64
        } else {
            wall
        };
        if self.batch_rounds == BATCH {
            if self.batch_wall > self.batch_solo_estimate {
                self.solo_left = self.next_solo.max(SOLO_MIN);
                self.next_solo = (self.solo_left * 2).min(SOLO_MAX);
            } else {
                self.next_solo = SOLO_MIN;
            }
            (self.batch_rounds, self.batch_wall, self.batch_solo_estimate) = (0, 0.0, 0.0);
        }
        absent
    }
}

/// A team of `size` members that run rounds of claimed units; the caller of [`Team::run`]
/// is member 0.
///
/// The fields that members write while others spin have cache lines of their own
/// ([`CachePadded`]), and so does the team as a whole (its alignment, and so its size, is a
/// multiple of 128 bytes; it lives on member 0's stack, next to data that member 0 writes
/// while it works): a spinning member must not keep pulling a line that a working member
/// writes (false sharing).
pub struct Team {
    size: usize,
    /// One claim word per member's slice of the units: round (bits 32..64), the slice's end
    /// (16..32), its next unclaimed unit (0..16).
    claims: Vec<CachePadded<AtomicU64>>,
    /// The current round's number.
    round: AtomicU64,
    /// Units of the current round done.
    done: CachePadded<AtomicUsize>,
    /// Bumped when a round is published (and by [`Team::dismiss`]); sleepers wait on it.
    generation: CachePadded<AtomicU32>,
    /// Members asleep (or about to sleep) on `generation`.
    sleepers: CachePadded<AtomicU32>,
    stop: AtomicBool,
    /// The current round's job: a `*const &Job` set by member 0 before it publishes the
    /// round and valid until every unit of the round is done.
    job: AtomicPtr<()>,
    /// The first panic of a unit in the current round.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Where each member is and what it does.
    members: Vec<CachePadded<Member>>,
    /// Member 0's adaptation state (only member 0 locks it: never contended).
    adapt: Mutex<Adapt>,
    /// The CPUs this process may use.
    cores: usize,
}

/// One member's slot: the CPU it last woke on (`usize::MAX`: unknown), its thread id (0:
/// unknown), and whether it is inside [`Team::work`] (it may hold a unit).
struct Member {
    cpu: AtomicUsize,
    tid: AtomicI32,
    working: AtomicBool,
}

impl Default for Member {
    fn default() -> Self {
        Self {
            cpu: AtomicUsize::new(usize::MAX),
            tid: AtomicI32::new(0),
            working: AtomicBool::new(false),
        }
    }
}

/// The CPUs this process may use, found once (the lookup reads cgroup files: it allocates,
/// and a team forms at every `Trainer::run`).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

impl Team {
    #[must_use]
    pub fn new(size: usize) -> Self {
        assert!(size >= 1, "a team has at least one member");
        Self {
            size,
            claims: (0..size)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            round: AtomicU64::new(0),
            done: CachePadded::new(AtomicUsize::new(0)),
            generation: CachePadded::new(AtomicU32::new(0)),
            sleepers: CachePadded::new(AtomicU32::new(0)),
            stop: AtomicBool::new(false),
            job: AtomicPtr::new(std::ptr::null_mut()),
            panic: Mutex::new(None),
            members: (0..size).map(|_| CachePadded::default()).collect(),
            adapt: Mutex::new(Adapt::default()),
            cores: cores(),
        }
    }

    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }

    /// The rounds run so far, by kind.
    #[must_use]
    pub fn stats(&self) -> TeamStats {
        self.adapt().stats
    }

    fn adapt(&self) -> std::sync::MutexGuard<'_, Adapt> {
        self.adapt.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the members for a new round (or the dismissal).
    fn open(&self) {
        // SeqCst pairs with the sleeper's SeqCst increment: either it sees the new
        // generation (and the futex does not sleep), or this sees it counted and wakes it.
        self.generation.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            atomic_wait::wake_all(&*self.generation);
        }
    }

    /// Waits until the generation is no longer `seen` (a round was published) or the team is
    /// dismissed: spins for [`SPIN_TIME`], then sleeps. (A member that starts after the
    /// dismissal has already bumped the generation sees `stop`: it is set first.)
    fn wait_for_round(&self, seen: u32) {
        let start = Instant::now();
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == seen && !self.stop.load(Ordering::Acquire)
        {
            spins += 1;
            if !spins.is_multiple_of(32) || start.elapsed() < SPIN_TIME {
                spin_loop();
            } else {
                self.sleepers.fetch_add(1, Ordering::SeqCst);
                // Sleeps only while the generation is still the one we wait on.
                atomic_wait::wait(&self.generation, seen);
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Claims and runs units of the current round until none is left, from `member`'s own
    /// slice first, then from the others' in turn; returns how many this member ran.
    fn work(&self, member: usize) -> usize {
        let mut ran = 0;
        for k in 0..self.size {
            let claim = &self.claims[(member + k) % self.size];
            loop {
                let word = claim.load(Ordering::SeqCst);
                let (end, next) = ((word >> 16) & 0xFFFF, word & 0xFFFF);
                if next >= end {
                    break;
                }
                let slot = self.job.load(Ordering::SeqCst).cast::<&Job<'_>>();
                if claim
                    .compare_exchange_weak(word, word + 1, Ordering::SeqCst, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                // SAFETY: the claim succeeded on a word of the round whose job `slot` points
                // to: member 0 stores the job before it publishes the round's claim words,
                // and stores the next round's job only after every unit of this round is
                // done, which cannot be before this unit (claimed, not yet done) is. So
                // `slot` is that round's `&Job`, a local of `Team::run` that stays alive until
                // the round is done.
                let job: &Job<'_> = unsafe { *slot };
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| job(next as usize))) {
                    let mut first = self.panic.lock().unwrap_or_else(PoisonError::into_inner);
                    first.get_or_insert(payload);
                }
                self.done.fetch_add(1, Ordering::Release);
                ran += 1;
            }
        }
        ran
    }

    /// Member 0: runs `job(u)` for every `u` in `0..units`, each once, on whichever members
    /// claim them (itself included), or alone during a solo stretch; returns when all are
    /// done. A panic of any unit is resumed here, after the round.
    ///
    /// # Panics
    /// If `units > MAX_UNITS`.
    pub fn run(&self, units: usize, job: &Job<'_>) {
        assert!(units <= MAX_UNITS, "a round has at most {MAX_UNITS} units");
        if units == 0 {
            return;
        }
        if self.size == 1 || self.adapt().solo() {
            (0..units).for_each(job);
            return;
        }
        let slot: *const &Job<'_> = &job;
        self.done.store(0, Ordering::Relaxed);
        self.job.store(slot.cast_mut().cast(), Ordering::SeqCst);
        let round = self.round.load(Ordering::Relaxed) + 1;
        self.round.store(round, Ordering::Relaxed);
        for (k, claim) in self.claims.iter().enumerate() {
            let (start, end) = (k * units / self.size, (k + 1) * units / self.size);
            claim.store(
                (round << 32) | ((end as u64) << 16) | start as u64,
                Ordering::SeqCst,
            );
        }
        self.members[0].cpu.store(cpu::current(), Ordering::Relaxed);
        let start = Instant::now();
        self.open();
        let own = self.work(0);
        let own_s = start.elapsed().as_secs_f64();
        let mut spins = 0u32;
        // Pull only after many times the time member 0's own units took: a holder that is
        // still computing a large unit is not stalled.
        let pull_after = if own > 0 {
            PULL_AFTER
                .as_secs_f64()
                .max(PULL_UNITS * own_s / own as f64)
        } else {
            f64::INFINITY
        };
        let mut pulled = false;
        while self.done.load(Ordering::Acquire) < units {
            spins += 1;
            if spins.is_multiple_of(32) {
                let waited = start.elapsed().as_secs_f64() - own_s;
                if !pulled && waited > pull_after {
                    pulled = true;
                    self.pull_holders();
                }
                if waited > HOLD_SPIN.as_secs_f64() {
                    std::thread::yield_now();
                    continue;
                }
            }
            spin_loop();
        }
        let wall = start.elapsed().as_secs_f64();
        self.job.store(std::ptr::null_mut(), Ordering::SeqCst);
        let absent = self.adapt().record(units, own, own_s, wall);
        // The others ran nothing for a while: a member may be waiting for this CPU. Yield
        // it, unless the machine has more runnable threads than CPUs (then the member would
        // only move to a CPU that another process is using, and the team would be slower
        // than member 0 alone).
        if absent {
            let free = cpu::runnable().is_none_or(|r| r <= self.cores);
            if free {
                std::thread::yield_now();
            }
            self.adapt().checked(free);
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

    /// Member 0, waiting [`PULL_AFTER`] for units that other members hold: moves each member
    /// that is inside [`Team::work`] onto this CPU (a momentary affinity change), where the
    /// yields of the wait let it run. A holder that waits for its own CPU behind another
    /// process (a pipeline's reader starting up) held the round for a whole time slice, 2 to
    /// 4 ms against a seed-size round of 6 us.
    fn pull_holders(&self) {
        let here = cpu::current();
        let mut pulled = 0;
        for m in self.members.iter().skip(1) {
            let tid = m.tid.load(Ordering::Relaxed);
            if m.working.load(Ordering::SeqCst) && tid != 0 && cpu::pull(tid, here) {
                pulled += 1;
            }
        }
        self.adapt().stats.pulls += pulled;
    }

    /// Members 1..size: serve rounds until [`Team::dismiss`].
    pub fn serve(&self, member: usize) {
        debug_assert!(member >= 1 && member < self.size);
        self.members[member]
            .tid
            .store(cpu::thread_id(), Ordering::Relaxed);
        let mut seen = self.generation.load(Ordering::Acquire);
        // The round (counted in rounds this member woke for) of the last move.
        let mut moved_at: Option<u64> = None;
        for round in 0u64.. {
            self.wait_for_round(seen);
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            seen = self.generation.load(Ordering::Acquire);
            let may_move = moved_at.is_none_or(|at| round >= at + MOVE_EVERY);
            if self.spread(member, may_move) {
                moved_at = Some(round);
            }
            self.members[member].working.store(true, Ordering::SeqCst);
            self.work(member);
            self.members[member].working.store(false, Ordering::Release);
        }
    }

    /// Member `member`: notes its CPU, and (if `may_move`) moves to a CPU that no member is
    /// on if a lower member shares its own. Returns whether it moved.
    fn spread(&self, member: usize, may_move: bool) -> bool {
        let here = cpu::current();
        self.members[member].cpu.store(here, Ordering::Relaxed);
        if !may_move
            || here == usize::MAX
            || !self.members[..member]
                .iter()
                .any(|m| m.cpu.load(Ordering::Relaxed) == here)
        {
            return false;
        }
        let mut taken = [usize::MAX; MAX_MEMBERS];
        for (t, m) in taken.iter_mut().zip(&self.members) {
            *t = m.cpu.load(Ordering::Relaxed);
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

    /// The calling thread's id (for [`pull`]).
    pub fn thread_id() -> i32 {
        // SAFETY: no arguments, cannot fail.
        unsafe { libc::gettid() }
    }

    /// Moves thread `tid` (of this process) onto CPU `cpu`, if it may run there ([`narrow`]
    /// to that CPU alone). Returns whether it moved. `tid` must be a live thread of this
    /// process: a member's own `gettid()` (members live until the team is dismissed, after
    /// every round, so the id cannot belong to another thread while a round waits).
    pub fn pull(tid: i32, cpu: usize) -> bool {
        narrow(tid, |allowed| {
            // SAFETY: CPU_ISSET and CPU_SET get an index below the set's capacity.
            unsafe {
                if cpu >= libc::CPU_SETSIZE as usize || !libc::CPU_ISSET(cpu, allowed) {
                    return None;
                }
                let mut only: libc::cpu_set_t = zeroed();
                libc::CPU_SET(cpu, &mut only);
                Some(only)
            }
        })
    }

    /// The threads on the machine that are running or ready to run at this moment
    /// (`/proc/loadavg`'s fourth field, before the slash), if it can be read.
    /// Read into a buffer on the stack: the team's rounds allocate nothing.
    pub fn runnable() -> Option<usize> {
        use std::io::Read;
        let mut buf = [0u8; 128];
        let n = std::fs::File::open("/proc/loadavg")
            .ok()?
            .read(&mut buf)
            .ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        text.split_whitespace()
            .nth(3)?
            .split('/')
            .next()?
            .parse()
            .ok()
    }

    /// Moves the calling thread to one of its allowed CPUs not in `avoid`, if there is one
    /// ([`narrow`] to those). Returns whether it moved.
    pub fn move_off(avoid: &[usize]) -> bool {
        narrow(0, |allowed| {
            let mut elsewhere = *allowed;
            // SAFETY: CPU_CLR and CPU_COUNT get indices below the set's capacity.
            unsafe {
                for &cpu in avoid {
                    if cpu < libc::CPU_SETSIZE as usize {
                        libc::CPU_CLR(cpu, &mut elsewhere);
                    }
                }
                (libc::CPU_COUNT(&elsewhere) > 0).then_some(elsewhere)
            }
        })
    }

    /// Moves thread `tid` (0: the caller) without pinning it: allows it only the CPUs that
    /// `to` picks from its allowed set for a moment (the kernel migrates a thread at once off
    /// a CPU it may no longer use), then restores the allowed set. `to` returning `None`
    /// leaves it where it is. Returns whether it moved.
    fn narrow(tid: i32, to: impl FnOnce(&libc::cpu_set_t) -> Option<libc::cpu_set_t>) -> bool {
        let size = size_of::<libc::cpu_set_t>();
        // SAFETY: cpu_set_t is plain data (all zeros is the empty set); the calls get a
        // pointer to one of `size` bytes; `tid` is the caller or a live thread of this
        // process (see the callers).
        unsafe {
            let mut allowed: libc::cpu_set_t = zeroed();
            if libc::sched_getaffinity(tid, size, &raw mut allowed) != 0 {
                return false;
            }
            let Some(target) = to(&allowed) else {
                return false;
            };
            let moved = libc::sched_setaffinity(tid, size, &raw const target) == 0;
            libc::sched_setaffinity(tid, size, &raw const allowed);
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
    pub fn runnable() -> Option<usize> {
        None
    }
    pub fn thread_id() -> i32 {
        0
    }
    pub fn pull(_tid: i32, _cpu: usize) -> bool {
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

/// The pool of a team of `threads` members: `threads - 1` workers (member 0 is the caller),
/// named `bitrnn-worker-1..`.
///
/// # Errors
/// [`crate::error::Error::Usage`] naming `--threads` when the threads cannot be started.
pub fn workers(threads: usize) -> crate::error::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads - 1)
        .thread_name(|i| format!("bitrnn-worker-{}", i + 1))
        .build()
        .map_err(|e| crate::error::Error::Usage(format!("--threads {threads}: {e}")))
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
    fn every_unit_runs_once_per_round() {
        for size in 1..=4 {
            let pool = pool(3);
            let units = 7;
            let counts: Vec<AtomicU64> = (0..units).map(|_| AtomicU64::new(0)).collect();
            with_team(&pool, size, |team| {
                for round in 0..1000u64 {
                    team.run(units, &|u| {
                        counts[u].fetch_add(1, Ordering::Relaxed);
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
    fn members_take_units_when_member_zero_is_busy() {
        let pool = pool(1);
        let by_others = AtomicU64::new(0);
        let stats = with_team(&pool, 2, |team| {
            for _ in 0..200 {
                let me = std::thread::current().id();
                team.run(2, &|_| {
                    if std::thread::current().id() == me {
                        // Member 0 is slow: the other member has time to claim a unit.
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    } else {
                        by_others.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            team.stats()
        });
        assert!(by_others.load(Ordering::Relaxed) > 0);
        assert_eq!(stats.units_by_others, by_others.load(Ordering::Relaxed));
    }

    #[test]
    fn a_team_that_loses_to_one_thread_runs_solo() {
        // Units that other members run take far longer than member 0's: the team is slower
        // than member 0 alone, and after a batch it runs solo stretches.
        let pool = pool(1);
        let stats = with_team(&pool, 2, |team| {
            for _ in 0..4 * BATCH {
                let me = std::thread::current().id();
                team.run(4, &|_| {
                    if std::thread::current().id() != me {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                });
            }
            team.stats()
        });
        assert!(stats.solo_rounds >= u64::from(SOLO_MIN), "{stats:?}");
        assert_eq!(
            stats.team_rounds + stats.solo_rounds,
            4 * u64::from(BATCH),
            "{stats:?}"
        );
    }

    #[test]
    fn adapt_goes_solo_doubles_and_resets() {
        let mut a = Adapt::default();
        let lose = |a: &mut Adapt| {
            for _ in 0..BATCH {
                assert!(!a.solo());
                a.record(4, 2, 1.0, 3.0); // one thread: 2.0, the team: 3.0
            }
        };
        lose(&mut a);
        assert_eq!(a.solo_left, SOLO_MIN);
        for _ in 0..SOLO_MIN {
            assert!(a.solo());
        }
        lose(&mut a);
        assert_eq!(a.solo_left, 2 * SOLO_MIN);
        for _ in 0..2 * SOLO_MIN {
            assert!(a.solo());
        }
        for _ in 0..BATCH {
            a.record(4, 2, 1.0, 1.1); // the team wins
        }
        assert_eq!((a.solo_left, a.next_solo), (0, SOLO_MIN));
        assert_eq!(a.stats.solo_rounds, u64::from(3 * SOLO_MIN));
    }

    #[test]
    fn member_zero_alone_checks_after_8_rounds_then_twice_as_long_after_each_yield() {
        let mut a = Adapt::default();
        // Rounds that member 0 ran alone (4 of 4 units) until `record` asks for a check.
        let alone_until_check = |a: &mut Adapt| (1..).find(|_| a.record(4, 4, 1.0, 1.0)).unwrap();
        assert_eq!(alone_until_check(&mut a), ABSENT_ROUNDS);
        a.checked(true);
        assert_eq!(alone_until_check(&mut a), 2 * ABSENT_ROUNDS);
        a.checked(true);
        assert_eq!(alone_until_check(&mut a), 4 * ABSENT_ROUNDS);
        // A check that could not yield (no free CPU) comes back after a fixed count.
        a.checked(false);
        assert_eq!(alone_until_check(&mut a), ABSENT_RETRY);
        a.checked(true);
        // A round with another member's unit resets the wait and the count.
        assert!(!a.record(4, 2, 1.0, 1.0));
        assert_eq!(alone_until_check(&mut a), ABSENT_ROUNDS);
        for _ in 0..20 {
            a.checked(true);
            alone_until_check(&mut a);
        }
        a.checked(true);
        assert_eq!(alone_until_check(&mut a), ABSENT_MAX);
        assert_eq!(a.stats.absent_yields, 24);
    }

    #[test]
    fn a_units_panic_reaches_the_caller_after_the_round() {
        let pool = pool(2);
        let done = AtomicU64::new(0);
        let result = catch_unwind(AssertUnwindSafe(|| {
            with_team(&pool, 3, |team| {
                team.run(3, &|u| {
                    if u == 2 {
                        panic!("unit 2 fails");
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                });
            });
        }));
        let payload = result.expect_err("the panic is resumed");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"unit 2 fails"));
        assert_eq!(done.load(Ordering::Relaxed), 2);
        // The pool's workers were released: a new team runs on them.
        with_team(&pool, 3, |team| team.run(3, &|_| {}));
    }
}
