//! The V4L2 streaming queue (memory-mapped buffers) of one open camera, over the `v4l` crate's ioctl
//! wrapper and bindings (the crate nokhwa's V4L2 backend is built on).
//!
//! Why not `v4l::io::mmap::Stream` (what nokhwa streams with): its `next()` re-queues the previous
//! buffer and dequeues the next in one call, so waiting for a frame cannot be separated from reading
//! it (the capture stage would count the wait as its latency, and a stop request would wait for the
//! camera); after a poll timeout it re-queues a buffer the driver still holds (`EINVAL` forever);
//! its `Drop` panics on any error but `ENODEV` (an `EIO` unplug would abort the pipeline); and it
//! hands out whole buffers, not the `bytesused` a frame filled. nokhwa's own `frame()` copies every
//! frame into a new allocation and turns the driver's monotonic timestamp into wall-clock time.
//! This queue does the same ioctls (`REQBUFS`, `QUERYBUF`, `mmap`, `QBUF`, `STREAMON`, `poll`,
//! `DQBUF`, `STREAMOFF`) with each step separate and every error returned.

use std::io;
use std::os::raw::c_void;
use std::sync::Arc;
use std::time::Duration;

use v4l::device::Handle;
use v4l::v4l2;
use v4l::v4l_sys::{
    v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE as CAPTURE, v4l2_buffer, v4l2_memory_V4L2_MEMORY_MMAP as MMAP,
    v4l2_requestbuffers,
};

/// A frame the driver handed over: which buffer, how much of it, and the driver's metadata.
#[derive(Clone, Copy, Debug)]
pub struct Dequeued {
    pub index: usize,
    pub bytesused: usize,
    pub flags: u32,
    /// The buffer timestamp (`CLOCK_MONOTONIC` when `flags` says so).
    pub timestamp: Duration,
    /// The driver's frame counter; a gap means the driver dropped frames.
    pub sequence: u32,
}

/// What a wait for the next frame found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Nothing within the wait.
    Pending,
    /// `POLLERR`/`POLLHUP`: the device is gone or stopped streaming.
    Failed,
}

struct Mapping {
    ptr: *mut c_void,
    len: usize,
}

pub struct MmapQueue {
    handle: Arc<Handle>,
    buffers: Vec<Mapping>,
    streaming: bool,
}

// SAFETY: the mappings are plain memory shared with the driver; the queue is used by one thread at
// a time (the capture thread) and moves between threads only as a whole.
unsafe impl Send for MmapQueue {}

fn zeroed_buffer(index: u32) -> v4l2_buffer {
    // SAFETY: v4l2_buffer is a plain C struct (integers, a union of integers/pointers): all-zero is valid.
    let mut b: v4l2_buffer = unsafe { std::mem::zeroed() };
    b.index = index;
    b.type_ = CAPTURE;
    b.memory = MMAP;
    b
}

fn request(handle: &Handle, count: u32) -> io::Result<u32> {
    // SAFETY: as above, a plain C struct.
    let mut req: v4l2_requestbuffers = unsafe { std::mem::zeroed() };
    req.count = count;
    req.type_ = CAPTURE;
    req.memory = MMAP;
    // SAFETY: VIDIOC_REQBUFS reads and writes a v4l2_requestbuffers, which `req` is.
    unsafe { v4l2::ioctl(handle.fd(), v4l2::vidioc::VIDIOC_REQBUFS, &mut req as *mut _ as *mut c_void)? };
    Ok(req.count)
}

impl MmapQueue {
    /// Ask the driver for `count` buffers and map them. `EBUSY` here means another process streams
    /// from the camera.
    pub fn new(handle: Arc<Handle>, count: u32) -> io::Result<Self> {
        let granted = request(&handle, count)?;
        let mut queue = MmapQueue { handle, buffers: Vec::with_capacity(granted as usize), streaming: false };
        for index in 0..granted {
            let mut b = zeroed_buffer(index);
            // SAFETY: VIDIOC_QUERYBUF reads and writes a v4l2_buffer, which `b` is.
            unsafe { v4l2::ioctl(queue.handle.fd(), v4l2::vidioc::VIDIOC_QUERYBUF, &mut b as *mut _ as *mut c_void)? };
            let len = b.length as usize;
            // SAFETY: maps the buffer the driver just described (offset and length from QUERYBUF);
            // the mapping is released in Drop before the buffers are freed.
            let ptr = unsafe {
                // SAFETY (union read): for MMAP buffers the driver fills `m.offset`.
                let offset = b.m.offset;
                v4l2::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    queue.handle.fd(),
                    offset as libc::off_t,
                )?
            };
            queue.buffers.push(Mapping { ptr, len });
        }
        if queue.buffers.len() < 2 {
            return Err(io::Error::other(format!("the driver granted {granted} buffers; streaming needs at least 2")));
        }
        Ok(queue)
    }

    /// Queue every buffer and start the stream.
    pub fn start(&mut self) -> io::Result<()> {
        for index in 0..self.buffers.len() {
            self.requeue(index)?;
        }
        let mut typ = CAPTURE;
        // SAFETY: VIDIOC_STREAMON reads an int buffer type.
        unsafe { v4l2::ioctl(self.handle.fd(), v4l2::vidioc::VIDIOC_STREAMON, &mut typ as *mut _ as *mut c_void)? };
        self.streaming = true;
        Ok(())
    }

    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// Wait up to `timeout` for a filled buffer.
    pub fn wait(&self, timeout: Duration) -> io::Result<Readiness> {
        let mut fds = [libc::pollfd { fd: self.handle.fd(), events: libc::POLLIN, revents: 0 }];
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid array of one pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(Readiness::Pending) } else { Err(e) };
        }
        let revents = fds[0].revents;
        Ok(if revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            Readiness::Failed
        } else if revents & libc::POLLIN != 0 {
            Readiness::Ready
        } else {
            Readiness::Pending
        })
    }

    /// Take the next filled buffer; `WouldBlock` when none is ready (the device is non-blocking).
    pub fn dequeue(&mut self) -> io::Result<Dequeued> {
        let mut b = zeroed_buffer(0);
        // SAFETY: VIDIOC_DQBUF reads and writes a v4l2_buffer, which `b` is.
        unsafe { v4l2::ioctl(self.handle.fd(), v4l2::vidioc::VIDIOC_DQBUF, &mut b as *mut _ as *mut c_void)? };
        let index = b.index as usize;
        if index >= self.buffers.len() {
            return Err(io::Error::other(format!("the driver returned buffer {index} of {}", self.buffers.len())));
        }
        let timestamp = Duration::new(b.timestamp.tv_sec.max(0) as u64, (b.timestamp.tv_usec.clamp(0, 999_999) * 1000) as u32);
        Ok(Dequeued {
            index,
            bytesused: (b.bytesused as usize).min(self.buffers[index].len),
            flags: b.flags,
            timestamp,
            sequence: b.sequence,
        })
    }

    /// The filled part of a dequeued buffer. Valid until the buffer is re-queued.
    pub fn data(&self, d: &Dequeued) -> &[u8] {
        let m = &self.buffers[d.index];
        // SAFETY: `ptr` maps `len` bytes for the life of the queue; the buffer is dequeued (the
        // driver does not write it until `requeue`, which takes `&mut self` and so ends this borrow);
        // `bytesused <= len` (clamped in `dequeue`).
        unsafe { std::slice::from_raw_parts(m.ptr as *const u8, d.bytesused) }
    }

    /// Give a buffer back to the driver to fill.
    pub fn requeue(&mut self, index: usize) -> io::Result<()> {
        let mut b = zeroed_buffer(index as u32);
        // SAFETY: VIDIOC_QBUF reads and writes a v4l2_buffer, which `b` is.
        unsafe { v4l2::ioctl(self.handle.fd(), v4l2::vidioc::VIDIOC_QBUF, &mut b as *mut _ as *mut c_void)? };
        Ok(())
    }
}

impl Drop for MmapQueue {
    /// Stop, unmap, free: errors are expected here (an unplugged camera answers `ENODEV`) and ignored.
    fn drop(&mut self) {
        if self.streaming {
            let mut typ = CAPTURE;
            // SAFETY: VIDIOC_STREAMOFF reads an int buffer type.
            let _ = unsafe { v4l2::ioctl(self.handle.fd(), v4l2::vidioc::VIDIOC_STREAMOFF, &mut typ as *mut _ as *mut c_void) };
        }
        for m in self.buffers.drain(..) {
            // SAFETY: each mapping was created in `new` with this length and is unmapped once.
            let _ = unsafe { v4l2::munmap(m.ptr, m.len) };
        }
        let _ = request(&self.handle, 0);
    }
}
