/* Regions: the only way the engine obtains memory for tensor data.
 *
 * A region is one allocation on one device, charged to a ledger under one category before the
 * backend's allocator is called, and released from it when freed. Sizes are rounded up to the
 * device's alignment, so the bytes a plan predicts are the bytes the ledger sees. Owns: the
 * allocation. */
#ifndef FG_REGION_H
#define FG_REGION_H

#include <stddef.h>

#include "engine/mem/ledger.h"
#include "engine/tensor/tensor.h"

typedef struct fg_region {
  void *ptr;
  size_t bytes; /* charged bytes (rounded) */
  fg_mem_category cat;
  fg_ledger *ledger;
  fg_device device;
} fg_region;

/* Rounds `bytes` up to the region alignment the backend of `device` declares (fg_backend's
 * `alignment`: 64 on the CPU, 256 on CUDA). A device with no registered backend has nothing
 * allocated on it, and plans for it fail (fg_plan_check_supported): its bytes are not rounded. */
size_t fg_region_round(fg_device device, size_t bytes);

/* Allocates max(bytes, 0) rounded; zero bytes gives a region with ptr NULL and nothing charged.
 * On FG_ERR_BUDGET or FG_ERR_OOM nothing stays charged and *r is zeroed. */
fg_status fg_region_alloc(fg_region *r, fg_ledger *ledger, fg_device device, fg_mem_category cat,
                          size_t bytes, const char *what);
/* Frees and discharges; safe on a zeroed region and idempotent. */
void fg_region_free(fg_region *r);

#endif
