/* Terminal progress bar. */
#define _POSIX_C_SOURCE 200809L
#include "apps/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double fg_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void fg_progress_init(fg_progress *p) {
  p->enabled = isatty(STDERR_FILENO);
  p->start = fg_now();
  p->last_draw = 0;
}

void fg_progress_update(fg_progress *p, const char *label, int64_t done, int64_t total, const char *text) {
  if (!p->enabled || total <= 0) return;
  double now = fg_now();
  if (done < total && now - p->last_draw < 0.1) return;
  p->last_draw = now;
  enum { WIDTH = 24 };
  int filled = (int)(WIDTH * done / total);
  char bar[WIDTH + 1];
  for (int i = 0; i < WIDTH; i++) bar[i] = i < filled ? '#' : '.';
  bar[WIDTH] = '\0';
  double elapsed = now - p->start;
  double eta = done > 0 ? elapsed * (double)(total - done) / (double)done : 0;
  fprintf(stderr, "\r\033[K%s [%s] %lld/%lld  %s  ETA %d:%02d", label, bar, (long long)done, (long long)total,
          text ? text : "", (int)eta / 60, (int)eta % 60);
  fflush(stderr);
}

void fg_progress_clear(fg_progress *p) {
  if (!p->enabled) return;
  fprintf(stderr, "\r\033[K");
  fflush(stderr);
}
