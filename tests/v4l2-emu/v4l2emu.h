/* v4l2emu: shared declarations of the emulator's parts (see v4l2emu.c for the overview). */
#ifndef V4L2EMU_H
#define V4L2EMU_H
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>
#include <setjmp.h>

#define MAX_FD 4096
#define MAX_BUFS 8
#define MAX_FRAMES 100000
#define MAX_MODES 16

/* Everything is hidden (-fvisibility=hidden) except the libc functions the library interposes. */
#define EXPORT __attribute__((visibility("default")))

/* hooks.c: the real libc functions, the configuration, logging */
extern int (*real_open)(const char *, int, ...);
extern int (*real_close)(int);
extern ssize_t (*real_read)(int, void *, size_t);
extern void *(*real_mmap)(void *, size_t, int, int, int, off_t);
extern DIR *(*real_opendir)(const char *);
extern struct dirent *(*real_readdir)(DIR *);
extern int (*real_closedir)(DIR *);

struct config {
    int enabled;
    const char *frames_dir;
    int index;
    const char *card;
    int allow_mjpeg, allow_yuyv;
    int webcam_mjpeg;          /* re-encode with standard tables and strip DHT, as UVC cameras send */
    long unplug_after;         /* unplug when this many frames were produced (-1: never) */
    long replug_ms;            /* replug this long after the unplug (-1: never) */
    int replug_index;
    const char *byid;          /* symlink kept pointing at the node, like udev's /dev/v4l/by-id */
    long corrupt_at[16];
    int n_corrupt;
    long stall_at, stall_ms;
    const char *lock_dir;
    int log;
};
extern struct config cfg;
void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* footage.c: the frames served, and the conversions a camera's pipeline would do */
struct footage {
    int n;
    char **paths;
    unsigned char **jpeg; /* file bytes, loaded on first use */
    size_t *jpeg_len;
    int width, height;    /* native size (from the first frame) */
};
extern struct footage foot;
void load_footage(void);
const unsigned char *frame_jpeg(int k, size_t *len);
int decode_jpeg(const unsigned char *data, size_t len, J_COLOR_SPACE space, unsigned char *out, int w, int h);
size_t encode_jpeg(const unsigned char *rgb, int w, int h, unsigned char *dst, size_t cap);
void resample3(const unsigned char *src, int sw, int sh, unsigned char *dst, int dw, int dh);
void ycc_to_yuyv(const unsigned char *ycc, int w, int h, unsigned char *out, int stride);
size_t strip_dht(unsigned char *d, size_t len);

/* device.c: the modes offered and the ioctls */
struct mode { uint32_t fourcc; uint32_t w, h; uint32_t fps[4]; int nfps; };
extern struct mode modes[MAX_MODES];
extern int n_modes;
void build_modes(void);
const struct mode *find_mode(uint32_t fourcc, uint32_t w, uint32_t h);
void default_format(void);
int emu_ioctl(int fd, unsigned long req, void *arg);

/* stream.c: device state, buffers, the frame producer, unplug/replug */
enum bstate { B_USER, B_QUEUED, B_FILLING, B_DONE };
struct buf {
    enum bstate state;
    size_t offset, length;
    uint32_t bytesused, sequence, flags;
    struct timeval ts;
};

struct handle { int used; int nonblock; unsigned gen; };

struct device {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int present, index;
    unsigned gen;              /* bumped at every unplug: older handles stay dead */
    /* format */
    uint32_t fourcc, width, height, fps;
    int32_t brightness, contrast;
    /* buffers and streaming, owned by one handle (fd) */
    int owner; /* fd, -1: none */
    int lockfd;
    int nbufs;
    struct buf bufs[MAX_BUFS];
    int memfd;
    unsigned char *mem;
    size_t memlen;
    int queued[MAX_BUFS], nq;  /* FIFO of queued buffer indices */
    int done[MAX_BUFS], nd;    /* FIFO of filled buffers */
    int streaming, stop;
    pthread_t producer;
    uint32_t seq;              /* per stream, as a driver numbers frames */
    long produced;             /* frames produced in this process: footage index and fault clock */
    long stall_until_ms;
    int unplugged_once;
};
extern struct device dev;
extern struct handle handles[MAX_FD];
uint32_t sizeimage(uint32_t fourcc, uint32_t w, uint32_t h);
void udev_link(void);
void stream_off_locked(void);
void release_buffers_locked(void);
void lock_path(char *out, size_t n);
int busy_elsewhere(void);
int start_producer(void);

#endif
