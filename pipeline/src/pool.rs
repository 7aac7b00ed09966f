//! A recycling pool of frame payloads: steady state runs without heap allocation per frame.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::frame::FrameData;

#[derive(Debug)]
struct PoolInner {
    free: ArrayQueue<Box<FrameData>>,
    misses: AtomicU64,
    takes: AtomicU64,
}

/// Lock-free pool of [`FrameData`]. Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct FramePool {
    inner: Arc<PoolInner>,
}

impl FramePool {
    /// A pool that keeps up to `capacity` idle payloads, pre-filled so the first frames do not miss.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let free = ArrayQueue::new(capacity);
        for _ in 0..capacity {
            let _ = free.push(Box::default());
        }
        Self { inner: Arc::new(PoolInner { free, misses: AtomicU64::new(0), takes: AtomicU64::new(0) }) }
    }

    /// Take a payload; allocates (and counts a miss) only when every pooled one is in flight.
    pub fn take(&self) -> Pooled {
        self.inner.takes.fetch_add(1, Ordering::Relaxed);
        let mut data = match self.inner.free.pop() {
            Some(data) => data,
            None => {
                self.inner.misses.fetch_add(1, Ordering::Relaxed);
                Box::default()
            }
        };
        data.clear();
        Pooled { data: Some(data), pool: self.inner.clone() }
    }

    /// Takes that found the pool empty and had to allocate.
    pub fn misses(&self) -> u64 {
        self.inner.misses.load(Ordering::Relaxed)
    }

    pub fn takes(&self) -> u64 {
        self.inner.takes.load(Ordering::Relaxed)
    }
}

/// A payload on loan from a [`FramePool`]; goes back when dropped.
#[derive(Debug)]
pub struct Pooled {
    data: Option<Box<FrameData>>,
    pool: Arc<PoolInner>,
}

impl Deref for Pooled {
    type Target = FrameData;
    fn deref(&self) -> &FrameData {
        self.data.as_deref().expect("pooled data present until drop")
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut FrameData {
        self.data.as_deref_mut().expect("pooled data present until drop")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(data) = self.data.take() {
            // A full pool means we allocated on a miss earlier: let the extra one go.
            let _ = self.pool.free.push(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycles_buffers_and_keeps_capacity() {
        let pool = FramePool::new(2);
        let mut a = pool.take();
        a.image.data.resize(1000, 7);
        let ptr = a.image.data.as_ptr();
        drop(a);
        let _b = pool.take();
        let c = pool.take();
        // One of the two takes got the recycled buffer with its capacity intact.
        assert!(c.image.data.capacity() >= 1000 || _b.image.data.capacity() >= 1000);
        assert!(c.image.data.as_ptr() == ptr || _b.image.data.as_ptr() == ptr);
        assert_eq!(pool.misses(), 0);
        let _d = pool.take();
        assert_eq!(pool.misses(), 1);
    }
}
