//! The musl build's allocator: dlmalloc behind a spin lock.
//!
//! musl's malloc returns memory to the kernel eagerly (~90 mmap/munmap pairs
//! per `mica run`); dlmalloc keeps what it got. The dlmalloc crate's own
//! global allocator guards the heap with a pthread mutex: two calls into
//! libc and two atomic operations per allocation and per free, ~45% of the
//! time of allocation-heavy code such as compiling a seccomp profile
//! (128 -> 86 µs for docker's profile). A spin lock is one atomic swap and a
//! plain store. mica is single-threaded except `mica bench`, whose threads
//! allocate rarely and briefly; a thread that finds the lock taken yields the
//! CPU (the holder may be preempted on a 2-core machine) rather than spin.
//! Nothing allocates in a signal handler or between fork and exec.

use core::alloc::{GlobalAlloc, Layout};
use dlmalloc::Dlmalloc;

pub struct Heap(spin::mutex::SpinMutex<Dlmalloc, spin::relax::Yield>);

impl Heap {
    pub const fn new() -> Heap {
        Heap(spin::mutex::SpinMutex::new(Dlmalloc::new()))
    }
}

// SAFETY: every call goes to dlmalloc with the lock held, with the layout
// the caller passed, as `dlmalloc::GlobalDlmalloc` does.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.0.lock().malloc(l.size(), l.align())
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        self.0.lock().calloc(l.size(), l.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, l: Layout) {
        self.0.lock().free(ptr, l.size(), l.align())
    }

    unsafe fn realloc(&self, ptr: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        self.0.lock().realloc(ptr, l.size(), l.align(), new_size)
    }
}
