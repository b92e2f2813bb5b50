// CUDA ops: the pool family (to be written; until then its table entries stay NULL and the engine
// reports them unsupported).
#include "cuda/cuda_internal.h"

void fg_cuda_register_pool_ops(fg_backend *b) { (void)b; }
