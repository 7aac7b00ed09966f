/* v4l2emu: device state, the buffer queue, the frame producer thread, unplug and replug. */
#include "v4l2emu.h"

struct device dev = {
    .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .owner = -1, .lockfd = -1, .memfd = -1,
};
struct handle handles[MAX_FD];

uint32_t sizeimage(uint32_t fourcc, uint32_t w, uint32_t h) {
    (void)fourcc;
    return w * h * 2; /* YUYV exactly; MJPEG: the most a frame may take, as UVC reports */
}

void udev_link(void) {
    if (!cfg.byid) return;
    char target[64];
    snprintf(target, sizeof target, "/dev/video%d", dev.index);
    unlink(cfg.byid);
    if (symlink(target, cfg.byid) != 0) fprintf(stderr, "v4l2emu: cannot create %s: %s\n", cfg.byid, strerror(errno));
}

static void *replug_thread(void *arg) {
    (void)arg;
    struct timespec t = {cfg.replug_ms / 1000, (cfg.replug_ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
    pthread_mutex_lock(&dev.mu);
    /* A new device: whatever the old handles held is gone with the old one. */
    if (dev.producer) {
        pthread_t p = dev.producer;
        dev.producer = 0;
        pthread_mutex_unlock(&dev.mu);
        pthread_join(p, NULL);
        pthread_mutex_lock(&dev.mu);
    }
    release_buffers_locked();
    dev.nq = dev.nd = 0;
    dev.present = 1;
    dev.index = cfg.replug_index;
    default_format();
    udev_link();
    logf_("v4l2emu: replugged as /dev/video%d", dev.index);
    pthread_mutex_unlock(&dev.mu);
    return NULL;
}

/* The cable is pulled: every handle now gets ENODEV; a scan of /dev no longer lists the node. */
static void unplug_locked(void) {
    dev.present = 0;
    dev.gen++;
    dev.streaming = 0;
    dev.stop = 1;
    if (cfg.byid) unlink(cfg.byid);
    if (dev.owner >= 0) {
        uint64_t one = 1;
        ssize_t w = write(dev.owner, &one, sizeof one); /* wake a poller */
        (void)w;
    }
    pthread_cond_broadcast(&dev.cv);
    logf_("v4l2emu: unplugged after %ld frames", dev.produced);
    if (cfg.replug_ms >= 0) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_create(&t, &a, replug_thread, NULL);
        pthread_attr_destroy(&a);
    }
}

static int is_corrupt(long k) {
    for (int i = 0; i < cfg.n_corrupt; i++) if (cfg.corrupt_at[i] == k) return 1;
    return 0;
}

/* Fill buffer b with footage frame k in the current format. Called without the lock: the buffer is
 * in state B_FILLING, which nothing else touches. Returns bytesused. */
static uint32_t fill(struct buf *b, long k, unsigned char *scratch, unsigned char *scratch2) {
    unsigned char *dst = dev.mem + b->offset;
    size_t len;
    const unsigned char *jpg = frame_jpeg((int)k, &len);
    if (!jpg) return 0;
    uint32_t w = dev.width, h = dev.height;
    int native = (int)w == foot.width && (int)h == foot.height;
    if (dev.fourcc == V4L2_PIX_FMT_MJPEG) {
        size_t n = 0;
        if (native && !cfg.webcam_mjpeg) {
            n = len <= b->length ? len : 0;
            if (n) memcpy(dst, jpg, n);
        } else {
            if (decode_jpeg(jpg, len, JCS_RGB, scratch, foot.width, foot.height) != 0) return 0;
            const unsigned char *rgb = scratch;
            if (!native) { resample3(scratch, foot.width, foot.height, scratch2, w, h); rgb = scratch2; }
            n = encode_jpeg(rgb, w, h, dst, b->length);
            if (n && cfg.webcam_mjpeg) n = strip_dht(dst, n);
        }
        if (n && is_corrupt(k)) {
            /* A frame damaged on the wire: the headers after SOI are overwritten. */
            size_t end = n < 600 ? n : 600;
            memset(dst + 2, 0x00, end - 2);
        }
        return (uint32_t)n;
    }
    if (decode_jpeg(jpg, len, JCS_YCbCr, scratch, foot.width, foot.height) != 0) return 0;
    const unsigned char *ycc = scratch;
    if (!native) { resample3(scratch, foot.width, foot.height, scratch2, w, h); ycc = scratch2; }
    ycc_to_yuyv(ycc, w, h, dst, w * 2);
    if (is_corrupt(k)) memset(dst, 0, (size_t)w * h); /* YUYV has no checksum: a green band */
    return w * h * 2;
}

static void *producer_main(void *arg) {
    (void)arg;
    size_t biggest = 0;
    for (int i = 0; i < n_modes; i++) if ((size_t)modes[i].w * modes[i].h > biggest) biggest = (size_t)modes[i].w * modes[i].h;
    unsigned char *scratch = malloc((size_t)foot.width * foot.height * 3), *scratch2 = malloc(biggest * 3);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&dev.mu);
    while (!dev.stop) {
        pthread_cond_timedwait(&dev.cv, &dev.mu, &next); /* the cv uses CLOCK_MONOTONIC (see init) */
        if (dev.stop) break;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec < next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec < next.tv_nsec)) continue;
        long nms = now.tv_sec * 1000L + now.tv_nsec / 1000000L;
        if (cfg.stall_at >= 0 && dev.produced == cfg.stall_at && dev.stall_until_ms == 0) {
            dev.stall_until_ms = nms + cfg.stall_ms;
            logf_("v4l2emu: stalling for %ld ms at frame %ld", cfg.stall_ms, dev.produced);
        }
        struct timespec exposure = next;
        long period_ns = 1000000000L / (dev.fps ? dev.fps : 30);
        next.tv_nsec += period_ns;
        while (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
        if (dev.stall_until_ms > 0 && nms < dev.stall_until_ms) continue;
        if (cfg.unplug_after >= 0 && dev.produced >= cfg.unplug_after && !dev.unplugged_once) {
            dev.unplugged_once = 1; /* the fault happens once; the replugged camera keeps going */
            unplug_locked();
            break;
        }
        long k = dev.produced++;
        uint32_t seq = dev.seq++;
        if (dev.nq == 0) { logf_("v4l2emu: frame %u dropped (no buffer queued)", seq); continue; }
        int bi = dev.queued[0];
        memmove(dev.queued, dev.queued + 1, (--dev.nq) * sizeof(int));
        struct buf *b = &dev.bufs[bi];
        b->state = B_FILLING;
        pthread_mutex_unlock(&dev.mu);
        uint32_t used = fill(b, k, scratch, scratch2);
        pthread_mutex_lock(&dev.mu);
        if (dev.stop) { b->state = B_USER; break; }
        b->bytesused = used;
        b->sequence = seq;
        b->flags = V4L2_BUF_FLAG_MAPPED | V4L2_BUF_FLAG_DONE | V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC |
                   V4L2_BUF_FLAG_TSTAMP_SRC_SOE | (used ? 0 : V4L2_BUF_FLAG_ERROR);
        b->ts.tv_sec = exposure.tv_sec;
        b->ts.tv_usec = exposure.tv_nsec / 1000;
        b->state = B_DONE;
        dev.done[dev.nd++] = bi;
        uint64_t one = 1;
        ssize_t w = write(dev.owner, &one, sizeof one);
        logf_("v4l2emu: frame %u (footage %ld) in buffer %d, %u bytes%s", seq, k % foot.n, bi, used, w == sizeof one ? "" : ", signal failed");
        pthread_cond_broadcast(&dev.cv);
    }
    pthread_mutex_unlock(&dev.mu);
    free(scratch);
    free(scratch2);
    return NULL;
}

/* Stop streaming (STREAMOFF, close, unplug): every buffer goes back to the application. */
void stream_off_locked(void) {
    if (dev.streaming || dev.producer) {
        dev.stop = 1;
        pthread_cond_broadcast(&dev.cv);
        pthread_t t = dev.producer;
        dev.producer = 0;
        if (t && !pthread_equal(t, pthread_self())) {
            pthread_mutex_unlock(&dev.mu);
            pthread_join(t, NULL);
            pthread_mutex_lock(&dev.mu);
        }
    }
    dev.streaming = 0;
    for (int i = 0; i < dev.nbufs; i++) dev.bufs[i].state = B_USER;
    dev.nq = dev.nd = 0;
    if (dev.owner >= 0) {
        uint64_t v;
        while (real_read(dev.owner, &v, sizeof v) > 0) {}
    }
}

void release_buffers_locked(void) {
    if (dev.mem) munmap(dev.mem, dev.memlen);
    if (dev.memfd >= 0) real_close(dev.memfd);
    dev.mem = NULL; dev.memfd = -1; dev.memlen = 0; dev.nbufs = 0;
    if (dev.lockfd >= 0) { flock(dev.lockfd, LOCK_UN); real_close(dev.lockfd); dev.lockfd = -1; }
    dev.owner = -1;
}

void lock_path(char *out, size_t n) {
    snprintf(out, n, "%s/v4l2emu-video%d.lock", cfg.lock_dir, dev.index);
}

/* Another process streams from "the same camera" (holds its lock file)? */
int busy_elsewhere(void) {
    char p[512];
    lock_path(p, sizeof p);
    int fd = real_open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return 0;
    int busy = flock(fd, LOCK_EX | LOCK_NB) != 0;
    if (!busy) flock(fd, LOCK_UN);
    real_close(fd);
    return busy;
}

int start_producer(void) { return pthread_create(&dev.producer, NULL, producer_main, NULL); }
