/*
 * v4l2emu: a V4L2 USB-camera emulator loaded with LD_PRELOAD, for perch's camera tests.
 *
 * Test tooling only: never linked into perch. These machines have no camera and no V4L2 in the
 * kernel, so this library answers, inside the process it is preloaded into, for one capture device
 * `/dev/video<N>` that does not exist on disk. The real code path of the application (nokhwa's V4L2
 * backend, the v4l crate, perch's own mmap queue) runs unchanged against it: the same open/ioctl/mmap/
 * poll calls, the same structures, the same errno values a UVC camera's driver gives.
 *
 * It serves real footage: the JPEG frames of a folder (datasets/vtest/img1), as MJPEG (the files'
 * bytes, or re-encoded "webcam style" without Huffman tables) and as YUYV 4:2:2 (decoded with libjpeg,
 * BT.601 limited range), at the frame rate the application set, with monotonic driver timestamps.
 * Faults come from environment variables (see README.md next to this file).
 *
 * Intercepted: open/open64/openat/openat64 (+ the _2 fortify variants), close, read, ioctl, syscall
 * (the v4l crate issues ioctls through syscall(SYS_ioctl)), mmap/mmap64, poll, opendir/readdir/
 * readdir64/closedir (so a scan of /dev lists the device). munmap needs no hook: buffers are real
 * shared mappings of a memfd.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */
#include "v4l2emu.h"

#include <sys/sysmacros.h>

int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
int (*real_close)(int);
ssize_t (*real_read)(int, void *, size_t);
static int (*real_ioctl)(int, unsigned long, ...);
static long (*real_syscall)(long, ...);
void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static void *(*real_mmap64)(void *, size_t, int, int, int, off64_t);
static int (*real_poll)(struct pollfd *, nfds_t, int);
DIR *(*real_opendir)(const char *);
struct dirent *(*real_readdir)(DIR *);
static struct dirent64 *(*real_readdir64)(DIR *);
int (*real_closedir)(DIR *);

static void resolve_real(void) {
    if (real_close) return;
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_openat64 = dlsym(RTLD_NEXT, "openat64");
    real_read = dlsym(RTLD_NEXT, "read");
    real_ioctl = dlsym(RTLD_NEXT, "ioctl");
    real_syscall = dlsym(RTLD_NEXT, "syscall");
    real_mmap = dlsym(RTLD_NEXT, "mmap");
    real_mmap64 = dlsym(RTLD_NEXT, "mmap64");
    real_poll = dlsym(RTLD_NEXT, "poll");
    real_opendir = dlsym(RTLD_NEXT, "opendir");
    real_readdir = dlsym(RTLD_NEXT, "readdir");
    real_readdir64 = dlsym(RTLD_NEXT, "readdir64");
    real_closedir = dlsym(RTLD_NEXT, "closedir");
    real_close = dlsym(RTLD_NEXT, "close");
}

struct config cfg;

static long env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    return strtol(v, NULL, 10);
}

void logf_(const char *fmt, ...) {
    if (!cfg.log) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(2, buf, n);
    (void)w;
}

static pthread_mutex_t dir_mu = PTHREAD_MUTEX_INITIALIZER;
static DIR *dev_dirs[16];
static int dev_dir_done[16];

static int ours(int fd) { return cfg.enabled && fd >= 0 && fd < MAX_FD && handles[fd].used; }

/* glibc declares these path arguments nonnull, so the compiler would drop a plain NULL test; callers do
 * pass NULL (Rust's std probes with statx(0, NULL, ...), expecting EFAULT). Read through a volatile. */
static int given(const char *p) {
    const char *volatile v = p;
    return v != NULL;
}

static int parse_video_index(const char *path) {
    int n, len;
    if (sscanf(path, "/dev/video%d%n", &n, &len) == 1 && path[len] == 0) return n;
    return -1;
}

static int memfd_with(const char *text) {
    int fd = memfd_create("v4l2emu-sysfs", MFD_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t w = write(fd, text, strlen(text));
    (void)w;
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* The sysfs files tools read about the node: its name (v4l crate, nokhwa) and uevent (v4l2-ctl). */
static int sysfs_text(const char *path, int idx, char *text, size_t cap) {
    char p[96];
    snprintf(p, sizeof p, "/sys/class/video4linux/video%d/name", idx);
    if (!strcmp(path, p)) { snprintf(text, cap, "%s\n", cfg.card); return 1; }
    snprintf(p, sizeof p, "/sys/class/video4linux/video%d/index", idx);
    if (!strcmp(path, p)) { snprintf(text, cap, "0\n"); return 1; }
    char u1[96], u2[96];
    snprintf(u1, sizeof u1, "/sys/dev/char/81:%d/uevent", idx);
    snprintf(u2, sizeof u2, "/sys/class/video4linux/video%d/uevent", idx);
    if (!strcmp(path, u1) || !strcmp(path, u2)) {
        snprintf(text, cap, "MAJOR=81\nMINOR=%d\nDEVNAME=video%d\n", idx, idx);
        return 1;
    }
    return 0;
}

/* -1: not our path; otherwise the fd or -1 with errno set via *handled. */
static int emu_open(const char *path, int flags, int *handled) {
    *handled = 0;
    if (!cfg.enabled || !given(path)) return -1;
    int idx = parse_video_index(path);
    pthread_mutex_lock(&dev.mu);
    int present = dev.present, cur = dev.index;
    pthread_mutex_unlock(&dev.mu);
    if (idx >= 0) {
        if (!present || idx != cur) return -1; /* the real open says ENOENT */
        *handled = 1;
        int fd = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK | ((flags & O_CLOEXEC) ? EFD_CLOEXEC : 0));
        if (fd < 0) return -1;
        if (fd >= MAX_FD) { real_close(fd); errno = EMFILE; return -1; }
        handles[fd].used = 1;
        pthread_mutex_lock(&dev.mu);
        handles[fd].gen = dev.gen;
        pthread_mutex_unlock(&dev.mu);
        handles[fd].nonblock = (flags & O_NONBLOCK) != 0;
        logf_("v4l2emu: open %s -> fd %d", path, fd);
        return fd;
    }
    char text[256];
    if (present && sysfs_text(path, cur, text, sizeof text)) {
        *handled = 1;
        return memfd_with(text);
    }
    return -1;
}

#define OPEN_BODY(REAL, ...)                                   \
    resolve_real();                                            \
    mode_t mode = 0;                                           \
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {\
        va_list ap;                                            \
        va_start(ap, flags);                                   \
        mode = va_arg(ap, mode_t);                             \
        va_end(ap);                                            \
    }                                                          \
    int handled;                                               \
    int fd = emu_open(path, flags, &handled);                  \
    if (handled) return fd;                                    \
    return REAL(__VA_ARGS__, mode);

EXPORT int open(const char *path, int flags, ...) { OPEN_BODY(real_open, path, flags) }
EXPORT int open64(const char *path, int flags, ...) { OPEN_BODY(real_open64, path, flags) }
EXPORT int openat(int dirfd, const char *path, int flags, ...) {
    if (!given(path) || path[0] != '/') { resolve_real(); va_list ap; va_start(ap, flags); mode_t m = va_arg(ap, mode_t); va_end(ap); return real_openat(dirfd, path, flags, m); }
    OPEN_BODY(real_openat, dirfd, path, flags)
}
EXPORT int openat64(int dirfd, const char *path, int flags, ...) {
    if (!given(path) || path[0] != '/') { resolve_real(); va_list ap; va_start(ap, flags); mode_t m = va_arg(ap, mode_t); va_end(ap); return real_openat64(dirfd, path, flags, m); }
    OPEN_BODY(real_openat64, dirfd, path, flags)
}
EXPORT int __open_2(const char *path, int flags) { return open(path, flags); }
EXPORT int __open64_2(const char *path, int flags) { return open64(path, flags); }

static FILE *(*real_fopen)(const char *, const char *);
static FILE *(*real_fopen64)(const char *, const char *);

/* fopen (C++ streams, C tools) opens inside glibc without calling open(): serve the sysfs files here too. */
static FILE *emu_fopen(const char *path, const char *mode, FILE *(*real)(const char *, const char *)) {
    if (cfg.enabled && given(path) && !strncmp(path, "/sys/", 5)) {
        pthread_mutex_lock(&dev.mu);
        int present = dev.present, cur = dev.index;
        pthread_mutex_unlock(&dev.mu);
        char text[256];
        if (present && sysfs_text(path, cur, text, sizeof text)) {
            int fd = memfd_with(text);
            return fd < 0 ? NULL : fdopen(fd, "r");
        }
    }
    return real(path, mode);
}

EXPORT FILE *fopen(const char *path, const char *mode) {
    resolve_real();
    if (!real_fopen) real_fopen = dlsym(RTLD_NEXT, "fopen");
    return emu_fopen(path, mode, real_fopen);
}

EXPORT FILE *fopen64(const char *path, const char *mode) {
    resolve_real();
    if (!real_fopen64) real_fopen64 = dlsym(RTLD_NEXT, "fopen64");
    return emu_fopen(path, mode, real_fopen64);
}

EXPORT int close(int fd) {
    resolve_real();
    if (ours(fd)) {
        pthread_mutex_lock(&dev.mu);
        if (dev.owner == fd) {
            stream_off_locked();
            release_buffers_locked();
        }
        handles[fd].used = 0;
        pthread_mutex_unlock(&dev.mu);
        logf_("v4l2emu: close fd %d", fd);
    }
    return real_close(fd);
}

EXPORT ssize_t read(int fd, void *buf, size_t n) {
    resolve_real();
    if (ours(fd)) { errno = EINVAL; return -1; } /* no V4L2_CAP_READWRITE: streaming I/O only */
    return real_read(fd, buf, n);
}

EXPORT int ioctl(int fd, unsigned long req, ...) {
    resolve_real();
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (ours(fd)) return emu_ioctl(fd, req, arg);
    return real_ioctl(fd, req, arg);
}

EXPORT long syscall(long number, ...) {
    resolve_real();
    va_list ap;
    va_start(ap, number);
    long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
    long d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
    va_end(ap);
    if (number == SYS_ioctl && ours((int)a)) return emu_ioctl((int)a, (unsigned long)b, (void *)c);
    return real_syscall(number, a, b, c, d, e, f);
}

static void *emu_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    pthread_mutex_lock(&dev.mu);
    int err = 0;
    if (!dev.present || handles[fd].gen != dev.gen) err = ENODEV;
    else if (dev.owner != fd || dev.memfd < 0) err = EINVAL;
    else {
        int ok = 0;
        for (int i = 0; i < dev.nbufs; i++) ok |= (off_t)dev.bufs[i].offset == off && len <= dev.bufs[i].length + 4096;
        if (!ok) err = EINVAL;
    }
    int mfd = dev.memfd;
    pthread_mutex_unlock(&dev.mu);
    if (err) { errno = err; return MAP_FAILED; }
    return real_mmap(addr, len, prot, flags, mfd, off);
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    resolve_real();
    if (ours(fd)) return emu_mmap(addr, len, prot, flags, fd, off);
    return real_mmap(addr, len, prot, flags, fd, off);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off) {
    resolve_real();
    if (ours(fd)) return emu_mmap(addr, len, prot, flags, fd, (off_t)off);
    return real_mmap64(addr, len, prot, flags, fd, off);
}

/* The fd is an eventfd the producer signals per filled buffer, so poll/epoll/select wait for real.
 * poll additionally reports what a V4L2 driver does: POLLERR when not streaming, POLLERR|POLLHUP
 * once the device is gone. */
EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout) {
    resolve_real();
    int r = real_poll(fds, n, timeout);
    if (r < 0 || !cfg.enabled) return r;
    for (nfds_t i = 0; i < n; i++) {
        if (!ours(fds[i].fd)) continue;
        pthread_mutex_lock(&dev.mu);
        short extra = (!dev.present || handles[fds[i].fd].gen != dev.gen) ? (POLLERR | POLLHUP) : (dev.owner != fds[i].fd || !dev.streaming) ? POLLERR : 0;
        pthread_mutex_unlock(&dev.mu);
        if (extra) {
            if (!fds[i].revents) r++;
            fds[i].revents |= extra;
        }
    }
    return r;
}

/* The node itself: a character device 81:<N> (the V4L2 major) in group video, as udev creates it.
 * Tools check it with stat() before opening (v4l2-ctl does). */
static int node_path(const char *path) {
    if (!cfg.enabled || !given(path)) return 0;
    int idx = parse_video_index(path);
    if (idx < 0) return 0;
    pthread_mutex_lock(&dev.mu);
    int hit = dev.present && idx == dev.index;
    pthread_mutex_unlock(&dev.mu);
    return hit;
}

static int node_index(void) {
    pthread_mutex_lock(&dev.mu);
    int i = dev.index;
    pthread_mutex_unlock(&dev.mu);
    return i;
}

static void fake_stat64(struct stat64 *st) {
    memset(st, 0, sizeof *st);
    st->st_mode = S_IFCHR | 0660;
    st->st_rdev = makedev(81, node_index());
    st->st_gid = 44;
    st->st_nlink = 1;
    st->st_blksize = 4096;
}

static int (*real_stat)(const char *, struct stat *);
static int (*real_stat64)(const char *, struct stat64 *);
static int (*real_lstat)(const char *, struct stat *);
static int (*real_lstat64)(const char *, struct stat64 *);
static int (*real_fstat)(int, struct stat *);
static int (*real_fstat64)(int, struct stat64 *);
static int (*real_fstatat)(int, const char *, struct stat *, int);
static int (*real_fstatat64)(int, const char *, struct stat64 *, int);
static int (*real_statx)(int, const char *, int, unsigned, struct statx *);
static int (*real_access)(const char *, int);

static void resolve_stat(void) {
    if (real_access) return;
    real_stat = dlsym(RTLD_NEXT, "stat");
    real_stat64 = dlsym(RTLD_NEXT, "stat64");
    real_lstat = dlsym(RTLD_NEXT, "lstat");
    real_lstat64 = dlsym(RTLD_NEXT, "lstat64");
    real_fstat = dlsym(RTLD_NEXT, "fstat");
    real_fstat64 = dlsym(RTLD_NEXT, "fstat64");
    real_fstatat = dlsym(RTLD_NEXT, "fstatat");
    real_fstatat64 = dlsym(RTLD_NEXT, "fstatat64");
    real_statx = dlsym(RTLD_NEXT, "statx");
    real_access = dlsym(RTLD_NEXT, "access");
}

#define STAT_HOOK(NAME, ARGS, CALL, TEST, TYPE, ST)                      \
    EXPORT int NAME ARGS {                                               \
        resolve_real();                                                  \
        resolve_stat();                                                  \
        if (TEST) { struct stat64 f; fake_stat64(&f); memcpy(ST, &f, sizeof(TYPE) < sizeof f ? sizeof(TYPE) : sizeof f); return 0; } \
        return CALL;                                                     \
    }

/* struct stat and struct stat64 have the same layout on the 64-bit targets this runs on. */
_Static_assert(sizeof(struct stat) == sizeof(struct stat64), "64-bit stat layout");
STAT_HOOK(stat, (const char *p, struct stat *st), real_stat(p, st), node_path(p), struct stat, st)
STAT_HOOK(stat64, (const char *p, struct stat64 *st), real_stat64(p, st), node_path(p), struct stat64, st)
STAT_HOOK(lstat, (const char *p, struct stat *st), real_lstat(p, st), node_path(p), struct stat, st)
STAT_HOOK(lstat64, (const char *p, struct stat64 *st), real_lstat64(p, st), node_path(p), struct stat64, st)
STAT_HOOK(fstat, (int fd, struct stat *st), real_fstat(fd, st), ours(fd), struct stat, st)
STAT_HOOK(fstat64, (int fd, struct stat64 *st), real_fstat64(fd, st), ours(fd), struct stat64, st)
STAT_HOOK(fstatat, (int d, const char *p, struct stat *st, int fl), real_fstatat(d, p, st, fl),
          given(p) && ((p[0] == '/' && node_path(p)) || (p[0] == 0 && (fl & AT_EMPTY_PATH) && ours(d))), struct stat, st)
STAT_HOOK(fstatat64, (int d, const char *p, struct stat64 *st, int fl), real_fstatat64(d, p, st, fl),
          given(p) && ((p[0] == '/' && node_path(p)) || (p[0] == 0 && (fl & AT_EMPTY_PATH) && ours(d))), struct stat64, st)

EXPORT int statx(int d, const char *p, int fl, unsigned mask, struct statx *sx) {
    resolve_real();
    resolve_stat();
    if (given(p) && ((p[0] == '/' && node_path(p)) || (p[0] == 0 && (fl & AT_EMPTY_PATH) && ours(d)))) {
        memset(sx, 0, sizeof *sx);
        sx->stx_mask = STATX_BASIC_STATS;
        sx->stx_mode = S_IFCHR | 0660;
        sx->stx_nlink = 1;
        sx->stx_gid = 44;
        sx->stx_blksize = 4096;
        sx->stx_rdev_major = 81;
        sx->stx_rdev_minor = node_index();
        return 0;
    }
    /* Rust's std probes for statx with (0, NULL, 0, STATX_ALL, NULL), expecting EFAULT: forward it. */
    return real_statx(d, p, fl, mask, sx);
}

EXPORT int access(const char *p, int mode) {
    resolve_real();
    resolve_stat();
    if (node_path(p)) return 0;
    return real_access(p, mode);
}

static int is_dev_dir(const char *name) { return name && (!strcmp(name, "/dev") || !strcmp(name, "/dev/")); }

EXPORT DIR *opendir(const char *name) {
    resolve_real();
    DIR *d = real_opendir(name);
    if (d && cfg.enabled && is_dev_dir(name)) {
        pthread_mutex_lock(&dir_mu);
        for (int i = 0; i < 16; i++) if (!dev_dirs[i]) { dev_dirs[i] = d; dev_dir_done[i] = 0; break; }
        pthread_mutex_unlock(&dir_mu);
    }
    return d;
}

EXPORT int closedir(DIR *d) {
    resolve_real();
    pthread_mutex_lock(&dir_mu);
    for (int i = 0; i < 16; i++) if (dev_dirs[i] == d) dev_dirs[i] = NULL;
    pthread_mutex_unlock(&dir_mu);
    return real_closedir(d);
}

/* After the real entries of /dev, one more: video<N>, while the device is present. */
static int inject_entry(DIR *d, char *name, size_t cap) {
    int slot = -1;
    pthread_mutex_lock(&dir_mu);
    for (int i = 0; i < 16; i++) if (dev_dirs[i] == d) slot = i;
    int done = slot >= 0 ? dev_dir_done[slot] : 1;
    if (slot >= 0) dev_dir_done[slot] = 1;
    pthread_mutex_unlock(&dir_mu);
    if (done) return 0;
    pthread_mutex_lock(&dev.mu);
    int present = dev.present, idx = dev.index;
    pthread_mutex_unlock(&dev.mu);
    if (!present) return 0;
    snprintf(name, cap, "video%d", idx);
    return 1;
}

EXPORT struct dirent *readdir(DIR *d) {
    resolve_real();
    struct dirent *e = real_readdir(d);
    if (e || !cfg.enabled) return e;
    static __thread struct dirent fake;
    memset(&fake, 0, sizeof fake);
    if (!inject_entry(d, fake.d_name, sizeof fake.d_name)) return NULL;
    fake.d_ino = 0x7fe0;
    fake.d_type = DT_CHR;
    fake.d_reclen = sizeof fake;
    return &fake;
}

EXPORT struct dirent64 *readdir64(DIR *d) {
    resolve_real();
    struct dirent64 *e = real_readdir64(d);
    if (e || !cfg.enabled) return e;
    static __thread struct dirent64 fake;
    memset(&fake, 0, sizeof fake);
    if (!inject_entry(d, fake.d_name, sizeof fake.d_name)) return NULL;
    fake.d_ino = 0x7fe0;
    fake.d_type = DT_CHR;
    fake.d_reclen = sizeof fake;
    return &fake;
}

__attribute__((constructor)) static void v4l2emu_init(void) {
    resolve_real();
    cfg.frames_dir = getenv("V4L2EMU_FRAMES");
    if (!cfg.frames_dir || !*cfg.frames_dir) return; /* inert without footage */
    cfg.enabled = 1;
    cfg.index = (int)env_long("V4L2EMU_INDEX", 0);
    cfg.card = getenv("V4L2EMU_CARD") && *getenv("V4L2EMU_CARD") ? getenv("V4L2EMU_CARD") : "Perch Emulated Camera";
    const char *f = getenv("V4L2EMU_FORMATS");
    cfg.allow_mjpeg = !f || strstr(f, "mjpeg") != NULL;
    cfg.allow_yuyv = !f || strstr(f, "yuyv") != NULL;
    const char *mj = getenv("V4L2EMU_MJPEG");
    cfg.webcam_mjpeg = mj && !strcmp(mj, "webcam");
    cfg.unplug_after = env_long("V4L2EMU_UNPLUG_AFTER", -1);
    cfg.replug_ms = env_long("V4L2EMU_REPLUG_MS", -1);
    cfg.replug_index = (int)env_long("V4L2EMU_REPLUG_INDEX", cfg.index);
    cfg.byid = getenv("V4L2EMU_BYID") && *getenv("V4L2EMU_BYID") ? getenv("V4L2EMU_BYID") : NULL;
    const char *c = getenv("V4L2EMU_CORRUPT_AT");
    while (c && *c && cfg.n_corrupt < 16) {
        char *end;
        cfg.corrupt_at[cfg.n_corrupt++] = strtol(c, &end, 10);
        c = *end == ',' ? end + 1 : NULL;
    }
    cfg.stall_at = env_long("V4L2EMU_STALL_AT", -1);
    cfg.stall_ms = env_long("V4L2EMU_STALL_MS", 0);
    cfg.lock_dir = getenv("V4L2EMU_LOCK_DIR") && *getenv("V4L2EMU_LOCK_DIR") ? getenv("V4L2EMU_LOCK_DIR") : "/tmp";
    cfg.log = env_long("V4L2EMU_LOG", 0) != 0;
    load_footage();
    if (!cfg.enabled) return;
    build_modes();
    if (n_modes == 0) { fprintf(stderr, "v4l2emu: V4L2EMU_FORMATS=%s offers nothing\n", f); cfg.enabled = 0; return; }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&dev.cv, &ca);
    pthread_condattr_destroy(&ca);
    dev.present = 1;
    dev.index = cfg.index;
    default_format();
    udev_link();
    logf_("v4l2emu: /dev/video%d: %d frames of %dx%d from %s", dev.index, foot.n, foot.width, foot.height, cfg.frames_dir);
}
