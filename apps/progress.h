/* A one-line progress bar on stderr when it is a terminal; silent otherwise (logs stay clean).
 * Owns nothing. */
#ifndef FG_APPS_PROGRESS_H
#define FG_APPS_PROGRESS_H

#include <stdint.h>

typedef struct fg_progress {
  int enabled;
  double start;       /* seconds */
  double last_draw;
} fg_progress;

double fg_now(void); /* monotonic seconds */
void fg_progress_init(fg_progress *p);
/* Redraws "label [####....] done/total  text  ETA m:ss" at most 10 times a second. */
void fg_progress_update(fg_progress *p, const char *label, int64_t done, int64_t total, const char *text);
/* Clears the line. */
void fg_progress_clear(fg_progress *p);

#endif
