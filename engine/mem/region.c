/* Ledger-charged allocations through the device backend. */
#include "engine/mem/region.h"

#include <string.h>

#include "engine/backend/backend.h"

size_t fg_region_round(fg_device device, size_t bytes) {
  const fg_backend *b = fg_backend_registered(device.kind);
  size_t align = b && b->alignment > 0 ? b->alignment : 1;
  return (bytes + align - 1) / align * align;
}

fg_status fg_region_alloc(fg_region *r, fg_ledger *ledger, fg_device device, fg_mem_category cat,
                          size_t bytes, const char *what) {
  memset(r, 0, sizeof *r);
  if (bytes == 0) {
    r->device = device;
    r->cat = cat;
    return FG_OK;
  }
  fg_backend *b = fg_backend_for(device);
  if (!b) return fg_last_status();
  size_t rounded = fg_region_round(device, bytes);
  FG_TRY(fg_ledger_charge(ledger, cat, rounded, what));
  void *ptr = NULL;
  fg_status s = b->alloc(b, rounded, &ptr);
  if (s != FG_OK) {
    fg_ledger_release(ledger, cat, rounded);
    fg_error_prefix("%s (%zu bytes of %s)", what ? what : "allocation", rounded,
                    fg_mem_category_name(cat));
    return s;
  }
  r->ptr = ptr;
  r->bytes = rounded;
  r->cat = cat;
  r->ledger = ledger;
  r->device = device;
  return FG_OK;
}

void fg_region_free(fg_region *r) {
  if (r->ptr) {
    fg_backend *b = fg_backend_registered(r->device.kind);
    if (b) b->free(b, r->ptr);
    fg_ledger_release(r->ledger, r->cat, r->bytes);
  }
  memset(r, 0, sizeof *r);
}
