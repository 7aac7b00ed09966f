// Measures this CPU's f32 FMA peak with AVX2 (the width perch's x86 kernels use), per core and on
// N threads: 12 independent 8-wide FMA chains per thread, so latency is hidden. Each thread's own
// CPU time is the clock (CLOCK_THREAD_CPUTIME_ID), so the figure holds on a loaded machine (per
// core-second actually received); wall-clock GFLOP/s are printed beside it. The number is the
// denominator of the kernels' efficiency that the derived Jetson Nano estimate uses
// (configs/nano.toml). Build and run: gcc -O2 -mavx2 -mfma -pthread fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak 2
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERS 200000000L

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

struct job { float sink; double cpu_s; };

static void *work(void *arg) {
    struct job *job = arg;
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    __m256 a[12], b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < ITERS / 12; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
    float s = 0, tmp[8];
    for (int i = 0; i < 12; i++) { _mm256_storeu_ps(tmp, a[i]); s += tmp[0]; }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    job->sink = s;
    job->cpu_s = (c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) * 1e-9;
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    for (int threads = 1; threads <= n; threads++) {
        pthread_t t[64];
        struct job jobs[64];
        double t0 = now();
        for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, work, &jobs[i]);
        for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
        double dt = now() - t0, cpu = 0;
        for (int i = 0; i < threads; i++) cpu += jobs[i].cpu_s;
        double flops = (double)threads * (ITERS / 12) * 12 * 8 * 2;
        printf("%d thread(s): %.1f GFLOP/s per CPU-second, %.1f GFLOP/s wall [sink %g]\n", threads, flops / cpu / 1e9,
               flops / dt / 1e9, jobs[0].sink);
    }
    return 0;
}
