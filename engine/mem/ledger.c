/* Ledger arithmetic and process-memory readers. */
#include "engine/mem/ledger.h"

#include <stdio.h>
#include <string.h>

void fg_ledger_init(fg_ledger *l, const char *name, size_t cap) {
  memset(l, 0, sizeof *l);
  snprintf(l->name, sizeof l->name, "%s", name ? name : "ledger");
  l->cap = cap;
}

void fg_ledger_set_cap(fg_ledger *l, size_t cap) { l->cap = cap; }

static void note_peaks(fg_ledger *l) {
  if (l->current > l->peak) {
    l->peak = l->current;
    memcpy(l->peak_by_cat, l->by_cat, sizeof l->by_cat);
  }
  if (l->current > l->window_peak) {
    l->window_peak = l->current;
    memcpy(l->window_by_cat, l->by_cat, sizeof l->by_cat);
  }
}

fg_status fg_ledger_charge(fg_ledger *l, fg_mem_category cat, size_t bytes, const char *what) {
  if ((unsigned)cat >= FG_MEM_CATEGORIES)
    return FG_FAIL(FG_ERR_INTERNAL, "ledger '%s': bad memory category %d", l->name, (int)cat);
  for (fg_ledger *p = l; p; p = p->parent) {
    if (p->cap && (bytes > p->cap || p->current > p->cap - bytes))
      return FG_FAIL(FG_ERR_BUDGET,
                     "memory budget of '%s' exceeded: %s needs %zu bytes of %s with %zu in use, "
                     "cap %zu bytes",
                     p->name, what ? what : "allocation", bytes, fg_mem_category_name(cat),
                     p->current, p->cap);
  }
  for (fg_ledger *p = l; p; p = p->parent) {
    p->current += bytes;
    p->by_cat[cat] += bytes;
    p->charges++;
    p->live++;
    note_peaks(p);
  }
  return FG_OK;
}

void fg_ledger_release(fg_ledger *l, fg_mem_category cat, size_t bytes) {
  for (fg_ledger *p = l; p; p = p->parent) {
    p->current -= bytes;
    p->by_cat[cat] -= bytes;
    p->live--;
  }
}

void fg_ledger_window_reset(fg_ledger *l) {
  l->window_peak = l->current;
  memcpy(l->window_by_cat, l->by_cat, sizeof l->by_cat);
}

const char *fg_mem_category_name(fg_mem_category cat) {
  static const char *names[FG_MEM_CATEGORIES] = {"parameters", "gradients", "optimizer",
                                                 "activations", "workspace", "data", "other"};
  return (unsigned)cat < FG_MEM_CATEGORIES ? names[cat] : "?";
}

static size_t read_status_kib(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  size_t klen = strlen(key), kib = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      unsigned long long v = 0;
      if (sscanf(line + klen + 1, "%llu", &v) == 1) kib = (size_t)v;
      break;
    }
  }
  fclose(f);
  return kib * 1024;
}

size_t fg_process_peak_rss(void) { return read_status_kib("VmHWM"); }
size_t fg_process_rss(void) { return read_status_kib("VmRSS"); }

int fg_process_peak_rss_reset(void) {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (!f) return -1;
  int ok = fputs("5", f) >= 0;
  return (fclose(f) == 0 && ok) ? 0 : -1;
}
