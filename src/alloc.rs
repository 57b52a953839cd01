//! The musl build's allocator: dlmalloc behind a spin lock.
//!
//! musl's malloc returns memory to the kernel eagerly (~90 mmap/munmap pairs
//! per `mica run`); dlmalloc keeps what it got. The dlmalloc crate's own
//! global allocator guards the heap with a pthread mutex: two calls into
//! libc and two atomic operations per allocation and per free, ~45% of the
//! time of allocation-heavy code such as compiling a seccomp profile
//! (128 -> 86 µs for docker's profile). A spin lock is one atomic swap and a
//! plain store. mica is single-threaded except `mica bench`, whose threads
//! allocate rarely and briefly; nothing allocates in a signal handler or
//! between fork and exec.

use core::alloc::{GlobalAlloc, Layout};
use dlmalloc::Dlmalloc;

/// The heap; `Dlmalloc` holds raw pointers, so it is not `Send` by itself.
struct Inner(Dlmalloc);

// SAFETY: the heap is only ever used under the lock.
unsafe impl Send for Inner {}

pub struct Heap(spin::Mutex<Inner>);

impl Heap {
    pub const fn new() -> Heap {
        Heap(spin::Mutex::new(Inner(Dlmalloc::new())))
    }
}

// SAFETY: every call goes to dlmalloc with the lock held, with the layout
// the caller passed, as `dlmalloc::GlobalDlmalloc` does.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.0.lock().0.malloc(l.size(), l.align())
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        self.0.lock().0.calloc(l.size(), l.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, l: Layout) {
        self.0.lock().0.free(ptr, l.size(), l.align())
    }

    unsafe fn realloc(&self, ptr: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        self.0.lock().0.realloc(ptr, l.size(), l.align(), new_size)
    }
}
