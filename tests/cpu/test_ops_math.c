/* Elementwise ops, dropout and reductions on the CPU backend against the double-precision
 * reference (cpu/ref/ref_math.h), their in-place forms, and the entry points' validation
 * (shape mismatch, p = 1, devices, unsupported entries). Batch norm, losses and optimizers
 * have their own files (test_ops_bn.c, test_ops_loss.c, test_ops_optim.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "ref/ref_math.h"
#include "engine/backend/ops.h"
#include "engine/base/rng.h"

/* ----------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static double *to_double(const float *x, size_t n) {
  double *d = malloc((n ? n : 1) * sizeof *d);
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

static float *new_uniform(size_t n, uint64_t seed, float lo, float hi) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  fgt_fill_uniform(x, n, seed, lo, hi);
  return x;
}

static void expect_close(const char *what, const float *got, const double *want, size_t n,
                         double atol, double rtol) {
  char msg[512];
  cr_assert(fgt_allclose(got, want, n, atol, rtol, msg, sizeof msg), "%s: %s", what, msg);
}

/* Sizes the elementwise tests run over: tiny, odd, above the threading threshold. */
static const int64_t sizes[] = {1, 7, 1001, 70001};
enum { SIZES = 4 };

/* ----------------------------------------------------------------------------------------- */
/* ReLU                                                                                       */

/* x with every fifth value exactly 0 (and one -0), the rest in [-2, 2). */
static float *relu_input(int64_t n, uint64_t seed) {
  float *x = new_uniform((size_t)n, seed, -2, 2);
  for (int64_t i = 0; i < n; i += 5) x[i] = 0.0f;
  if (n > 3) x[3] = -0.0f;
  return x;
}

Test(relu, forward_and_backward_match_reference) {
  fgt_setup_cpu(2);
  for (int s = 0; s < SIZES; s++) {
    const int64_t n = sizes[s];
    float *x = relu_input(n, 1 + (uint64_t)s), *y = calloc((size_t)n, sizeof *y);
    float *dy = new_uniform((size_t)n, 10 + (uint64_t)s, -1, 1);
    float *dx = new_uniform((size_t)n, 20 + (uint64_t)s, -1, 1);
    double *xd = to_double(x, (size_t)n), *dyd = to_double(dy, (size_t)n);
    double *dx0 = to_double(dx, (size_t)n);
    double *yr = malloc((size_t)n * sizeof *yr), *dxr = malloc((size_t)n * sizeof *dxr);
    fg_ref_relu_forward(xd, n, yr);
    fg_ref_relu_backward(yr, dyd, n, dxr);
    fg_tensor tx = fg_tensor_1d(x, n), ty = fg_tensor_1d(y, n), tdy = fg_tensor_1d(dy, n);
    fg_tensor tdx = fg_tensor_1d(dx, n);
    FGT_OK(fg_relu_forward(&tx, &ty));
    expect_close("relu y", y, yr, (size_t)n, 0, 0);
    /* accumulate = 1 first (dx holds dx0), then = 0. */
    FGT_OK(fg_relu_backward(&ty, &tdy, &tdx, 1));
    for (int64_t i = 0; i < n; i++) dx0[i] += dxr[i];
    expect_close("relu dx accumulated", dx, dx0, (size_t)n, 1e-7, 1e-7);
    FGT_OK(fg_relu_backward(&ty, &tdy, &tdx, 0));
    expect_close("relu dx", dx, dxr, (size_t)n, 0, 0);
    /* Zero inputs give zero gradient. */
    for (int64_t i = 0; i < n; i += 5)
      cr_assert(dx[i] == 0.0f, "dx[%lld] = %g at x = 0", (long long)i, dx[i]);
    /* In place: y == x, and dx == dy. */
    FGT_OK(fg_relu_forward(&tx, &tx));
    expect_close("relu y in place", x, yr, (size_t)n, 0, 0);
    FGT_OK(fg_relu_backward(&tx, &tdy, &tdy, 0));
    expect_close("relu dx in place", dy, dxr, (size_t)n, 0, 0);
    free(x), free(y), free(dy), free(dx), free(xd), free(dyd), free(dx0), free(yr), free(dxr);
  }
}

/* ----------------------------------------------------------------------------------------- */
/* add, axpy, scale, copy, fill                                                               */

Test(arith, add_axpy_scale_copy_fill_match_reference) {
  fgt_setup_cpu(2);
  for (int s = 0; s < SIZES; s++) {
    const int64_t n = sizes[s];
    float *a = new_uniform((size_t)n, 30 + (uint64_t)s, -3, 3),
          *b = new_uniform((size_t)n, 40 + (uint64_t)s, -3, 3);
    float *y = calloc((size_t)n, sizeof *y);
    double *ad = to_double(a, (size_t)n), *bd = to_double(b, (size_t)n);
    double *r = malloc((size_t)n * sizeof *r);
    fg_tensor ta = fg_tensor_1d(a, n), tb = fg_tensor_1d(b, n), ty = fg_tensor_1d(y, n);

    fg_ref_add(ad, bd, n, r);
    FGT_OK(fg_add(&ta, &tb, &ty));
    expect_close("add", y, r, (size_t)n, 0, 1e-7);

    /* y = a + b then y += -0.75 b. */
    fg_ref_axpy(-0.75, bd, n, r);
    FGT_OK(fg_axpy(-0.75f, &tb, &ty));
    expect_close("axpy", y, r, (size_t)n, 1e-6, 1e-6);

    fg_ref_scale(1.5, ad, n, r);
    FGT_OK(fg_scale(1.5f, &ta, &ty));
    expect_close("scale", y, r, (size_t)n, 0, 1e-7);

    FGT_OK(fg_copy(&tb, &ty));
    cr_assert(memcmp(y, b, (size_t)n * sizeof *y) == 0, "copy differs");

    FGT_OK(fg_fill(&ty, -2.5f));
    for (int64_t i = 0; i < n; i++)
      cr_assert(y[i] == -2.5f, "fill: y[%lld] = %g", (long long)i, y[i]);

    /* In place: add into x1 and into x2; scale onto itself. */
    fg_ref_add(ad, bd, n, r);
    float *a2 = malloc((size_t)n * sizeof *a2);
    memcpy(a2, a, (size_t)n * sizeof *a2);
    fg_tensor ta2 = fg_tensor_1d(a2, n);
    FGT_OK(fg_add(&ta2, &tb, &ta2));
    expect_close("add in place (y == x1)", a2, r, (size_t)n, 0, 1e-7);
    memcpy(a2, b, (size_t)n * sizeof *a2);
    FGT_OK(fg_add(&ta, &ta2, &ta2));
    expect_close("add in place (y == x2)", a2, r, (size_t)n, 0, 1e-7);
    fg_ref_scale(-3.0, ad, n, r);
    FGT_OK(fg_scale(-3.0f, &ta, &ta));
    expect_close("scale in place", a, r, (size_t)n, 0, 1e-7);
    free(a), free(b), free(y), free(ad), free(bd), free(r), free(a2);
  }
}

/* Shapes need not agree, only element counts: [2,3] + [6] -> [3,2]. */
Test(arith, equal_numel_suffices) {
  fgt_setup_cpu(1);
  float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {6, 5, 4, 3, 2, 1}, y[6];
  fg_tensor ta = fg_tensor_2d(a, 2, 3), tb = fg_tensor_1d(b, 6), ty = fg_tensor_2d(y, 3, 2);
  FGT_OK(fg_add(&ta, &tb, &ty));
  for (int i = 0; i < 6; i++) cr_assert_eq(y[i], 7.0f);
}

/* ----------------------------------------------------------------------------------------- */
/* Dropout                                                                                    */

Test(dropout, p_zero_is_identity) {
  fgt_setup_cpu(1);
  const int64_t n = 1001;
  float *x = new_uniform(n, 1, -2, 2), *y = calloc(n, sizeof *y), *dx = calloc(n, sizeof *dx);
  fg_tensor tx = fg_tensor_1d(x, n), ty = fg_tensor_1d(y, n), tdx = fg_tensor_1d(dx, n);
  FGT_OK(fg_dropout_forward(&tx, &ty, 0.0f, 42));
  cr_assert(memcmp(x, y, n * sizeof *x) == 0, "p = 0 forward is not the identity");
  FGT_OK(fg_dropout_backward(&tx, &tdx, 0.0f, 42, 0));
  cr_assert(memcmp(x, dx, n * sizeof *x) == 0, "p = 0 backward is not the identity");
  FGT_OK(fg_dropout_backward(&tx, &tdx, 0.0f, 42, 1));
  for (int64_t i = 0; i < n; i++)
    cr_assert(dx[i] == 2 * x[i], "p = 0 accumulate at %lld", (long long)i);
  free(x), free(y), free(dx);
}

Test(dropout, mask_fraction_reference_and_backward) {
  fgt_setup_cpu(2);
  const int64_t n = 100000;
  const float probs[3] = {0.1f, 0.3f, 0.5f};
  for (int k = 0; k < 3; k++) {
    const float p = probs[k];
    const uint64_t key = fg_rng_key(7, FG_RNG_DROPOUT, (uint64_t)k, 0);
    /* x >= 0.5, so a zero output means a dropped element. */
    float *x = new_uniform(n, 50 + (uint64_t)k, 0.5f, 2.0f), *y = calloc(n, sizeof *y);
    float *dy = new_uniform(n, 60 + (uint64_t)k, 0.5f, 2.0f);
    float *dx = new_uniform(n, 70 + (uint64_t)k, -1.0f, 1.0f);
    double *dx0 = to_double(dx, n), *xd = to_double(x, n), *dyd = to_double(dy, n);
    double *yr = malloc(n * sizeof *yr), *dxr = malloc(n * sizeof *dxr);
    fg_tensor tx = fg_tensor_1d(x, n), ty = fg_tensor_1d(y, n), tdy = fg_tensor_1d(dy, n);
    fg_tensor tdx = fg_tensor_1d(dx, n);
    FGT_OK(fg_dropout_forward(&tx, &ty, p, key));
    fg_ref_dropout_forward(xd, n, p, key, yr);
    expect_close("dropout y", y, yr, n, 0, 1e-7);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
      if (y[i] == 0.0f) continue;
      kept++;
      cr_assert(y[i] == x[i] / (1.0f - p), "kept value at %lld: %g, want x/(1-p) = %g",
                (long long)i, y[i], x[i] / (1.0f - p));
    }
    /* Binomial(n, 1-p): 5 standard deviations. */
    double frac = (double)kept / (double)n, sd = sqrt(p * (1.0 - p) / (double)n);
    cr_assert(fabs(frac - (1.0 - p)) < 5 * sd, "p = %g: kept fraction %g", (double)p, frac);

    /* Backward uses the same mask: zero exactly where the forward dropped. */
    FGT_OK(fg_dropout_backward(&tdy, &tdx, p, key, 1));
    fg_ref_dropout_backward(dyd, n, p, key, dxr);
    for (int64_t i = 0; i < n; i++) dx0[i] += dxr[i];
    expect_close("dropout dx accumulated", dx, dx0, n, 1e-6, 1e-6);
    FGT_OK(fg_dropout_backward(&tdy, &tdx, p, key, 0));
    expect_close("dropout dx", dx, dxr, n, 0, 1e-7);
    for (int64_t i = 0; i < n; i++)
      cr_assert((dx[i] == 0.0f) == (y[i] == 0.0f),
                "mask differs between forward and backward at %lld", (long long)i);
    free(x), free(y), free(dy), free(dx), free(dx0), free(xd), free(dyd), free(yr), free(dxr);
  }
}

Test(dropout, same_key_same_mask_different_key_different_mask) {
  fgt_setup_cpu(1);
  const int64_t n = 10000;
  const float p = 0.5f;
  float *x = malloc(n * sizeof *x), *y1 = malloc(n * sizeof *y1), *y2 = malloc(n * sizeof *y2);
  float *y3 = malloc(n * sizeof *y3);
  for (int64_t i = 0; i < n; i++) x[i] = 1.0f;
  fg_tensor tx = fg_tensor_1d(x, n), t1 = fg_tensor_1d(y1, n), t2 = fg_tensor_1d(y2, n);
  fg_tensor t3 = fg_tensor_1d(y3, n);
  uint64_t k1 = fg_rng_key(1, FG_RNG_DROPOUT, 5, 0), k2 = fg_rng_key(1, FG_RNG_DROPOUT, 6, 0);
  FGT_OK(fg_dropout_forward(&tx, &t1, p, k1));
  FGT_OK(fg_dropout_forward(&tx, &t2, p, k1));
  FGT_OK(fg_dropout_forward(&tx, &t3, p, k2));
  cr_assert(memcmp(y1, y2, n * sizeof *y1) == 0, "same key gave different masks");
  int64_t differ = 0;
  for (int64_t i = 0; i < n; i++) differ += (y1[i] == 0.0f) != (y3[i] == 0.0f);
  /* Independent masks with p = 1/2 differ in about half of the positions. */
  cr_assert(differ > 4500 && differ < 5500,
            "different keys: masks differ at %lld of %lld positions", (long long)differ,
            (long long)n);
  free(x), free(y1), free(y2), free(y3);
}

Test(dropout, p_one_is_rejected) {
  fgt_setup_cpu(1);
  float x[4] = {0}, y[4];
  fg_tensor tx = fg_tensor_1d(x, 4), ty = fg_tensor_1d(y, 4);
  cr_assert_eq(fg_dropout_forward(&tx, &ty, 1.0f, 3), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "dropout_forward: p is 1, expected 0 <= p < 1") != NULL,
            "message: %s", fg_last_error());
  cr_assert_eq(fg_dropout_backward(&tx, &ty, -0.1f, 3, 0), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "p is -0.1") != NULL, "message: %s", fg_last_error());
  cr_assert_eq(fg_dropout_forward(&tx, &ty, NAN, 3), FG_ERR_INVALID);
}

Test(dropout, bit_identical_for_one_and_two_threads) {
  const int64_t n = 100003;
  float *x = new_uniform(n, 5, -1, 1), *y1 = malloc(n * sizeof *y1), *y2 = malloc(n * sizeof *y2);
  fg_tensor tx = fg_tensor_1d(x, n), t1 = fg_tensor_1d(y1, n), t2 = fg_tensor_1d(y2, n);
  fgt_setup_cpu(1);
  FGT_OK(fg_dropout_forward(&tx, &t1, 0.25f, 99));
  fgt_setup_cpu(2);
  FGT_OK(fg_dropout_forward(&tx, &t2, 0.25f, 99));
  cr_assert(memcmp(y1, y2, n * sizeof *y1) == 0, "dropout differs between 1 and 2 threads");
  free(x), free(y1), free(y2);
}

/* ----------------------------------------------------------------------------------------- */
/* sum_squares                                                                                */

Test(sum_squares, matches_reference_and_thread_count) {
  const int64_t ns[4] = {1, 5, 16384, 100001};
  for (int s = 0; s < 4; s++) {
    const int64_t n = ns[s];
    float *x = new_uniform((size_t)n, 80 + (uint64_t)s, -3, 3);
    double *xd = to_double(x, (size_t)n);
    double want = fg_ref_sum_squares(xd, n), one, two;
    fg_tensor tx = fg_tensor_1d(x, n);
    fgt_setup_cpu(1);
    FGT_OK(fg_sum_squares(&tx, &one));
    fgt_setup_cpu(2);
    FGT_OK(fg_sum_squares(&tx, &two));
    cr_assert(fabs(one - want) <= 1e-12 * want, "n %lld: %.17g vs reference %.17g", (long long)n,
              one, want);
    cr_assert(memcmp(&one, &two, sizeof one) == 0, "n %lld: 1 thread %.17g, 2 threads %.17g",
              (long long)n, one, two);
    free(x), free(xd);
  }
  /* By hand: 1 + 4 + 9 = 14. */
  float v[3] = {1, -2, 3};
  fg_tensor tv = fg_tensor_1d(v, 3);
  double out;
  FGT_OK(fg_sum_squares(&tv, &out));
  cr_assert_eq(out, 14.0);
}

/* ----------------------------------------------------------------------------------------- */
/* Validation and dispatch                                                                    */

Test(validation, shape_mismatch_names_op_and_argument) {
  fgt_setup_cpu(1);
  float a[6] = {0}, b[5] = {0}, y[6];
  fg_tensor ta = fg_tensor_1d(a, 6), tb = fg_tensor_1d(b, 5), ty = fg_tensor_1d(y, 6);
  cr_assert_eq(fg_add(&ta, &tb, &ty), FG_ERR_SHAPE);
  cr_assert(
      strstr(fg_last_error(), "add: x2 has shape [5] (5 elements), expected 6 elements") != NULL,
      "message: %s", fg_last_error());
  cr_assert_eq(fg_relu_backward(&ta, &tb, &ty, 0), FG_ERR_SHAPE);
  cr_assert(strstr(fg_last_error(), "relu_backward: dy") != NULL, "message: %s", fg_last_error());
  cr_assert_eq(fg_copy(&ta, &tb), FG_ERR_SHAPE);
  /* Wrong dtype. */
  int32_t iv[6] = {0};
  int64_t six = 6;
  fg_tensor ti = fg_tensor_view(iv, FG_I32, fg_host_device(), 1, &six);
  cr_assert_eq(fg_scale(2.0f, &ti, &ty), FG_ERR_SHAPE);
  cr_assert(strstr(fg_last_error(), "scale: x has dtype i32, expected f32") != NULL, "message: %s",
            fg_last_error());
  /* Missing tensor and non-finite alpha. */
  cr_assert_eq(fg_fill(NULL, 1.0f), FG_ERR_INVALID);
  cr_assert_eq(fg_axpy(INFINITY, &ta, &ty), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "alpha") != NULL, "message: %s", fg_last_error());
  /* A null output pointer for sum_squares. */
  cr_assert_eq(fg_sum_squares(&ta, NULL), FG_ERR_INVALID);
}

Test(validation, tensors_on_different_devices) {
  fgt_setup_cpu(1);
  float a[4] = {0}, y[4];
  fg_tensor ta = fg_tensor_1d(a, 4), ty = fg_tensor_1d(y, 4);
  ty.device.kind = FG_DEV_CUDA;
  cr_assert_eq(fg_relu_forward(&ta, &ty), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "different devices") != NULL, "message: %s", fg_last_error());
}

/* A backend whose table is empty: every entry reports "not supported", none crashes. */
Test(validation, null_entries_are_unsupported) {
  fgt_register_empty_backend();
  float a[4] = {1, 2, 3, 4}, b[4] = {0}, c[4] = {0}, d[4] = {0}, e[4] = {0};
  int32_t lab[2] = {0, 1};
  int64_t two = 2;
  fg_tensor ta = fg_tensor_1d(a, 4), tb = fg_tensor_1d(b, 4), tc = fg_tensor_1d(c, 4);
  fg_tensor td = fg_tensor_1d(d, 4), te = fg_tensor_1d(e, 4);
  fg_tensor m22 = fg_tensor_2d(a, 2, 2), n22 = fg_tensor_2d(b, 2, 2);
  fg_tensor ch = fg_tensor_1d(c, 2), ch2 = fg_tensor_1d(d, 2), ch3 = fg_tensor_1d(e, 2);
  fg_tensor tl = fg_tensor_view(lab, FG_I32, fg_host_device(), 1, &two);
  double loss;
  fg_kl_desc kd = {1.0f, 0.0f, FG_KL_BATCHMEAN, 1.0f};
  fg_sgd_hparams sh = {0.1f, 0.0f, 0.0f, 0.0f, 0};
  fg_adam_hparams ah = {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f};
  const fg_status got[] = {
      fg_bn_forward_train(&m22, &ch, &ch2, &n22, &ch3, &ch, NULL, NULL, 0.1f, 1e-5f),
      fg_bn_forward_eval(&m22, &ch, &ch2, &ch3, &ch, 1e-5f, &n22),
      fg_bn_backward(&m22, &n22, &ch, &ch2, &ch3, NULL, NULL, NULL, 0),
      fg_relu_forward(&ta, &tb),
      fg_relu_backward(&ta, &tb, &tc, 0),
      fg_add(&ta, &tb, &tc),
      fg_axpy(1.0f, &ta, &tb),
      fg_scale(1.0f, &ta, &tb),
      fg_copy(&ta, &tb),
      fg_fill(&ta, 0.0f),
      fg_dropout_forward(&ta, &tb, 0.5f, 1),
      fg_dropout_backward(&ta, &tb, 0.5f, 1, 0),
      fg_softmax_xent(&m22, &tl, NULL, 1.0f, NULL, 0, &loss, NULL),
      fg_kl_div(&kd, &m22, &n22, NULL, NULL, 0, &loss),
      fg_mse(&ta, &tb, 1.0f, NULL, 0, &loss),
      fg_sgd_step(&sh, &ta, &tb, NULL),
      fg_adam_step(&ah, 1, &ta, &tb, &tc, &td),
      fg_sum_squares(&te, &loss),
  };
  for (size_t i = 0; i < sizeof got / sizeof got[0]; i++)
    cr_assert_eq(got[i], FG_ERR_UNSUPPORTED, "entry %zu returned %s", i, fg_status_name(got[i]));
  cr_assert(strstr(fg_last_error(), "sum_squares: not supported by the empty backend") != NULL,
            "message: %s", fg_last_error());
  fg_backend_registry_clear();
}
