//! The published view, read through a per-thread cache.
//!
//! `ArcSwap::load` and the release of its guard cost two locked instructions per evaluation,
//! more than a boolean flag's evaluation itself. Each thread therefore keeps the views it last
//! read (one per client, [`SLOTS`] clients at most), each tagged with the client's publication
//! generation when it was loaded. A read is one plain atomic load of the generation and a
//! comparison with the thread's copy; only after a publication does a thread load the view from
//! the `ArcSwap` again.
//!
//! Why a reader never sees a view older than one it has already seen: a publisher stores the
//! new view, then increments the generation (release); a reader that reads generation `g`
//! (acquire) and then loads the view gets the view published with `g` or a later one, and keeps
//! it under `g`. Every later publication changes the generation, so the next read reloads, and
//! a thread's successive loads of the same atomic pointer never go back in its history.
//! A read made while this thread's cache is borrowed for writing cannot happen (no user code
//! runs while the cache is refreshed); a read nested in another one (an event hook that
//! evaluates) that finds its copy out of date serves that copy (the view the outer read is
//! using or an older one of the same client, never one older than this thread has seen)
//! rather than a fresher view the cache could not record.
//!
//! Memory: an idle thread keeps the views it last read alive (at most [`SLOTS`]) until it
//! reads again, its slot is taken by another client, or it exits. A reader that lets go of the
//! last reference to a large old view does not free it inline (freeing a snapshot of 100 000
//! flags takes a tenth of a second): it hands it to a short-lived thread that does.

use super::view::View;
use arc_swap::{ArcSwap, Guard};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How many clients' views one thread keeps; a thread alternating between more clients than
/// this reloads on every change of client.
pub(super) const SLOTS: usize = 4;

/// Ids of [`Published`] cells; 0 marks an empty slot.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A view of more items than this (flags, and segment keys) is freed off the reading thread.
const LARGE_VIEW: usize = 4096;

thread_local! {
    static CACHE: RefCell<Cache> = const { RefCell::new(Cache::EMPTY) };
}

/// One thread's copies of the views it read.
struct Cache {
    slots: [Slot; SLOTS],
    /// The slot a client without one takes next (round robin).
    next: usize,
}

/// One client's view as this thread last loaded it.
struct Slot {
    /// The [`Published`] cell it came from (0: empty).
    id: u64,
    /// The generation read before loading it.
    generation: u64,
    view: Option<Arc<View>>,
}

impl Slot {
    const EMPTY: Slot = Slot {
        id: 0,
        generation: 0,
        view: None,
    };
}

impl Cache {
    const EMPTY: Cache = Cache {
        slots: [Slot::EMPTY; SLOTS],
        next: 0,
    };

    /// The slot of cell `id`, when its view was loaded at `generation`.
    #[inline(always)]
    fn fresh(&self, id: u64, generation: u64) -> Option<&Slot> {
        self.slots
            .iter()
            .find(|s| s.id == id && s.generation == generation)
    }

    /// The slot of cell `id`, however old its view.
    fn any(&self, id: u64) -> Option<&Slot> {
        self.slots.iter().find(|s| s.id == id)
    }

    /// Records `view` for cell `id`; returns the view the slot held.
    fn store(&mut self, id: u64, generation: u64, view: Arc<View>) -> Option<Arc<View>> {
        let i = match self.slots.iter().position(|s| s.id == id) {
            Some(i) => i,
            None => {
                let i = self.next;
                self.next = (i + 1) % SLOTS;
                i
            }
        };
        let slot = &mut self.slots[i];
        slot.id = id;
        slot.generation = generation;
        slot.view.replace(view)
    }
}

/// The view evaluations read: published lock-free, read through the per-thread cache.
#[derive(Debug)]
pub(super) struct Published {
    /// Names this cell in the threads' caches (never reused).
    id: u64,
    /// Incremented after every publication.
    generation: AtomicU64,
    current: ArcSwap<View>,
}

impl Published {
    /// A cell holding `view`.
    pub(super) fn new(view: View) -> Published {
        Published {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            current: ArcSwap::from_pointee(view),
        }
    }

    /// Runs `f` on the current view: the thread's copy when no publication happened since it
    /// was loaded (no locked instruction, no reference count), else the view loaded now.
    #[inline]
    pub(super) fn read<R>(&self, f: impl FnOnce(&View) -> R) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        let mut f = Some(f);
        let cached = CACHE.try_with(|cache| {
            let c = cache.try_borrow().ok()?;
            let view = c.fresh(self.id, generation)?.view.as_deref()?;
            // The only call of `f` on the fast path, so that it is inlined into it.
            f.take().map(|f| f(view))
        });
        match (cached, f) {
            (Ok(Some(r)), _) => r,
            (_, Some(f)) => self.read_refreshed(generation, f),
            (_, None) => unreachable!("`f` ran and returned its result"),
        }
    }

    /// Runs `f` on the current view after a publication this thread has not loaded yet (or
    /// while its cache is gone or in use): loads it into the cache, then reads it from there.
    #[cold]
    #[inline(never)]
    fn read_refreshed<R>(&self, generation: u64, f: impl FnOnce(&View) -> R) -> R {
        let mut f = Some(f);
        let cached = CACHE.try_with(|cache| {
            self.refresh(cache, generation);
            let c = cache.try_borrow().ok()?;
            let view = c.any(self.id)?.view.as_deref()?;
            f.take().map(|f| f(view))
        });
        match (cached, f) {
            (Ok(Some(r)), _) => r,
            // The thread is exiting (its cache is gone), or its cache is in use by an outer
            // read and holds nothing for this client.
            (_, Some(f)) => self.read_uncached(f),
            (_, None) => unreachable!("`f` ran and returned its result"),
        }
    }

    /// Runs `f` on the view loaded from the `ArcSwap`.
    #[cold]
    #[inline(never)]
    fn read_uncached<R>(&self, f: impl FnOnce(&View) -> R) -> R {
        f(&self.current.load())
    }

    /// Loads the current view into this thread's cache (unless the cache is in use).
    #[cold]
    #[inline(never)]
    fn refresh(&self, cache: &RefCell<Cache>, generation: u64) {
        let Ok(mut c) = cache.try_borrow_mut() else {
            return;
        };
        let old = c.store(self.id, generation, self.current.load_full());
        drop(c);
        if let Some(old) = old.and_then(Arc::into_inner) {
            retire(old);
        }
    }

    /// The current view, for what is not on the evaluation path.
    pub(super) fn load(&self) -> Guard<Arc<View>> {
        self.current.load()
    }

    /// Publishes the view `f` makes of the current one (called again if another publication
    /// came first); returns the view it replaced. Readers see it at their next read.
    pub(super) fn rcu(&self, f: impl FnMut(&Arc<View>) -> View) -> Arc<View> {
        let old = self.current.rcu(f);
        self.generation.fetch_add(1, Ordering::Release);
        old
    }
}

/// Frees a view a reader held the last reference to: inline when small, else on a thread of
/// its own (inline if no thread can be started), so that the evaluation does not wait for it.
fn retire(view: View) {
    let doc = view.snapshot.document();
    let items = doc.flags.len()
        + doc
            .segments
            .values()
            .map(|s| s.included.len() + s.excluded.len())
            .sum::<usize>();
    if items <= LARGE_VIEW {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("feature-free-view".into())
        .spawn(move || drop(view));
}
