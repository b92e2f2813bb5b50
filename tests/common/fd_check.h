/* The one finite-difference gradient checker of the test suites.
 *
 * A test hands over a function that computes a scalar loss in double from the current values
 * of a parameter vector (through the double references, through the ops on any backend, or
 * through a whole trainer), the parameter vector itself, and the analytic gradient. The checker
 * perturbs the parameters by +-step and compares the central difference with the gradient:
 *   - element by element (every element, or every stride-th), or
 *   - along given directions v: (L(p + h v) - L(p - h v)) / 2h against <g, v>.
 * Kinks (ReLU at 0, a max-pool window changing its maximum) make the central difference
 * meaningless where they fall inside [p - h, p + h]: with kink_tol > 0 an element whose two
 * one-sided differences disagree by more than kink_tol is skipped and counted (as Caffe's
 * checker does), and at most half of the elements may be skipped. A failure is one line naming
 * the worst element, its two values and how many elements are off. */
#ifndef FGT_FD_CHECK_H
#define FGT_FD_CHECK_H

#include <stdint.h>

/* The loss at the current values of the parameters being checked. */
typedef double (*fgt_loss_fn)(void *ctx);

typedef struct fgt_fd_opts {
  double step;       /* h */
  double atol, rtol; /* |fd - g| <= atol + rtol |g| */
  int64_t stride;    /* element mode: check elements 0, stride, 2 stride, ... (0 or 1: all) */
  double kink_tol;   /* > 0: skip elements whose one-sided differences differ by more */
  const double *const *directions; /* NULL: element mode; else `ndirections` vectors [n] */
  int ndirections;
} fgt_fd_opts;

/* Checks grad [n] against central differences of loss() in param [n] (perturbed in place and
 * restored). Fails the current test on a mismatch; returns the number of checks made. */
int64_t fgt_fd_check(const char *what, fgt_loss_fn loss, void *ctx, double *param, int64_t n,
                     const double *grad, const fgt_fd_opts *o);

#endif
