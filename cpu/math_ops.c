/* CPU math ops: batch norm (norm.c), elementwise ops and dropout (elementwise.c), losses
 * (loss.c), optimizers (optim.c), reductions (reduce.c) and nHSIC (hsic.c). This file only registers them. */
#include "cpu/cpu_internal.h"
#include "cpu/math_internal.h"

void fg_cpu_register_math_ops(fg_backend *b) {
  fg_cpu_register_norm_ops(b);
  fg_cpu_register_elementwise_ops(b);
  fg_cpu_register_loss_ops(b);
  fg_cpu_register_optim_ops(b);
  fg_cpu_register_reduce_ops(b);
  fg_cpu_register_hsic_ops(b);
}
