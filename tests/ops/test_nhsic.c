/* Op suite: normalised HSIC (fg_nhsic) on every backend against the reference code's formula
 * in double (tr(K H L H) with an explicit centring matrix, tests/ref/ref_math.h) and its
 * chain-rule gradient: feature targets and one-hot label targets, z of rank 2 and 4 (rows
 * flattened), the value alone, the gradient with a weight, assigned and accumulated.
 * Hand-derived rows: nHSIC(Z; Z) = 1, a joint permutation of the batch leaves the value
 * unchanged, equal rows give 0 and a zero gradient. Then the entry points' errors (rows that
 * differ, one row, no target, sigma, classes, a label out of range, a short workspace) and
 * finite differences of the reference and of each backend. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "ops/harness/op_suite.h"
#include "ref/ref_math.h"

enum {
  NH_FEATURES,
  NH_LABELS,
  NH_SELF,
  NH_PERMUTED,
  NH_EQUAL_ROWS,
  NH_BAD_LABEL,
  NH_NO_TARGET,
  NH_ONE_CLASS,
  NH_SHORT_WORKSPACE
};

typedef struct nh_row {
  int64_t m, dz, dx; /* dx: the features' width, or the number of classes */
  int z_rank4;       /* z as [m, 2, dz / 6, 3] */
  float sigma, range;
  int target; /* NH_* */
  int layout;
} nh_row;

static const nh_row ROWS[] = {
    {6, 5, 4, 0, 1.0f, 1.0f, NH_FEATURES, FGT_ALIGNED},
    {16, 40, 30, 0, 0.7f, 2.0f, NH_FEATURES, FGT_ALIGNED},
    {64, 512, 784, 0, 5.0f, 3.0f, NH_FEATURES, FGT_ALIGNED},
    {9, 3, 10, 0, 0.5f, 1.5f, NH_FEATURES, FGT_ALIGNED},
    {32, 200, 50, 0, 1.0f, 1.0f, NH_FEATURES, FGT_ALIGNED}, /* rows x values over threads */
    {24, 12, 10, 0, 5.0f, 2.0f, NH_LABELS, FGT_ALIGNED},
    {8, 18, 5, 1, 1.0f, 1.0f, NH_FEATURES, FGT_ALIGNED},
    {16, 40, 30, 0, 0.7f, 2.0f, NH_FEATURES, FGT_MISALIGNED},
    {24, 12, 10, 0, 5.0f, 2.0f, NH_LABELS, FGT_PARTIAL},
    {20, 30, 30, 0, 1.0f, 1.0f, NH_SELF, FGT_ALIGNED},
    {20, 30, 30, 0, 1.0f, 1.0f, NH_PERMUTED, FGT_ALIGNED},
    {32, 200, 50, 0, 1.0f, 1.0f, NH_EQUAL_ROWS, FGT_ALIGNED},
    {4, 3, 3, 0, 5.0f, 1.0f, NH_FEATURES, FGT_ALIGNED}, /* the base of the error rows */
    {24, 12, 10, 0, 5.0f, 2.0f, NH_BAD_LABEL, FGT_ALIGNED},
    {4, 3, 3, 0, 5.0f, 1.0f, NH_NO_TARGET, FGT_ALIGNED},
    {4, 3, 1, 0, 5.0f, 1.0f, NH_ONE_CLASS, FGT_ALIGNED},
    {4, 3, 3, 0, 0.0f, 1.0f, NH_FEATURES, FGT_ALIGNED},
    {4, 3, 3, 0, 5.0f, 1.0f, NH_SHORT_WORKSPACE, FGT_ALIGNED},
};
enum { ROW_COUNT = sizeof ROWS / sizeof ROWS[0], BASE = 12 };

/* Variants: 0 the value alone, 1 the gradient with weight -0.75, 2 accumulated with weight 0.5. */
static const float WEIGHTS[3] = {1.0f, -0.75f, 0.5f};

/* The value is computed in double from the float inputs (distances, kernels, centring and the
 * traces: cuda.md asks the same of the CUDA kernels), so it is held to 1e-9, not the class. */
static const fgt_tol VALUE_IN_DOUBLE = {0, 1e-9, 1e-9, 0.0};
/* nHSIC(Z; Z) = 1 and the invariance under a permutation hold to rounding in double. */
static const fgt_tol VALUE_EXACT_IN_DOUBLE = {0, 1e-12, 0.0, 0.0};

enum { Z, X, LABELS, DZ };

typedef struct nh_case {
  const nh_row *r;
  int variant;
  float weight;
} nh_case;

static fg_status nhsic_call(fgt_op *op) {
  const nh_case *c = op->row;
  const fg_nhsic_desc d = {c->r->sigma, c->r->target == NH_LABELS || c->r->target == NH_BAD_LABEL ||
                                                c->r->target == NH_ONE_CLASS
                                            ? (int)c->r->dx
                                            : 10};
  return fg_nhsic(&d, fgt_t(op, Z), fgt_t(op, X), fgt_t(op, LABELS), c->weight, fgt_t(op, DZ),
                  c->variant == 2, op->ws, &op->scalar);
}

static fg_status nhsic_workspace(fgt_op *op, size_t *bytes) {
  const nh_case *c = op->row;
  FG_TRY(fg_nhsic_workspace(fgt_t(op, Z)->device, c->r->m, bytes));
  if (c->r->target == NH_SHORT_WORKSPACE) *bytes -= 8;
  return FG_OK;
}

/* Rows of z permuted jointly with the target: row i takes row (7 i + 3) mod m (7 is coprime
 * with 20). */
static void permute_rows(float *a, int64_t m, int64_t d) {
  float *copy = malloc((size_t)(m * d) * sizeof *copy);
  cr_assert_not_null(copy);
  memcpy(copy, a, (size_t)(m * d) * sizeof *copy);
  for (int64_t i = 0; i < m; i++)
    memcpy(a + i * d, copy + ((i * 7 + 3) % m) * d, (size_t)d * sizeof *a);
  free(copy);
}

/* The target as a double matrix [m, width]: the features, or the one-hot labels. */
static double *target_of(fgt_op *op, const nh_row *r, int64_t *width) {
  *width = r->dx;
  if (r->target != NH_LABELS) return fgt_widen(op, X);
  double *onehot = fgt_scratch_d(op, r->m * r->dx);
  const int32_t *y = op->args[LABELS].host;
  for (int64_t i = 0; i < r->m; i++) onehot[i * r->dx + y[i]] = 1.0;
  return onehot;
}

static void declare(fgt_op *op, const nh_case *c) {
  const nh_row *r = c->r;
  if (r->z_rank4) {
    const int64_t s[4] = {r->m, 2, r->dz / 6, 3};
    fgt_arg_declare(op, Z, "z", FG_F32, FGT_IN, 4, s);
  } else {
    fgt_arg2(op, Z, "z", FGT_IN, r->m, r->dz);
  }
  const int labels =
      r->target == NH_LABELS || r->target == NH_BAD_LABEL || r->target == NH_ONE_CLASS;
  if (labels)
    fgt_arg_declare(op, LABELS, "labels", FG_I32, FGT_IN, 1, &r->m);
  else if (r->target != NH_NO_TARGET)
    fgt_arg2(op, X, "x", FGT_IN, r->m, r->dx);
  if (c->variant != 0)
    fgt_arg_declare(op, DZ, "dz", FG_F32, c->variant == 2 ? FGT_INOUT : FGT_OUT, op->args[Z].ndim,
                    op->args[Z].shape);
}

static void expect_errors(fgt_op *op, const nh_row *r) {
  if (r->target == NH_BAD_LABEL) {
    ((int32_t *)op->args[LABELS].host)[3] = (int32_t)r->dx; /* one past the last class */
    fgt_expect_error(op, FG_ERR_INVALID, "nhsic: 1 labels outside 0..9 (the first, at row 3, is 10)", NULL);
  }
  if (r->target == NH_NO_TARGET)
    fgt_expect_error(op, FG_ERR_INVALID, "nhsic: neither a feature target x nor labels were given",
                     NULL);
  if (r->target == NH_ONE_CLASS)
    fgt_expect_error(op, FG_ERR_INVALID, "nhsic: 1 classes for a label target, expected >= 2",
                     NULL);
  if (r->sigma == 0.0f) fgt_expect_error(op, FG_ERR_INVALID, "nhsic: sigma is 0", NULL);
  if (r->target == NH_SHORT_WORKSPACE)
    fgt_expect_error(op, FG_ERR_INVALID, "nhsic: workspace of", NULL);
}

static void build_nhsic(int index, fgt_op *op) {
  nh_case *c = fgt_scratch(op, sizeof *c);
  c->r = &ROWS[index / 3];
  c->variant = index % 3;
  c->weight = WEIGHTS[c->variant];
  const nh_row *r = c->r;
  static const char *targets[] = {"",           " labels",     " x = z",
                                  " permuted",  " equal rows", " bad label",
                                  " no target", " one class",  " short workspace"};
  fgt_name(op, "nhsic m%lld dz%lld dx%lld%s sigma %g%s%s%s", (long long)r->m, (long long)r->dz,
           (long long)r->dx, r->z_rank4 ? " (z rank 4)" : "", (double)r->sigma, targets[r->target],
           c->variant == 0   ? ""
           : c->variant == 1 ? " gradient"
                             : " accumulate",
           fgt_layout_name(r->layout));
  op->row = c;
  op->call = nhsic_call;
  op->workspace = nhsic_workspace;
  fgt_layout(op, r->layout);
  declare(op, c);
  float *z = fgt_fill(op, Z, -r->range, r->range);
  if (op->args[X].name) fgt_fill(op, X, -1.0f, 1.0f);
  if (op->args[LABELS].name) fgt_fill_labels(op, LABELS, r->dx > 1 ? r->dx : 2);
  if (c->variant == 2) fgt_fill(op, DZ, -1.0f, 1.0f);
  expect_errors(op, r);
  if (op->expect != FG_OK) return;
  const int64_t n = r->m * r->dz;
  if (r->target == NH_SELF) memcpy(fgt_f32(op, X), z, (size_t)n * sizeof *z);
  if (r->target == NH_EQUAL_ROWS)
    for (int64_t i = 1; i < r->m; i++) memcpy(z + i * r->dz, z, (size_t)r->dz * sizeof *z);
  int64_t width = 0;
  const double *target = target_of(op, r, &width);
  double *scratch = fgt_scratch_d(op, 6 * r->m * r->m), *grad = fgt_scratch_d(op, n);
  const double value =
      fg_ref_nhsic_grad(fgt_widen(op, Z), r->dz, target, width, r->m, r->sigma, grad, scratch);
  fgt_tol tol = VALUE_IN_DOUBLE;
  if (r->target == NH_SELF) {
    cr_assert(fabs(value - 1.0) <= 1e-12, "%s: reference nHSIC(Z; Z) = %.17g", op->name, value);
    tol = VALUE_EXACT_IN_DOUBLE;
  }
  if (r->target == NH_PERMUTED) { /* the expectation stays the unpermuted batch's value */
    permute_rows(z, r->m, r->dz);
    permute_rows(fgt_f32(op, X), r->m, r->dx);
    const double permuted =
        fg_ref_nhsic(fgt_widen(op, Z), r->dz, fgt_widen(op, X), r->dx, r->m, r->sigma, scratch);
    cr_assert(fabs(permuted - value) <= 1e-12, "%s: reference %.17g, permuted %.17g", op->name,
              value, permuted);
    fg_ref_nhsic_grad(fgt_widen(op, Z), r->dz, fgt_widen(op, X), r->dx, r->m, r->sigma, grad,
                      scratch);
    tol = VALUE_EXACT_IN_DOUBLE;
  }
  if (r->target == NH_EQUAL_ROWS)
    tol = FGT_EXACT; /* the centred kernel vanishes: 0, and dz = 0 */
  else
    cr_assert(value > 0.0 && value <= 1.0 + 1e-12, "%s: nHSIC %.15g outside (0, 1]", op->name,
              value);
  fgt_expect_scalar(op, value, tol);
  if (c->variant == 0) return;
  double *want = fgt_expect(op, DZ, r->target == NH_EQUAL_ROWS ? FGT_EXACT : FGT_TOL);
  const double *dz0 = c->variant == 2 ? fgt_widen(op, DZ) : NULL;
  for (int64_t i = 0; i < n; i++) want[i] = c->weight * grad[i] + (dz0 ? dz0[i] : 0.0);
}

static const fgt_error_row ERRORS[] = {
    {3 * BASE, X, 2, {3, 4}, -1, FG_ERR_SHAPE,
     "nhsic: x has shape [3, 4], expected extent 4 in dimension 0", NULL},
    {3 * BASE, Z, 2, {1, 12}, -1, FG_ERR_SHAPE,
     "nhsic: z has shape [1, 12], expected at least 2 rows", NULL},
    {3 * BASE + 1, DZ, 2, {4, 4}, -1, FG_ERR_SHAPE,
     "nhsic: dz has shape [4, 4] but z has shape [4, 3]", NULL},
};
static const fgt_suite NHSIC = {"nhsic", 3 * ROW_COUNT, build_nhsic, ERRORS, 3};
FGT_SUITE_TESTS(nhsic, matches_reference, NHSIC)

/* ----------------------------------------------------------------------------------------- */
/* Finite differences                                                                         */

typedef struct ref_loss_ctx {
  const double *z, *t;
  int64_t dz, dt, m;
  double sigma, *scratch;
} ref_loss_ctx;

static double ref_loss(void *p) {
  const ref_loss_ctx *c = p;
  return fg_ref_nhsic(c->z, c->dz, c->t, c->dt, c->m, c->sigma, c->scratch);
}

/* The chain-rule gradient of the reference against central differences of the reference's
 * value (smooth: truncation ~h^2, rounding ~1e-16 / h), for a feature and a one-hot target. */
Test(nhsic, reference_gradient_matches_finite_differences) {
  const struct {
    int64_t m, dz, dt;
    double sigma, range;
    int onehot;
  } cases[] = {{6, 5, 4, 1.0, 1.0, 0}, {16, 40, 30, 0.7, 2.0, 0}, {12, 6, 5, 0.8, 1.0, 1}};
  const fgt_fd_opts o = {1e-5, 1e-9, 1e-6, 3, 0.0, NULL, 0};
  for (int k = 0; k < 3; k++) {
    const int64_t m = cases[k].m, dz = cases[k].dz, dt = cases[k].dt;
    double *z = fgt_alloc_uniform(m * dz, 200 + (uint64_t)k, -cases[k].range, cases[k].range);
    double *t = fgt_alloc_uniform(m * dt, 210 + (uint64_t)k, -1.0, 1.0);
    if (cases[k].onehot)
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < dt; j++) t[i * dt + j] = j == (i * 3) % dt;
    double *scratch = fgt_alloc_uniform(6 * m * m, 0, 0, 0),
           *grad = fgt_alloc_uniform(m * dz, 0, 0, 0);
    fg_ref_nhsic_grad(z, dz, t, dt, m, cases[k].sigma, grad, scratch);
    ref_loss_ctx c = {z, t, dz, dt, m, cases[k].sigma, scratch};
    char what[64];
    snprintf(what, sizeof what, "reference nhsic case %d dz", k);
    fgt_fd_check(what, ref_loss, &c, z, m * dz, grad, &o);
    free(z), free(t), free(scratch), free(grad);
  }
}

typedef struct nh_dev {
  fgt_dbuf z, x;
  fg_workspace ws;
  fg_region ws_region;
  double value;
} nh_dev;

static fg_status nh_dev_value(void *p) {
  nh_dev *c = p;
  const fg_nhsic_desc d = {0.7f, 0};
  return fg_nhsic(&d, &c->z.t, &c->x.t, NULL, 1.0f, NULL, 0, c->ws, &c->value);
}

/* Each backend's dz against directional differences of the value it returns: inputs,
 * direction and h = 2^-10 on grids that keep the perturbed inputs exact in float, and the
 * value computed in double, so the truncation (~h^2) is what remains; 1e-3 relative. */
static void backend_fd(fg_device_kind kind) {
  const fg_device dev = fgt_backend_open(kind);
  const int64_t m = 16, dz = 40, dx = 30, sz[2] = {m, dz}, sx[2] = {m, dx};
  nh_dev c = {
      fgt_dbuf_alloc(dev, FG_F32, 2, sz), fgt_dbuf_alloc(dev, FG_F32, 2, sx), {NULL, 0}, {0}, 0.0};
  fgt_dbuf g = fgt_dbuf_alloc(dev, FG_F32, 2, sz);
  double *z = fgt_alloc_uniform(m * dz, 220, -2.0, 2.0),
         *x = fgt_alloc_uniform(m * dx, 221, -1.0, 1.0);
  fgt_quantize(z, m * dz, 1.0 / 1024), fgt_quantize(x, m * dx, 1.0 / 1024);
  fgt_upload_d(&c.z, z), fgt_upload_d(&c.x, x);
  size_t bytes = 0;
  fg_status s = fg_nhsic_workspace(dev, m, &bytes);
  if (s == FG_ERR_UNSUPPORTED)
    cr_skip_test("nhsic on %s: %s", fgt_kind_name(kind), fg_last_error());
  FGT_OK(s);
  c.ws = fgt_workspace_alloc(dev, bytes, &c.ws_region);
  const fg_nhsic_desc d = {0.7f, 0};
  FGT_OK(fg_nhsic(&d, &c.z.t, &c.x.t, NULL, 1.0f, &g.t, 0, c.ws, &c.value));
  double *grad = fgt_alloc_uniform(m * dz, 0, 0, 0), *v = fgt_random_direction(m * dz, 222);
  fgt_download_d(grad, &g);
  const double *dirs[1] = {v};
  const fgt_fd_opts o = {1.0 / 1024, 1e-9, 1e-3, 1, 0.0, dirs, 1};
  fgt_device_loss_ctx lc = {&c.z, NULL, nh_dev_value, &c, NULL, NULL, &c.value};
  char what[64];
  snprintf(what, sizeof what, "nhsic dz on %s", fgt_kind_name(kind));
  fgt_fd_check_device(what, &lc, z, m * dz, grad, &o);
  free(z), free(x), free(grad), free(v);
  fgt_dbuf_free(&c.z), fgt_dbuf_free(&c.x), fgt_dbuf_free(&g), fg_region_free(&c.ws_region);
}

Test(nhsic, gradient_matches_finite_differences_cpu) { backend_fd(FG_DEV_CPU); }
Test(nhsic, gradient_matches_finite_differences_cuda) { backend_fd(FG_DEV_CUDA); }
