/* v4l2emu: the footage (JPEG frames of a folder) and the conversions to what a camera sends. */
#include "v4l2emu.h"

struct footage foot;

struct jerr { struct jpeg_error_mgr mgr; jmp_buf jb; };
static void jerr_exit(j_common_ptr c) { longjmp(((struct jerr *)c->err)->jb, 1); }
static void jerr_silent(j_common_ptr c, int level) { (void)c; (void)level; }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int load_file(const char *path, unsigned char **out, size_t *len) {
    int fd = real_open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) { real_close(fd); return -1; }
    unsigned char *buf = malloc(st.st_size ? st.st_size : 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t r = real_read(fd, buf + got, st.st_size - got);
        if (r <= 0) break;
        got += r;
    }
    real_close(fd);
    if (!buf || got != (size_t)st.st_size) { free(buf); return -1; }
    *out = buf;
    *len = got;
    return 0;
}

const unsigned char *frame_jpeg(int k, size_t *len) {
    k %= foot.n;
    if (!foot.jpeg[k] && load_file(foot.paths[k], &foot.jpeg[k], &foot.jpeg_len[k]) != 0) {
        fprintf(stderr, "v4l2emu: cannot read %s\n", foot.paths[k]);
        *len = 0;
        return NULL;
    }
    *len = foot.jpeg_len[k];
    return foot.jpeg[k];
}

/* Decode one JPEG into interleaved 3-byte pixels in `space` (JCS_RGB or JCS_YCbCr). */
int decode_jpeg(const unsigned char *data, size_t len, J_COLOR_SPACE space, unsigned char *out, int w, int h) {
    struct jpeg_decompress_struct c;
    struct jerr err;
    c.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jerr_exit;
    err.mgr.emit_message = jerr_silent;
    if (setjmp(err.jb)) { jpeg_destroy_decompress(&c); return -1; }
    jpeg_create_decompress(&c);
    jpeg_mem_src(&c, data, len);
    jpeg_read_header(&c, TRUE);
    c.out_color_space = space;
    jpeg_start_decompress(&c);
    if ((int)c.output_width != w || (int)c.output_height != h || c.output_components != 3) {
        jpeg_destroy_decompress(&c);
        return -1;
    }
    while (c.output_scanline < c.output_height) {
        JSAMPROW row = out + (size_t)c.output_scanline * w * 3;
        jpeg_read_scanlines(&c, &row, 1);
    }
    jpeg_finish_decompress(&c);
    jpeg_destroy_decompress(&c);
    return 0;
}

static int jpeg_size(const unsigned char *data, size_t len, int *w, int *h) {
    struct jpeg_decompress_struct c;
    struct jerr err;
    c.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jerr_exit;
    err.mgr.emit_message = jerr_silent;
    if (setjmp(err.jb)) { jpeg_destroy_decompress(&c); return -1; }
    jpeg_create_decompress(&c);
    jpeg_mem_src(&c, data, len);
    jpeg_read_header(&c, TRUE);
    *w = c.image_width;
    *h = c.image_height;
    jpeg_destroy_decompress(&c);
    return 0;
}

/* Bilinear resample of 3-byte pixels (camera scaler stand-in for the non-native modes). */
void resample3(const unsigned char *src, int sw, int sh, unsigned char *dst, int dw, int dh) {
    for (int y = 0; y < dh; y++) {
        double fy = (y + 0.5) * sh / dh - 0.5;
        if (fy < 0) fy = 0;
        int y0 = (int)fy, y1 = y0 + 1 < sh ? y0 + 1 : sh - 1;
        double wy = fy - y0;
        for (int x = 0; x < dw; x++) {
            double fx = (x + 0.5) * sw / dw - 0.5;
            if (fx < 0) fx = 0;
            int x0 = (int)fx, x1 = x0 + 1 < sw ? x0 + 1 : sw - 1;
            double wx = fx - x0;
            for (int ch = 0; ch < 3; ch++) {
                double a = src[((size_t)y0 * sw + x0) * 3 + ch], b = src[((size_t)y0 * sw + x1) * 3 + ch];
                double c = src[((size_t)y1 * sw + x0) * 3 + ch], d = src[((size_t)y1 * sw + x1) * 3 + ch];
                double v = (a * (1 - wx) + b * wx) * (1 - wy) + (c * (1 - wx) + d * wx) * wy;
                dst[((size_t)y * dw + x) * 3 + ch] = (unsigned char)(v + 0.5);
            }
        }
    }
}

/* JFIF full-range Y'CbCr -> BT.601 limited range, 4:4:4 -> YUYV 4:2:2 (chroma of a pixel pair averaged). */
void ycc_to_yuyv(const unsigned char *ycc, int w, int h, unsigned char *out, int stride) {
    for (int y = 0; y < h; y++) {
        const unsigned char *s = ycc + (size_t)y * w * 3;
        unsigned char *d = out + (size_t)y * stride;
        for (int x = 0; x + 1 < w; x += 2) {
            int y0 = s[x * 3], y1 = s[x * 3 + 3];
            int cb = (s[x * 3 + 1] + s[x * 3 + 4] + 1) / 2, cr = (s[x * 3 + 2] + s[x * 3 + 5] + 1) / 2;
            d[x * 2 + 0] = (unsigned char)(16 + (y0 * 219 + 127) / 255);
            d[x * 2 + 1] = (unsigned char)(128 + ((cb - 128) * 224 + (cb >= 128 ? 127 : -127)) / 255);
            d[x * 2 + 2] = (unsigned char)(16 + (y1 * 219 + 127) / 255);
            d[x * 2 + 3] = (unsigned char)(128 + ((cr - 128) * 224 + (cr >= 128 ? 127 : -127)) / 255);
        }
    }
}

/* Encode RGB to a baseline JPEG with libjpeg's standard Huffman tables into dst (at most cap bytes). */
size_t encode_jpeg(const unsigned char *rgb, int w, int h, unsigned char *dst, size_t cap) {
    struct jpeg_compress_struct c;
    struct jerr err;
    unsigned char *mem = NULL;
    unsigned long memlen = 0;
    c.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jerr_exit;
    if (setjmp(err.jb)) { jpeg_destroy_compress(&c); free(mem); return 0; }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &mem, &memlen);
    c.image_width = w;
    c.image_height = h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 85, TRUE);
    c.optimize_coding = FALSE; /* the standard (Annex K) tables, which MJPEG omits */
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    size_t n = memlen < cap ? memlen : 0;
    if (n) memcpy(dst, mem, n);
    free(mem);
    return n;
}

/* Drop every DHT segment (as UVC cameras do: MJPEG implies the standard tables). In place. */
size_t strip_dht(unsigned char *d, size_t len) {
    size_t i = 2, o = 2;
    while (i + 4 <= len && d[i] == 0xFF) {
        unsigned m = d[i + 1];
        size_t seg = 2 + ((size_t)d[i + 2] << 8 | d[i + 3]);
        if (m == 0xDA) break; /* start of scan: copy the rest */
        if (m != 0xC4) { memmove(d + o, d + i, seg); o += seg; }
        i += seg;
    }
    memmove(d + o, d + i, len - i);
    return o + (len - i);
}

void load_footage(void) {
    DIR *dir = real_opendir(cfg.frames_dir);
    if (!dir) { fprintf(stderr, "v4l2emu: V4L2EMU_FRAMES=%s: cannot open folder\n", cfg.frames_dir); cfg.enabled = 0; return; }
    foot.paths = calloc(MAX_FRAMES, sizeof(char *));
    struct dirent *e;
    while ((e = real_readdir(dir)) && foot.n < MAX_FRAMES) {
        size_t l = strlen(e->d_name);
        if (l > 4 && (!strcasecmp(e->d_name + l - 4, ".jpg") || (l > 5 && !strcasecmp(e->d_name + l - 5, ".jpeg")))) {
            char *p = malloc(strlen(cfg.frames_dir) + l + 2);
            sprintf(p, "%s/%s", cfg.frames_dir, e->d_name);
            foot.paths[foot.n++] = p;
        }
    }
    real_closedir(dir);
    if (foot.n == 0) { fprintf(stderr, "v4l2emu: no .jpg frames in %s\n", cfg.frames_dir); cfg.enabled = 0; return; }
    qsort(foot.paths, foot.n, sizeof(char *), cmp_str);
    foot.jpeg = calloc(foot.n, sizeof(unsigned char *));
    foot.jpeg_len = calloc(foot.n, sizeof(size_t));
    size_t len;
    const unsigned char *first = frame_jpeg(0, &len);
    if (!first || jpeg_size(first, len, &foot.width, &foot.height) != 0 || foot.width % 2) {
        fprintf(stderr, "v4l2emu: %s is not a usable JPEG (even width needed)\n", foot.paths[0]);
        cfg.enabled = 0;
    }
}
