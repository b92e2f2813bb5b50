/* Checks on client updates before aggregation (fl/update_check.h). */
#include "fl/update_check.h"

#include <math.h>
#include <stdio.h>

static fg_update_hook test_hook;
static void *test_hook_ctx;

void fg_update_set_test_hook(fg_update_hook hook, void *ctx) {
  test_hook = hook;
  test_hook_ctx = ctx;
}

void fg_update_run_test_hook(fg_update_hook_point point, int round, int client, fg_update *u, float *values,
                             int64_t capacity) {
  if (test_hook) test_hook(test_hook_ctx, point, round, client, u, values, capacity);
}

const char *fg_update_verdict_name(fg_update_verdict v) {
  switch (v) {
    case FG_UPDATE_ACCEPTED: return "accepted";
    case FG_UPDATE_WRONG_SIZE: return "wrong_size";
    case FG_UPDATE_NON_FINITE: return "non_finite";
    case FG_UPDATE_TOO_FAR: return "too_far";
  }
  return "unknown";
}

/* "[a, b, c]" */
static void shape_text(int ndim, const int64_t *shape, char *buf, size_t cap) {
  size_t at = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < ndim && i < 4 && at < cap; i++)
    at += (size_t)snprintf(buf + at, cap - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (at < cap) snprintf(buf + at, cap - at, "]");
}

static fg_update_verdict check_shapes(const fg_graph *g, const fg_update *u, char *reason, size_t cap) {
  int n = fg_graph_param_count(g);
  if (u->n_tensors != n) {
    snprintf(reason, cap, "update rejected: %d tensors, the sub-model sent has %d", u->n_tensors, n);
    return FG_UPDATE_WRONG_SIZE;
  }
  for (int i = 0; i < n; i++) {
    const fg_param *p = fg_graph_param(g, i);
    const fg_update_tensor *t = &u->tensors[i];
    int same = t->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
    if (same) continue;
    char got[96], want[96];
    shape_text(t->ndim, t->shape, got, sizeof got);
    shape_text(p->ndim, p->shape, want, sizeof want);
    snprintf(reason, cap, "update rejected: tensor %s is %s, the sub-model sent has %s", p->name, got, want);
    return FG_UPDATE_WRONG_SIZE;
  }
  return FG_UPDATE_ACCEPTED;
}

/* The tensor of g holding state entry k. */
static const fg_param *param_of(const fg_graph *g, int64_t k) {
  for (int i = 0; i < fg_graph_param_count(g); i++) {
    const fg_param *p = fg_graph_param(g, i);
    if (k >= p->offset && k < p->offset + p->numel) return p;
  }
  return NULL;
}

fg_update_verdict fg_update_check(const fg_graph *g, const float *sent, const fg_update *u, double max_distance,
                                  double *distance, char *reason, size_t cap) {
  *distance = NAN;
  if (cap) reason[0] = '\0';
  int64_t want = fg_graph_state_numel(g);
  if (u->numel != want) {
    snprintf(reason, cap, "update rejected: %lld values, the sub-model sent has %lld", (long long)u->numel,
             (long long)want);
    return FG_UPDATE_WRONG_SIZE;
  }
  if (u->n_tensors) {
    fg_update_verdict v = check_shapes(g, u, reason, cap);
    if (v != FG_UPDATE_ACCEPTED) return v;
  }
  double diff = 0, base = 0;
  for (int64_t k = 0; k < want; k++) {
    float x = u->values[k];
    if (!isfinite(x)) {
      const fg_param *p = param_of(g, k);
      snprintf(reason, cap, "update rejected: %s[%lld] is %g, expected finite values", p ? p->name : "state",
               (long long)(p ? k - p->offset : k), (double)x);
      return FG_UPDATE_NON_FINITE;
    }
    double d = (double)x - (double)sent[k];
    diff += d * d;
    base += (double)sent[k] * (double)sent[k];
  }
  diff = sqrt(diff);
  base = sqrt(base);
  *distance = base > 0 ? diff / base : diff > 0 ? INFINITY : 0.0;
  if (!isfinite(*distance) && diff > 0 && base > 0) *distance = INFINITY;
  if (max_distance > 0 && !(*distance <= max_distance)) {
    snprintf(reason, cap, "update rejected: its distance from the model sent is %.4g x that model's norm, above "
             "updates.max_distance %g", *distance, max_distance);
    return FG_UPDATE_TOO_FAR;
  }
  return FG_UPDATE_ACCEPTED;
}
