// CUDA ops: the hsic family (to be written; until then its table entries stay NULL and the engine
// reports them unsupported).
#include "cuda/cuda_internal.h"

void fg_cuda_register_hsic_ops(fg_backend *b) { (void)b; }
