/* Batch norm, elementwise, dropout, losses, optimizers, reductions (to be implemented). */
#include "cpu/cpu_internal.h"

void fg_cpu_register_math_ops(fg_backend *b) { (void)b; }
