/* The finite-difference gradient checker (fd_check.h). */
#include "common/fd_check.h"

#include <math.h>
#include <stdlib.h>

#include <criterion/criterion.h>

/* The worst disagreement seen so far. */
typedef struct fd_worst {
  int64_t bad, index;
  double excess, fd, analytic;
} fd_worst;

static void note(fd_worst *w, int64_t index, double fd, double analytic, const fgt_fd_opts *o) {
  const double excess = fabs(fd - analytic) - (o->atol + o->rtol * fabs(analytic));
  const int off = !(excess <= 0.0);
  if (off) w->bad++;
  if (w->index < 0 || !(excess <= w->excess)) {
    w->index = index;
    w->excess = excess;
    w->fd = fd;
    w->analytic = analytic;
  }
}

/* param += scale * v (v NULL: the unit vector of element j). */
static void shift(double *param, int64_t n, const double *v, int64_t j, double scale) {
  if (!v) {
    param[j] += scale;
    return;
  }
  for (int64_t i = 0; i < n; i++) param[i] += scale * v[i];
}

int64_t fgt_fd_check(const char *what, fgt_loss_fn loss, void *ctx, double *param, int64_t n,
                     const double *grad, const fgt_fd_opts *o) {
  const double h = o->step;
  const int directional = o->directions != NULL;
  const int64_t stride = o->stride > 1 ? o->stride : 1;
  const int64_t probes = directional ? o->ndirections : (n + stride - 1) / stride;
  double *saved = malloc((size_t)(n > 0 ? n : 1) * sizeof *saved);
  cr_assert_not_null(saved);
  for (int64_t i = 0; i < n; i++) saved[i] = param[i];
  const double l0 = o->kink_tol > 0.0 ? loss(ctx) : 0.0;
  fd_worst w = {0, -1, 0.0, 0.0, 0.0};
  int64_t checked = 0, skipped = 0;
  for (int64_t k = 0; k < probes; k++) {
    const double *v = directional ? o->directions[k] : NULL;
    const int64_t j = directional ? -1 : k * stride;
    shift(param, n, v, j, h);
    const double lp = loss(ctx);
    for (int64_t i = 0; i < n; i++) param[i] = saved[i];
    shift(param, n, v, j, -h);
    const double lm = loss(ctx);
    for (int64_t i = 0; i < n; i++) param[i] = saved[i];
    if (o->kink_tol > 0.0 && fabs((lp - l0) / h - (l0 - lm) / h) > o->kink_tol) {
      skipped++; /* a kink inside [p - h, p + h] */
      continue;
    }
    double analytic = 0.0;
    if (directional)
      for (int64_t i = 0; i < n; i++) analytic += grad[i] * v[i];
    else
      analytic = grad[j];
    note(&w, directional ? k : j, (lp - lm) / (2.0 * h), analytic, o);
    checked++;
  }
  free(saved);
  cr_assert(skipped <= checked, "%s: %lld of %lld probes skipped as kinks: the check is vacuous",
            what, (long long)skipped, (long long)probes);
  cr_assert_eq(w.bad, 0,
               "%s: %lld of %lld %s disagree with central differences (step %g, |d| <= %g + %g "
               "|g|); worst %s %lld: finite difference %.12g, analytic %.12g",
               what, (long long)w.bad, (long long)checked, directional ? "directions" : "elements",
               h, o->atol, o->rtol, directional ? "direction" : "element", (long long)w.index, w.fd,
               w.analytic);
  return checked;
}
