/* The crash-safety test hook (engine/base/killpoint.h). */
#include "engine/base/killpoint.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static int parsed;      /* the variable has been read */
static char target[64]; /* "" : no kill point */
static long at, calls;

static void parse(void) {
  parsed = 1;
  const char *v = getenv("FEDGAP_TEST_KILL_AT");
  const char *colon = v ? strrchr(v, ':') : NULL;
  if (!colon || colon == v || (size_t)(colon - v) >= sizeof target) return;
  char *end = NULL;
  long n = strtol(colon + 1, &end, 10);
  if (*end != '\0' || n < 1) return;
  memcpy(target, v, (size_t)(colon - v));
  target[colon - v] = '\0';
  at = n;
}

void fg_killpoint(const char *name) {
  if (!parsed) parse();
  if (!target[0] || strcmp(name, target) != 0) return;
  if (++calls == at) raise(SIGKILL);
}
