//! A thin (8-byte) reference-counted pointer to one allocation of
//! `[count u32 | length u32 | header H | bytes]`: the layout of a znode
//! (`node.rs`). `triomphe::ThinArc` keeps the count and the slice length as
//! two machine words; a znode needs neither wider than 32 bits (a znode is
//! at most jute.maxbuffer, 1 MiB by default; the count is one per tree
//! version holding the node), so these 8 bytes per znode are saved here.
//! The only unsafe reference counting in the tree; it follows
//! `std::sync::Arc`'s protocol (Relaxed increment, Release decrement,
//! Acquire fence before the free).

use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{self, AtomicU32, Ordering};

/// Past this count a clone aborts, as `Arc` does past `isize::MAX`: a
/// count that wrapped would free a node still in use.
const MAX_REFCOUNT: u32 = i32::MAX as u32;

#[repr(C)]
struct Inner<H> {
    count: AtomicU32,
    len: u32,
    header: H,
    // `len` bytes follow, at `Inner::<H>::bytes_offset()`.
}

impl<H> Inner<H> {
    /// The allocation's layout for `len` bytes after the header. Not padded
    /// to the alignment: malloc rounds the size itself, and the same layout
    /// is rebuilt from `len` to free it.
    fn layout(len: usize) -> Layout {
        let size = std::mem::size_of::<Inner<H>>().saturating_add(len);
        match Layout::from_size_align(size, std::mem::align_of::<Inner<H>>()) {
            Ok(layout) => layout,
            Err(_) => panic!("a node of {len} bytes is larger than memory"),
        }
    }
}

/// One header and a byte slice behind a single pointer, immutable and
/// shared: clones share the allocation, the last drop frees it.
pub(crate) struct ThinArc<H> {
    ptr: NonNull<Inner<H>>,
    _owns: PhantomData<Inner<H>>,
}

// SAFETY: the allocation is written after construction only through the
// atomic count and through `get_mut`, which needs the one reference there
// is (so nobody else can read it), so sharing it across threads is as safe
// as sharing `H`, and dropping it on another thread as safe as sending `H`
// (same bounds as `std::sync::Arc<H>`).
unsafe impl<H: Send + Sync> Send for ThinArc<H> {}
unsafe impl<H: Send + Sync> Sync for ThinArc<H> {}

impl<H> ThinArc<H> {
    /// A new allocation holding `header` and a copy of `bytes`. Panics if
    /// `bytes` is 4 GiB or longer (a znode is bounded far below that).
    pub(crate) fn new(header: H, bytes: &[u8]) -> ThinArc<H> {
        let len = match u32::try_from(bytes.len()) {
            Ok(len) => len,
            Err(_) => panic!("a node of {} bytes does not fit a 32-bit length", bytes.len()),
        };
        let layout = Inner::<H>::layout(bytes.len());
        // SAFETY: the layout has a non-zero size (it includes the count).
        let raw = unsafe { alloc::alloc(layout) } as *mut Inner<H>;
        let Some(ptr) = NonNull::new(raw) else { alloc::handle_alloc_error(layout) };
        // SAFETY: `raw` is a fresh allocation of `layout`: room and
        // alignment for an `Inner<H>` and then `len` bytes.
        unsafe {
            ptr::write(raw, Inner { count: AtomicU32::new(1), len, header });
            ptr::copy_nonoverlapping(bytes.as_ptr(), Self::bytes_ptr(raw), bytes.len());
        }
        ThinArc { ptr, _owns: PhantomData }
    }

    fn bytes_ptr(inner: *mut Inner<H>) -> *mut u8 {
        // One past the fixed part, inside the same allocation.
        inner.cast::<u8>().wrapping_add(std::mem::size_of::<Inner<H>>())
    }

    fn inner(&self) -> &Inner<H> {
        // SAFETY: the allocation lives while any clone (this one) does.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn header(&self) -> &H {
        &self.inner().header
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        let len = self.inner().len as usize;
        // SAFETY: `new` copied `len` bytes there, and nothing writes them after.
        unsafe { std::slice::from_raw_parts(Self::bytes_ptr(self.ptr.as_ptr()), len) }
    }

    /// The header and the bytes, writable, if this is the only reference
    /// (as `Arc::get_mut`: no clone exists, and none can be made while the
    /// `&mut` lives); None if the allocation is shared.
    pub(crate) fn get_mut(&mut self) -> Option<(&mut H, &mut [u8])> {
        // Acquire: every other owner's last use (their Release decrement)
        // happens before the writes that follow.
        if self.inner().count.load(Ordering::Acquire) != 1 {
            return None;
        }
        let inner = self.ptr.as_ptr();
        // SAFETY: the count is 1 and we hold it through `&mut self`, so no
        // other reference to the allocation exists; `new` wrote the header
        // and `len` bytes after it, and the two borrows do not overlap.
        unsafe {
            let len = (*inner).len as usize;
            let bytes = std::slice::from_raw_parts_mut(Self::bytes_ptr(inner), len);
            Some((&mut (*inner).header, bytes))
        }
    }

    /// Bytes this allocation asks malloc for (malloc's own header and
    /// rounding not counted).
    #[cfg(test)]
    pub(crate) fn allocation_bytes(&self) -> usize {
        Inner::<H>::layout(self.inner().len as usize).size()
    }

    #[cfg(test)]
    pub(crate) fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.ptr == b.ptr
    }
}

impl<H> Clone for ThinArc<H> {
    fn clone(&self) -> Self {
        // Relaxed is enough to take a new reference from an existing one
        // (the same argument as `Arc::clone`).
        let old = self.inner().count.fetch_add(1, Ordering::Relaxed);
        if old > MAX_REFCOUNT {
            std::process::abort();
        }
        ThinArc { ptr: self.ptr, _owns: PhantomData }
    }
}

impl<H> Drop for ThinArc<H> {
    fn drop(&mut self) {
        if self.inner().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other owner's last use happens before this free.
        atomic::fence(Ordering::Acquire);
        let len = self.inner().len as usize;
        // SAFETY: this was the last reference: nobody else reads the
        // allocation, which `new` made with this same layout.
        unsafe {
            ptr::drop_in_place(ptr::addr_of_mut!((*self.ptr.as_ptr()).header));
            alloc::dealloc(self.ptr.as_ptr().cast::<u8>(), Inner::<H>::layout(len));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    #[test]
    fn the_fixed_part_is_the_count_the_length_and_the_header() {
        assert_eq!(std::mem::size_of::<ThinArc<Arc<u8>>>(), 8);
        assert_eq!(std::mem::size_of::<Inner<(Arc<u8>, u32, u32)>>(), 24);
        let node = ThinArc::new((Arc::new(1u8), 2u32, 3u32), b"abc");
        assert_eq!(node.allocation_bytes(), 24 + 3);
    }

    proptest! {
        /// Any bytes read back; the header is dropped exactly once, when the
        /// last of any number of clones (some dropped on other threads) goes.
        #[test]
        fn clones_share_and_the_last_drop_frees(
            bytes in prop::collection::vec(any::<u8>(), 0..600),
            clones in 0usize..8,
            on_threads in 0usize..8,
        ) {
            let header = Arc::new(());
            let node = ThinArc::new(header.clone(), &bytes);
            let copies: Vec<_> = (0..clones).map(|_| node.clone()).collect();
            prop_assert_eq!(Arc::strong_count(&header), 2);
            for copy in &copies {
                prop_assert!(ThinArc::ptr_eq(copy, &node));
                prop_assert_eq!(copy.bytes(), &bytes[..]);
            }
            let sent: Vec<_> = (0..on_threads).map(|_| node.clone()).collect();
            let len = bytes.len();
            std::thread::scope(|scope| {
                for copy in sent {
                    scope.spawn(move || assert_eq!(copy.bytes().len(), len));
                }
            });
            let mut node = node;
            prop_assert_eq!(node.get_mut().is_some(), clones == 0);
            drop(copies);
            prop_assert_eq!(Arc::strong_count(&header), 2);
            if let Some((_, unique)) = node.get_mut() {
                unique.reverse();
                unique.reverse();
            }
            prop_assert_eq!(node.bytes(), &bytes[..]);
            drop(node);
            prop_assert_eq!(Arc::strong_count(&header), 1);
        }
    }
}
