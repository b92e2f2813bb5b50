/* The backend registry: a fixed array indexed by device kind. */
#include <stddef.h>

#include "engine/backend/backend.h"
#include "fedgap_config.h"

static fg_backend *fg_registry[FG_DEV_KINDS];

fg_status fg_backend_register(fg_backend *b) {
  if (!b || (unsigned)b->device.kind >= FG_DEV_KINDS)
    return FG_FAIL(FG_ERR_INTERNAL, "backend registration with a bad device kind");
  fg_registry[b->device.kind] = b;
  return FG_OK;
}

fg_backend *fg_backend_registered(fg_device_kind kind) {
  return (unsigned)kind < FG_DEV_KINDS ? fg_registry[kind] : NULL;
}

fg_backend *fg_backend_for(fg_device device) {
  fg_backend *b = fg_backend_registered(device.kind);
  if (!b) {
    if (device.kind == FG_DEV_CUDA && !FEDGAP_WITH_CUDA)
      FG_FAIL(FG_ERR_NO_DEVICE, "cuda: this build of fedgap was compiled without CUDA");
    else
      FG_FAIL(FG_ERR_NO_DEVICE, "%s backend is not initialised", fg_device_kind_name(device.kind));
    return NULL;
  }
  if (!b->available) {
    FG_FAIL(FG_ERR_NO_DEVICE, "%s: %s", b->name, b->reason);
    return NULL;
  }
  if (device.index != b->device.index) {
    FG_FAIL(FG_ERR_NO_DEVICE, "%s:%d requested but the backend drives %s:%d", b->name, device.index,
            b->name, b->device.index);
    return NULL;
  }
  return b;
}

void fg_backend_registry_clear(void) {
  for (int i = 0; i < FG_DEV_KINDS; i++) fg_registry[i] = NULL;
}
