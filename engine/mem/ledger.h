/* Memory ledger: the exact account of every byte the engine holds on one device.
 *
 * Every tensor allocation (a region, engine/mem/region.h) is charged to a ledger under a category
 * before the system allocator is called. A ledger tracks current bytes, the all-time peak, a
 * resettable window peak (one client's local training, one step), the per-category breakdown at
 * each peak, and an optional hard cap: a charge that would exceed the cap (of this ledger or of
 * its parent, for memory shared by CPU and GPU) fails with FG_ERR_BUDGET and changes nothing.
 * Ledgers are not thread-safe; the engine allocates only from the thread that drives it.
 * Owns: counters only. */
#ifndef FG_LEDGER_H
#define FG_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"

typedef enum fg_mem_category {
  FG_MEM_PARAMS = 0,     /* parameters and buffers (BN running statistics) */
  FG_MEM_GRADS,          /* parameter gradients */
  FG_MEM_OPTIM,          /* optimizer state (momentum, Adam moments) */
  FG_MEM_ACTIVATIONS,    /* activations saved for backward, block checkpoints */
  FG_MEM_WORKSPACE,      /* transient buffers: activation gradients, forward temporaries, im2col */
  FG_MEM_DATA,           /* input batches and labels; datasets on their own ledger */
  FG_MEM_OTHER,          /* server state, aggregation accumulators, method-specific tensors */
  FG_MEM_CATEGORIES
} fg_mem_category;

typedef struct fg_ledger {
  char name[64];
  size_t cap;      /* 0: no cap */
  size_t current;
  size_t peak;
  size_t window_peak;
  size_t by_cat[FG_MEM_CATEGORIES];          /* current bytes per category */
  size_t peak_by_cat[FG_MEM_CATEGORIES];     /* breakdown at the moment of `peak` */
  size_t window_by_cat[FG_MEM_CATEGORIES];   /* breakdown at the moment of `window_peak` */
  uint64_t charges;                          /* number of successful charges */
  uint64_t live;                             /* charges not yet released */
  struct fg_ledger *parent;                  /* shared physical memory, or NULL */
} fg_ledger;

void fg_ledger_init(fg_ledger *l, const char *name, size_t cap);
void fg_ledger_set_cap(fg_ledger *l, size_t cap);

/* Charges `bytes` to `l` (and its parents). Fails with FG_ERR_BUDGET, naming `what`, the
 * category, the bytes asked, in use and the cap, when a cap would be exceeded; then nothing
 * is charged anywhere. */
fg_status fg_ledger_charge(fg_ledger *l, fg_mem_category cat, size_t bytes, const char *what);
void fg_ledger_release(fg_ledger *l, fg_mem_category cat, size_t bytes);

/* Starts a new measurement window: window_peak := current. */
void fg_ledger_window_reset(fg_ledger *l);

const char *fg_mem_category_name(fg_mem_category cat);

/* Process memory from /proc/self/status, in bytes: VmHWM (peak resident) and VmRSS (now).
 * Return 0 where the file is unavailable. */
size_t fg_process_peak_rss(void);
size_t fg_process_rss(void);
/* Resets the kernel's VmHWM counter to the current RSS (writes /proc/self/clear_refs);
 * returns 0 on success, -1 where the kernel does not allow it. */
int fg_process_peak_rss_reset(void);

#endif
