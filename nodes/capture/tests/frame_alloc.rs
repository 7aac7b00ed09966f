//! Heap allocations per camera frame once the pooled image has grown to the frame size: none for
//! YUYV (one copy into the pooled buffer); for MJPEG only the JPEG decoder's own working state
//! (zune-jpeg builds its tables and row buffers per image; the decoded pixels go straight into the
//! pooled buffer). Counted with a global allocator over many frames.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use perch_capture::camera::convert::{into_image, WireFormat};
use perch_capture::camera::modes::{MJPG, YUYV};
use perch_pipeline::ImageBuf;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(l.size() as u64, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn per_frame(frames: &[Vec<u8>], wire: WireFormat) -> (f64, f64) {
    let (mut img, mut scratch) = (ImageBuf::default(), Vec::new());
    into_image(&wire, &frames[0], &mut img, &mut scratch).unwrap(); // grows the buffers once
    let (a0, b0) = (ALLOCS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    let n = 50;
    for i in 0..n {
        into_image(&wire, &frames[i % frames.len()], &mut img, &mut scratch).unwrap();
    }
    let (a1, b1) = (ALLOCS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    ((a1 - a0) as f64 / n as f64, (b1 - b0) as f64 / n as f64)
}

#[test]
fn yuyv_frames_allocate_nothing_and_mjpeg_only_the_decoder_state() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/vtest/img1");
    let jpegs: Vec<Vec<u8>> = (1..=5).map(|i| std::fs::read(dir.join(format!("{i:06}.jpg"))).unwrap()).collect();
    let yuyv = vec![vec![128u8; 768 * 576 * 2]];
    let (allocs, _) = per_frame(&yuyv, WireFormat { fourcc: YUYV, width: 768, height: 576, stride: 1536 });
    assert_eq!(allocs, 0.0, "YUYV: one copy into the pooled buffer, no allocation");
    let (allocs, bytes) = per_frame(&jpegs, WireFormat { fourcc: MJPG, width: 768, height: 576, stride: 0 });
    eprintln!("MJPEG 768x576: {allocs:.1} allocations, {:.0} KiB per frame (decoder state)", bytes / 1024.0);
    // The image itself (1.3 MB RGB) must not be among them.
    assert!(bytes < 768.0 * 576.0 * 3.0 / 2.0, "{bytes} bytes per frame: the pixels are not decoded into a new buffer");
}
