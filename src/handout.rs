//! The work hand-out of a team round: block k (of shards, of gradient elements) to whichever
//! member claims unit k, through uncontended mutexes in an array on the stack, so that a
//! window allocates nothing. Use [`split_for_members`] before [`crate::team::Team::run`] and
//! [`take_block`] inside its job.

use crate::shards::MAX_SHARDS;
use std::sync::{Mutex, PoisonError};

/// One block per unit, at most [`MAX_SHARDS`] units.
pub type Blocks<'a, T> = [Mutex<Option<&'a mut [T]>>; MAX_SHARDS];

/// The blocks of `chunks`, in order: the k-th chunk is unit k.
pub fn split_for_members<'a, T>(mut chunks: impl Iterator<Item = &'a mut [T]>) -> Blocks<'a, T> {
    std::array::from_fn(|_| Mutex::new(chunks.next()))
}

/// Unit `unit`'s block (once; `None` past the last block).
pub fn take_block<'a, T>(blocks: &Blocks<'a, T>, unit: usize) -> Option<&'a mut [T]> {
    let slot = blocks.get(unit)?;
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}
