/* What the load generators (loadgen.c, hubload.c) measure the same way:
 * the monotonic clock, a latency histogram, and the CPU time and memory of
 * a process from /proc. Header-only: each generator is one file. */
#ifndef DX_BENCH_LOAD_STATS_H
#define DX_BENCH_LOAD_STATS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Latency histogram: exact below 128 ns, then 64 sub-buckets per power of
 * two (at most 1.6% error), over the whole uint64 range. */
#define H_SUB 6
#define H_N (128 + (64 - 7) * 64)
struct hist {
  uint64_t b[H_N];
  uint64_t n, max;
};

static inline unsigned hist_index(uint64_t v) {
  if (v < 128) return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = msb - H_SUB;
  return 128u + (msb - 7u) * 64u + (unsigned)((v >> shift) - 64u);
}

static inline uint64_t hist_value(unsigned i) {
  if (i < 128) return i;
  unsigned e = (i - 128u) / 64u, shift = e + 1u;
  uint64_t top = (i - 128u) % 64u + 64u;
  return (top << shift) + ((1ull << shift) >> 1); /* bucket midpoint */
}

static inline void hist_add(struct hist *h, uint64_t v) {
  h->b[hist_index(v)]++;
  h->n++;
  if (v > h->max) h->max = v;
}

/* The p-quantile (0..1) in microseconds. */
static inline double hist_pct_us(const struct hist *h, double p) {
  if (!h->n) return 0;
  uint64_t want = (uint64_t)ceil(p * (double)h->n), acc = 0;
  if (want < 1) want = 1;
  for (unsigned i = 0; i < H_N; i++) {
    acc += h->b[i];
    if (acc >= want) {
      uint64_t v = hist_value(i);
      return (double)(v < h->max ? v : h->max) / 1000.0; /* midpoints may pass max */
    }
  }
  return (double)h->max / 1000.0;
}

/* utime+stime of a process in seconds, or -1. */
static inline double proc_cpu_s(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the command name may contain spaces */
  if (!p) return -1;
  unsigned long long ut = 0, st = 0;
  /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt
   * majflt cmajflt utime(14) stime(15) */
  if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Resident memory of a process in KiB (VmRSS), or -1. */
static inline long proc_rss_kb(int pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

/* This process's user+system CPU time in seconds. */
static inline double self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

#endif
