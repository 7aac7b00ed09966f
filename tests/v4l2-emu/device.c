/* v4l2emu: what the camera offers (formats, sizes, rates, controls) and the V4L2 ioctls. */
#include "v4l2emu.h"

struct mode modes[MAX_MODES];
int n_modes;

static void add_mode(uint32_t fourcc, uint32_t w, uint32_t h, const uint32_t *fps, int nfps) {
    for (int i = 0; i < n_modes; i++)
        if (modes[i].fourcc == fourcc && modes[i].w == w && modes[i].h == h) return;
    struct mode *m = &modes[n_modes++];
    m->fourcc = fourcc; m->w = w; m->h = h; m->nfps = nfps;
    memcpy(m->fps, fps, nfps * sizeof(uint32_t));
}

/* Like a USB 2 webcam: MJPEG at every size up to 30 fps, uncompressed YUYV slower at larger sizes. */
void build_modes(void) {
    static const uint32_t all[] = {30, 15, 10, 5}, mid[] = {15, 10, 5}, low[] = {10, 5};
    if (cfg.allow_mjpeg) {
        add_mode(V4L2_PIX_FMT_MJPEG, foot.width, foot.height, all, 4);
        add_mode(V4L2_PIX_FMT_MJPEG, 640, 480, all, 4);
        add_mode(V4L2_PIX_FMT_MJPEG, 320, 240, all, 4);
    }
    if (cfg.allow_yuyv) {
        add_mode(V4L2_PIX_FMT_YUYV, foot.width, foot.height, low, 2);
        add_mode(V4L2_PIX_FMT_YUYV, 640, 480, mid, 3);
        add_mode(V4L2_PIX_FMT_YUYV, 320, 240, all, 4);
    }
}

const struct mode *find_mode(uint32_t fourcc, uint32_t w, uint32_t h) {
    for (int i = 0; i < n_modes; i++)
        if (modes[i].fourcc == fourcc && modes[i].w == w && modes[i].h == h) return &modes[i];
    return NULL;
}

static int has_fourcc(uint32_t fourcc) {
    for (int i = 0; i < n_modes; i++) if (modes[i].fourcc == fourcc) return 1;
    return 0;
}

void default_format(void) {
    const struct mode *m = &modes[0];
    dev.fourcc = m->fourcc; dev.width = m->w; dev.height = m->h; dev.fps = m->fps[0];
    dev.brightness = 128; dev.contrast = 32;
}

static void fill_pix(struct v4l2_pix_format *p) {
    memset(p, 0, sizeof *p);
    p->width = dev.width;
    p->height = dev.height;
    p->pixelformat = dev.fourcc;
    p->field = V4L2_FIELD_NONE;
    p->bytesperline = dev.fourcc == V4L2_PIX_FMT_YUYV ? dev.width * 2 : 0;
    p->sizeimage = sizeimage(dev.fourcc, dev.width, dev.height);
    p->colorspace = dev.fourcc == V4L2_PIX_FMT_MJPEG ? V4L2_COLORSPACE_JPEG : V4L2_COLORSPACE_SRGB;
    if (dev.fourcc == V4L2_PIX_FMT_YUYV) {
        p->ycbcr_enc = V4L2_YCBCR_ENC_601;
        p->quantization = V4L2_QUANTIZATION_LIM_RANGE;
    }
}

/* The driver's choice for a requested format: the pixel format if offered (else the first), the
 * nearest offered size, the rate kept if offered (else the fastest). */
static void adjust(uint32_t *fourcc, uint32_t *w, uint32_t *h, uint32_t *fps) {
    if (!has_fourcc(*fourcc)) *fourcc = modes[0].fourcc;
    const struct mode *best = NULL;
    long bestd = 0;
    for (int i = 0; i < n_modes; i++) {
        if (modes[i].fourcc != *fourcc) continue;
        long d = labs((long)modes[i].w - (long)*w) + labs((long)modes[i].h - (long)*h);
        if (!best || d < bestd) { best = &modes[i]; bestd = d; }
    }
    *w = best->w; *h = best->h;
    for (int i = 0; i < best->nfps; i++) if (best->fps[i] == *fps) return;
    *fps = best->fps[0];
}

static const char *ioctl_name(unsigned long r) {
    switch (r) {
#define N(x) case x: return #x;
        N(VIDIOC_QUERYCAP) N(VIDIOC_ENUM_FMT) N(VIDIOC_G_FMT) N(VIDIOC_S_FMT) N(VIDIOC_TRY_FMT)
        N(VIDIOC_ENUM_FRAMESIZES) N(VIDIOC_ENUM_FRAMEINTERVALS) N(VIDIOC_G_PARM) N(VIDIOC_S_PARM)
        N(VIDIOC_REQBUFS) N(VIDIOC_QUERYBUF) N(VIDIOC_QBUF) N(VIDIOC_DQBUF) N(VIDIOC_STREAMON)
        N(VIDIOC_STREAMOFF) N(VIDIOC_QUERYCTRL) N(VIDIOC_QUERY_EXT_CTRL) N(VIDIOC_G_CTRL) N(VIDIOC_S_CTRL)
        N(VIDIOC_QUERYMENU) N(VIDIOC_G_INPUT) N(VIDIOC_S_INPUT) N(VIDIOC_ENUMINPUT) N(VIDIOC_G_EXT_CTRLS)
#undef N
    default: return "?";
    }
}

struct ctrl { uint32_t id; const char *name; int32_t min, max, step, def; int32_t *value; };
static struct ctrl ctrls[] = {
    {V4L2_CID_BRIGHTNESS, "Brightness", 0, 255, 1, 128, &dev.brightness},
    {V4L2_CID_CONTRAST, "Contrast", 0, 95, 1, 32, &dev.contrast},
};
#define N_CTRLS (sizeof ctrls / sizeof ctrls[0])

static struct ctrl *find_ctrl(uint32_t id, int next) {
    if (!next) {
        for (size_t i = 0; i < N_CTRLS; i++) if (ctrls[i].id == id) return &ctrls[i];
        return NULL;
    }
    struct ctrl *best = NULL;
    for (size_t i = 0; i < N_CTRLS; i++)
        if (ctrls[i].id > id && (!best || ctrls[i].id < best->id)) best = &ctrls[i];
    return best;
}

/* Returns 0 or an errno value. Called with dev.mu held. */
static int do_ioctl(int fd, unsigned long req, void *arg) {
    struct handle *h = &handles[fd];
    if (!dev.present || h->gen != dev.gen) return ENODEV;
    switch (req) {
    case VIDIOC_QUERYCAP: {
        struct v4l2_capability *c = arg;
        memset(c, 0, sizeof *c);
        snprintf((char *)c->driver, sizeof c->driver, "v4l2emu");
        snprintf((char *)c->card, sizeof c->card, "%s", cfg.card);
        snprintf((char *)c->bus_info, sizeof c->bus_info, "usb-v4l2emu-1");
        c->version = (6 << 16) | (1 << 8);
        c->device_caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
        c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
        return 0;
    }
    case VIDIOC_ENUM_FMT: {
        struct v4l2_fmtdesc *f = arg;
        if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return EINVAL;
        uint32_t seen[4];
        uint32_t n = 0;
        for (int i = 0; i < n_modes; i++) {
            int dup = 0;
            for (uint32_t j = 0; j < n; j++) dup |= seen[j] == modes[i].fourcc;
            if (dup) continue;
            if (n == f->index) {
                uint32_t idx = f->index, type = f->type;
                memset(f, 0, sizeof *f);
                f->index = idx; f->type = type;
                f->pixelformat = modes[i].fourcc;
                f->flags = modes[i].fourcc == V4L2_PIX_FMT_MJPEG ? V4L2_FMT_FLAG_COMPRESSED : 0;
                snprintf((char *)f->description, sizeof f->description, "%s",
                         modes[i].fourcc == V4L2_PIX_FMT_MJPEG ? "Motion-JPEG" : "YUYV 4:2:2");
                return 0;
            }
            seen[n++] = modes[i].fourcc;
        }
        return EINVAL;
    }
    case VIDIOC_ENUM_FRAMESIZES: {
        struct v4l2_frmsizeenum *s = arg;
        uint32_t n = 0;
        for (int i = 0; i < n_modes; i++) {
            if (modes[i].fourcc != s->pixel_format) continue;
            if (n++ == s->index) {
                s->type = V4L2_FRMSIZE_TYPE_DISCRETE;
                s->discrete.width = modes[i].w;
                s->discrete.height = modes[i].h;
                return 0;
            }
        }
        return EINVAL;
    }
    case VIDIOC_ENUM_FRAMEINTERVALS: {
        struct v4l2_frmivalenum *v = arg;
        const struct mode *m = find_mode(v->pixel_format, v->width, v->height);
        if (!m || v->index >= (uint32_t)m->nfps) return EINVAL;
        v->type = V4L2_FRMIVAL_TYPE_DISCRETE;
        v->discrete.numerator = 1;
        v->discrete.denominator = m->fps[v->index];
        return 0;
    }
    case VIDIOC_G_FMT: {
        struct v4l2_format *f = arg;
        if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return EINVAL;
        fill_pix(&f->fmt.pix);
        return 0;
    }
    case VIDIOC_S_FMT:
    case VIDIOC_TRY_FMT: {
        struct v4l2_format *f = arg;
        if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return EINVAL;
        uint32_t fourcc = f->fmt.pix.pixelformat, w = f->fmt.pix.width, hh = f->fmt.pix.height, fps = dev.fps;
        adjust(&fourcc, &w, &hh, &fps);
        if (req == VIDIOC_S_FMT) {
            /* As vb2: no format change while buffers exist; none while another process streams. */
            if (dev.nbufs > 0 || (dev.owner >= 0 && dev.owner != fd) || (dev.owner < 0 && busy_elsewhere())) return EBUSY;
            dev.fourcc = fourcc; dev.width = w; dev.height = hh; dev.fps = fps;
            fill_pix(&f->fmt.pix);
        } else {
            uint32_t of = dev.fourcc, ow = dev.width, oh = dev.height;
            dev.fourcc = fourcc; dev.width = w; dev.height = hh;
            fill_pix(&f->fmt.pix);
            dev.fourcc = of; dev.width = ow; dev.height = oh;
        }
        return 0;
    }
    case VIDIOC_G_PARM:
    case VIDIOC_S_PARM: {
        struct v4l2_streamparm *p = arg;
        if (p->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return EINVAL;
        if (req == VIDIOC_S_PARM) {
            if (dev.streaming || (dev.owner >= 0 && dev.owner != fd) || (dev.owner < 0 && busy_elsewhere())) return EBUSY;
            struct v4l2_fract t = p->parm.capture.timeperframe;
            uint32_t fps = t.numerator ? (t.denominator + t.numerator / 2) / t.numerator : dev.fps;
            uint32_t fourcc = dev.fourcc, w = dev.width, hh = dev.height;
            const struct mode *m = find_mode(fourcc, w, hh);
            uint32_t best = m->fps[0];
            for (int i = 0; i < m->nfps; i++)
                if (labs((long)m->fps[i] - (long)fps) < labs((long)best - (long)fps)) best = m->fps[i];
            dev.fps = best;
        }
        memset(&p->parm, 0, sizeof p->parm);
        p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
        p->parm.capture.timeperframe.numerator = 1;
        p->parm.capture.timeperframe.denominator = dev.fps;
        p->parm.capture.readbuffers = 0;
        return 0;
    }
    case VIDIOC_REQBUFS: {
        struct v4l2_requestbuffers *r = arg;
        if (r->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return EINVAL;
        if (r->memory != V4L2_MEMORY_MMAP) return EINVAL;
        if (dev.owner >= 0 && dev.owner != fd) return EBUSY;
        if (dev.streaming) return EBUSY;
#ifdef V4L2_BUF_CAP_SUPPORTS_MMAP
        r->capabilities = V4L2_BUF_CAP_SUPPORTS_MMAP;
#endif
        if (r->count == 0) {
            if (dev.owner == fd) release_buffers_locked();
            return 0;
        }
        if (dev.owner != fd) {
            char p[512];
            lock_path(p, sizeof p);
            int lfd = real_open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
            if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) != 0) { real_close(lfd); return EBUSY; }
            dev.lockfd = lfd;
        } else {
            int lfd = dev.lockfd;
            dev.lockfd = -1;
            release_buffers_locked();
            dev.lockfd = lfd;
        }
        uint32_t n = r->count < 2 ? 2 : r->count > MAX_BUFS ? MAX_BUFS : r->count;
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        size_t len = (sizeimage(dev.fourcc, dev.width, dev.height) + page - 1) / page * page;
        int mfd = memfd_create("v4l2emu-buffers", MFD_CLOEXEC);
        if (mfd < 0 || ftruncate(mfd, (off_t)(len * n)) != 0) { if (mfd >= 0) real_close(mfd); return ENOMEM; }
        void *mem = real_mmap(NULL, len * n, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        if (mem == MAP_FAILED) { real_close(mfd); return ENOMEM; }
        dev.memfd = mfd; dev.mem = mem; dev.memlen = len * n; dev.nbufs = n; dev.owner = fd;
        for (uint32_t i = 0; i < n; i++) {
            memset(&dev.bufs[i], 0, sizeof dev.bufs[i]);
            dev.bufs[i].state = B_USER;
            dev.bufs[i].offset = i * len;
            dev.bufs[i].length = sizeimage(dev.fourcc, dev.width, dev.height);
        }
        r->count = n;
        return 0;
    }
    case VIDIOC_QUERYBUF:
    case VIDIOC_QBUF: {
        struct v4l2_buffer *b = arg;
        if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || b->memory != V4L2_MEMORY_MMAP) return EINVAL;
        if (dev.owner != fd) return dev.owner >= 0 ? EBUSY : EINVAL;
        if (b->index >= (uint32_t)dev.nbufs) return EINVAL;
        struct buf *s = &dev.bufs[b->index];
        if (req == VIDIOC_QBUF) {
            if (s->state != B_USER) return EINVAL;
            s->state = B_QUEUED;
            dev.queued[dev.nq++] = b->index;
        }
        uint32_t idx = b->index;
        memset(b, 0, sizeof *b);
        b->index = idx;
        b->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b->memory = V4L2_MEMORY_MMAP;
        b->m.offset = (uint32_t)s->offset;
        b->length = (uint32_t)s->length;
        b->field = V4L2_FIELD_NONE;
        b->flags = V4L2_BUF_FLAG_MAPPED | V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC |
                   (s->state == B_QUEUED || s->state == B_FILLING ? V4L2_BUF_FLAG_QUEUED : 0) |
                   (s->state == B_DONE ? V4L2_BUF_FLAG_DONE : 0);
        return 0;
    }
    case VIDIOC_DQBUF: {
        struct v4l2_buffer *b = arg;
        if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || b->memory != V4L2_MEMORY_MMAP) return EINVAL;
        if (dev.owner != fd || !dev.streaming) return EINVAL;
        while (dev.nd == 0) {
            if (h->nonblock) return EAGAIN;
            pthread_cond_wait(&dev.cv, &dev.mu);
            if (!dev.present || h->gen != dev.gen) return ENODEV;
            if (!dev.streaming) return EINVAL;
        }
        int bi = dev.done[0];
        memmove(dev.done, dev.done + 1, (--dev.nd) * sizeof(int));
        uint64_t v;
        ssize_t r = real_read(fd, &v, sizeof v);
        (void)r;
        struct buf *s = &dev.bufs[bi];
        s->state = B_USER;
        memset(b, 0, sizeof *b);
        b->index = bi;
        b->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b->memory = V4L2_MEMORY_MMAP;
        b->m.offset = (uint32_t)s->offset;
        b->length = (uint32_t)s->length;
        b->bytesused = s->bytesused;
        b->flags = s->flags & ~V4L2_BUF_FLAG_DONE;
        b->field = V4L2_FIELD_NONE;
        b->timestamp = s->ts;
        b->sequence = s->sequence;
        return 0;
    }
    case VIDIOC_STREAMON: {
        if (*(int *)arg != V4L2_BUF_TYPE_VIDEO_CAPTURE) return EINVAL;
        if (dev.owner != fd || dev.nbufs == 0) return EINVAL;
        if (dev.streaming) return 0;
        dev.streaming = 1;
        dev.stop = 0;
        dev.seq = 0;
        if (start_producer() != 0) { dev.streaming = 0; return ENOMEM; }
        return 0;
    }
    case VIDIOC_STREAMOFF: {
        if (*(int *)arg != V4L2_BUF_TYPE_VIDEO_CAPTURE) return EINVAL;
        if (dev.owner >= 0 && dev.owner != fd) return EBUSY;
        stream_off_locked();
        return 0;
    }
    case VIDIOC_QUERYCTRL: {
        struct v4l2_queryctrl *q = arg;
        int next = (q->id & V4L2_CTRL_FLAG_NEXT_CTRL) != 0;
        struct ctrl *c = find_ctrl(q->id & ~(V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND), next);
        if (!c) return EINVAL;
        memset(q, 0, sizeof *q);
        q->id = c->id; q->type = V4L2_CTRL_TYPE_INTEGER;
        snprintf((char *)q->name, sizeof q->name, "%s", c->name);
        q->minimum = c->min; q->maximum = c->max; q->step = c->step; q->default_value = c->def;
        return 0;
    }
    case VIDIOC_QUERY_EXT_CTRL: {
        struct v4l2_query_ext_ctrl *q = arg;
        int next = (q->id & V4L2_CTRL_FLAG_NEXT_CTRL) != 0;
        struct ctrl *c = find_ctrl(q->id & ~(V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND), next);
        if (!c) return EINVAL;
        memset(q, 0, sizeof *q);
        q->id = c->id; q->type = V4L2_CTRL_TYPE_INTEGER;
        snprintf(q->name, sizeof q->name, "%s", c->name);
        q->minimum = c->min; q->maximum = c->max; q->step = c->step; q->default_value = c->def;
        q->elem_size = 4; q->elems = 1; q->nr_of_dims = 0;
        return 0;
    }
    case VIDIOC_G_CTRL:
    case VIDIOC_S_CTRL: {
        struct v4l2_control *v = arg;
        struct ctrl *c = find_ctrl(v->id, 0);
        if (!c) return EINVAL;
        if (req == VIDIOC_S_CTRL) {
            if (v->value < c->min || v->value > c->max) return ERANGE;
            *c->value = v->value;
        }
        v->value = *c->value;
        return 0;
    }
    case VIDIOC_G_EXT_CTRLS: {
        struct v4l2_ext_controls *e = arg;
        for (uint32_t i = 0; i < e->count; i++) {
            struct ctrl *c = find_ctrl(e->controls[i].id, 0);
            if (!c) { e->error_idx = i; return EINVAL; }
            e->controls[i].value = *c->value;
        }
        return 0;
    }
    case VIDIOC_ENUMINPUT: {
        struct v4l2_input *in = arg;
        if (in->index != 0) return EINVAL;
        memset(in, 0, sizeof *in);
        snprintf((char *)in->name, sizeof in->name, "Camera 1");
        in->type = V4L2_INPUT_TYPE_CAMERA;
        return 0;
    }
    case VIDIOC_G_INPUT: *(int *)arg = 0; return 0;
    case VIDIOC_S_INPUT: return *(int *)arg == 0 ? 0 : EINVAL;
    case VIDIOC_QUERYMENU:
    default:
        return ENOTTY;
    }
}

int emu_ioctl(int fd, unsigned long req, void *arg) {
    pthread_mutex_lock(&dev.mu);
    int err = do_ioctl(fd, req, arg);
    pthread_mutex_unlock(&dev.mu);
    logf_("v4l2emu: fd %d %s -> %s", fd, ioctl_name(req), err ? strerror(err) : "ok");
    if (err) { errno = err; return -1; }
    return 0;
}
