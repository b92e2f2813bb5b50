/* The per-element arithmetic of the CUDA elementwise kernels (cuda/math/elementwise.h), compiled
 * here by the host's C compiler: bitwise against the CPU backend's ops (cpu/elementwise.c) on the
 * same inputs, every pair of edge values included (+-0, denormals, +-FLT_MAX, +-infinity, NaNs),
 * against the float references of the bitwise class (tests/ref/ref_exact.h) and against the
 * double references (tests/ref/ref_math.h). Dropout at p = 0, 0.1, 0.5, 0.9, 0.999 and the float
 * just below 1, forward and backward, accumulating or not; its mask against the generator and
 * the kept fraction against 1 - p.
 *
 * "Bitwise" means the same bits, the sign of zero included, except that any NaN matches any NaN
 * where arithmetic makes one: the GPU's arithmetic returns the canonical NaN, so payloads are no
 * part of the kernels' contract (selections keep them, and that is checked on its own). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "cuda/math/elementwise.h"
#include "engine/backend/ops.h"
#include "engine/tensor/tensor.h"
#include "ref/ref_exact.h"
#include "ref/ref_math.h"

/* ----------------------------------------------------------------------------------------- */
/* Inputs                                                                                     */

static uint32_t bits_of(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static float float_of(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* The edge values every test crosses with one another. */
static float edge(int k) {
  switch (k) {
    case 0: return 0.0f;
    case 1: return -0.0f;
    case 2: return 1.0f;
    case 3: return -1.0f;
    case 4: return FLT_MIN;
    case 5: return -FLT_MIN;
    case 6: return float_of(0x00000001u); /* the smallest denormal */
    case 7: return -float_of(0x00000001u);
    case 8: return float_of(0x00400000u); /* a denormal */
    case 9: return FLT_MAX;
    case 10: return -FLT_MAX;
    case 11: return INFINITY;
    case 12: return -INFINITY;
    case 13: return NAN;
    case 14: return float_of(0xFFC00001u); /* a negative NaN with a payload */
    case 15: return 0.5f;
    case 16: return -2.5f;
    case 17: return 3.0e-39f;
    case 18: return 1.0e30f;
    default: return -1.0e-30f;
  }
}
enum { EDGES = 20, RANDOM = 4001, PAIRS = EDGES * EDGES, N = PAIRS + RANDOM };

/* a[i], b[i] cover every ordered pair of edge values, then RANDOM uniform values in [-2, 2). */
typedef struct inputs {
  float a[N], b[N], c[N];
} inputs;

static inputs *make_inputs(uint64_t seed) {
  inputs *in = malloc(sizeof *in);
  cr_assert(in);
  for (int i = 0; i < PAIRS; i++) in->a[i] = edge(i / EDGES), in->b[i] = edge(i % EDGES);
  fgt_fill_uniform(in->a + PAIRS, RANDOM, seed, -2.0f, 2.0f);
  fgt_fill_uniform(in->b + PAIRS, RANDOM, seed + 1, -2.0f, 2.0f);
  for (int i = 0; i < N; i++) in->c[i] = edge((i * 7 + 3) % EDGES);
  fgt_fill_uniform(in->c + PAIRS, RANDOM, seed + 2, -2.0f, 2.0f);
  return in;
}

static fg_tensor vec(float *x, int64_t n) { return fg_tensor_1d(x, n); }

/* The same bits, or NaN where a NaN is expected. */
static int same(float got, float want) {
  return isnan(want) ? isnan(got) : bits_of(got) == bits_of(want);
}

static void expect_same(const char *what, const float *got, const float *want, int64_t n,
                        const float *x1, const float *x2) {
  for (int64_t i = 0; i < n; i++)
    cr_assert(same(got[i], want[i]),
              "%s at %lld (inputs %a, %a): header %a (0x%08x), CPU backend %a (0x%08x)", what,
              (long long)i, (double)x1[i], x2 ? (double)x2[i] : 0.0, (double)got[i],
              bits_of(got[i]), (double)want[i], bits_of(want[i]));
}

/* got against a double reference where every input is finite (and the reference too). */
static void expect_near_ref(const char *what, const float *got, const double *want, int64_t n,
                            double rtol) {
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite(want[i])) continue;
    cr_assert(fabs((double)got[i] - want[i]) <= rtol * fabs(want[i]),
              "%s at %lld: %.9g, the double reference %.17g", what, (long long)i, (double)got[i],
              want[i]);
  }
}

static double *widen(const float *x, int64_t n) {
  double *d = malloc((size_t)n * sizeof *d);
  cr_assert(d);
  for (int64_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

static void setup(void) { fgt_setup_cpu(1); }

TestSuite(cuda_math_elementwise, .init = setup);

/* ----------------------------------------------------------------------------------------- */
/* ReLU                                                                                       */

Test(cuda_math_elementwise, relu_forward_matches_cpu_and_reference) {
  inputs *in = make_inputs(11);
  static float got[N], cpu[N];
  for (int i = 0; i < N; i++) got[i] = fg_math_relu(in->a[i]);
  fg_tensor x = vec(in->a, N), y = vec(cpu, N);
  FGT_OK(fg_relu_forward(&x, &y));
  expect_same("relu", got, cpu, N, in->a, NULL);
  /* a pure selection: every NaN, -0 and denormal keeps its bits */
  for (int i = 0; i < N; i++)
    if (!(in->a[i] < 0.0f))
      cr_assert_eq(bits_of(got[i]), bits_of(in->a[i]), "relu(%a) changed the bits",
                   (double)in->a[i]);
  cr_assert_eq(bits_of(fg_math_relu(-0.0f)), bits_of(-0.0f), "relu(-0) is -0 on the CPU");
  cr_assert_eq(bits_of(fg_math_relu(-FLT_MIN)), 0u, "relu of a negative value is +0");
  double *xd = widen(in->a, N), *yd = malloc(N * sizeof *yd);
  fg_ref_relu_forward(xd, N, yd);
  for (int i = 0; i < N; i++)
    if (!isnan(in->a[i]))
      cr_assert(got[i] == (float)yd[i], "relu at %d: %a vs %a", i, (double)got[i], yd[i]);
  free(xd), free(yd), free(in);
}

Test(cuda_math_elementwise, relu_backward_matches_cpu_and_reference) {
  inputs *in = make_inputs(12); /* y = a (edges at 0, -0, NaN), dy = b, dx (accumulated) = c */
  static float got[N], cpu[N];
  fg_tensor y = vec(in->a, N), dy = vec(in->b, N), dx = vec(cpu, N);
  for (int i = 0; i < N; i++) got[i] = fg_math_relu_grad(in->a[i], in->b[i]);
  FGT_OK(fg_relu_backward(&y, &dy, &dx, 0));
  expect_same("relu gradient", got, cpu, N, in->a, in->b);
  for (int i = 0; i < N; i++) /* a selection again: dy's bits or +0 */
    cr_assert(bits_of(got[i]) == (in->a[i] > 0.0f ? bits_of(in->b[i]) : 0u), "relu gradient at %d",
              i);

  for (int i = 0; i < N; i++) got[i] = fg_math_relu_grad_acc(in->a[i], in->b[i], in->c[i]);
  memcpy(cpu, in->c, sizeof cpu);
  FGT_OK(fg_relu_backward(&y, &dy, &dx, 1));
  expect_same("accumulated relu gradient", got, cpu, N, in->a, in->b);
  for (int i = 0; i < N; i++) /* y <= 0 leaves dx's bits alone, -0 included */
    if (!(in->a[i] > 0.0f)) cr_assert_eq(bits_of(got[i]), bits_of(in->c[i]), "dx changed at %d", i);

  double *yd = widen(in->a, N), *dyd = widen(in->b, N), *dxd = malloc(N * sizeof *dxd);
  fg_ref_relu_backward(yd, dyd, N, dxd);
  for (int i = PAIRS; i < N; i++)
    cr_assert(fg_math_relu_grad(in->a[i], in->b[i]) == (float)dxd[i],
              "relu gradient at %d vs reference", i);
  free(yd), free(dyd), free(dxd), free(in);
}

/* ----------------------------------------------------------------------------------------- */
/* add, axpy, scale                                                                           */

Test(cuda_math_elementwise, add_matches_cpu_and_reference) {
  inputs *in = make_inputs(13);
  static float got[N], cpu[N];
  for (int i = 0; i < N; i++) got[i] = fg_math_add(in->a[i], in->b[i]);
  fg_tensor x1 = vec(in->a, N), x2 = vec(in->b, N), y = vec(cpu, N);
  FGT_OK(fg_add(&x1, &x2, &y));
  expect_same("add", got, cpu, N, in->a, in->b);
  double *ad = widen(in->a, N), *bd = widen(in->b, N), *yd = malloc(N * sizeof *yd);
  fg_ref_add(ad, bd, N, yd);
  for (int i = 0; i < N; i++) /* one rounding of the exact sum, overflow included */
    if (!isnan(yd[i]))
      cr_assert(got[i] == (float)yd[i], "add at %d: %a vs %a", i, (double)got[i], yd[i]);
  free(ad), free(bd), free(yd), free(in);
}

Test(cuda_math_elementwise, axpy_matches_cpu_and_references) {
  inputs *in = make_inputs(14);
  static float got[N], cpu[N], f32[N];
  const float alphas[] = {0.0f, -0.0f, 1.0f, -0.37f, 3.0e-3f, 1.0e20f, INFINITY, NAN};
  for (size_t k = 0; k < sizeof alphas / sizeof alphas[0]; k++) {
    const float alpha = alphas[k];
    for (int i = 0; i < N; i++) got[i] = fg_math_axpy(alpha, in->a[i], in->b[i]);
    memcpy(cpu, in->b, sizeof cpu);
    memcpy(f32, in->b, sizeof f32);
    fg_tensor x = vec(in->a, N), y = vec(cpu, N);
    if (isfinite(alpha)) { /* the entry point takes finite alphas only */
      FGT_OK(fg_axpy(alpha, &x, &y));
      expect_same("axpy", got, cpu, N, in->a, in->b);
    }
    fg_ref_f32_axpy(alpha, in->a, N, f32);
    expect_same("axpy against the float reference", got, f32, N, in->a, in->b);
    if (!isfinite(alpha)) continue;
    /* two roundings: within 2^-24 (|alpha x| + |y + alpha x|) of the exact result */
    double *xd = widen(in->a + PAIRS, RANDOM), *yd = widen(in->b + PAIRS, RANDOM);
    fg_ref_axpy(alpha, xd, RANDOM, yd);
    for (int i = 0; i < RANDOM; i++) {
      const double bound = ldexp(fabs((double)alpha * xd[i]) + fabs(yd[i]), -24);
      cr_assert(fabs((double)got[PAIRS + i] - yd[i]) <= bound, "axpy alpha %g at %d: %.9g vs %.17g",
                (double)alpha, PAIRS + i, (double)got[PAIRS + i], yd[i]);
    }
    free(xd), free(yd);
  }
  free(in);
}

Test(cuda_math_elementwise, scale_matches_cpu_and_reference) {
  inputs *in = make_inputs(15);
  static float got[N], cpu[N];
  const float alphas[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.1f, 1.0e-30f, 1.0e30f};
  for (size_t k = 0; k < sizeof alphas / sizeof alphas[0]; k++) {
    const float alpha = alphas[k];
    for (int i = 0; i < N; i++) got[i] = fg_math_scale(alpha, in->a[i]);
    fg_tensor x = vec(in->a, N), y = vec(cpu, N);
    FGT_OK(fg_scale(alpha, &x, &y));
    expect_same("scale", got, cpu, N, in->a, NULL);
    double *xd = widen(in->a, N), *yd = malloc(N * sizeof *yd);
    fg_ref_scale(alpha, xd, N, yd);
    for (int i = 0; i < N; i++) /* one rounding of the exact product, underflow included */
      if (!isnan(yd[i]))
        cr_assert(got[i] == (float)yd[i], "scale %g at %d: %a vs %a", (double)alpha, i,
                  (double)got[i], yd[i]);
    free(xd), free(yd);
  }
  free(in);
}

/* ----------------------------------------------------------------------------------------- */
/* Dropout                                                                                    */

static const float DROP_P[] = {0.0f, 0.1f, 0.5f, 0.9f, 0.999f, 0x1.fffffep-1f};
enum { DROP_PS = sizeof DROP_P / sizeof DROP_P[0] };

/* out (=|+=) the header's dropout map of in. */
static void header_dropout(const float *in, float *out, int64_t n, float p, uint64_t key,
                           int accumulate) {
  const float keep_scale = fg_math_dropout_keep_scale(p);
  for (int64_t i = 0; i < n; i++)
    out[i] = accumulate ? fg_math_dropout_acc(in[i], out[i], p, keep_scale, key, i)
                        : fg_math_dropout(in[i], p, keep_scale, key, i);
}

Test(cuda_math_elementwise, dropout_matches_cpu_and_references) {
  inputs *in = make_inputs(16);
  static float got[N], cpu[N], f32[N];
  const uint64_t key = 0x9E3779B97F4A7C15ull;
  for (int k = 0; k < DROP_PS; k++) {
    const float p = DROP_P[k];
    fg_tensor x = vec(in->a, N), y = vec(cpu, N);
    /* forward */
    header_dropout(in->a, got, N, p, key, 0);
    FGT_OK(fg_dropout_forward(&x, &y, p, key));
    expect_same("dropout forward", got, cpu, N, in->a, NULL);
    fg_ref_f32_dropout(in->a, N, p, key, 0, f32);
    expect_same("dropout forward against the float reference", got, f32, N, in->a, NULL);
    /* backward, assigning and accumulating onto c */
    FGT_OK(fg_dropout_backward(&x, &y, p, key, 0));
    expect_same("dropout backward", got, cpu, N, in->a, NULL);
    memcpy(got, in->c, sizeof got), memcpy(cpu, in->c, sizeof cpu), memcpy(f32, in->c, sizeof f32);
    header_dropout(in->a, got, N, p, key, 1);
    FGT_OK(fg_dropout_backward(&x, &y, p, key, 1));
    expect_same("accumulated dropout backward", got, cpu, N, in->a, in->c);
    fg_ref_f32_dropout(in->a, N, p, key, 1, f32);
    expect_same("accumulated dropout against the float reference", got, f32, N, in->a, in->c);
    /* the double reference (1 - p in double: the float 1 - p is exact for p >= 0.5 and within
     * 2^-24 relative below it; then one rounding of the quotient), on the random tail */
    double *xd = widen(in->a + PAIRS, RANDOM), *yd = malloc(RANDOM * sizeof *yd);
    fg_ref_dropout_forward(xd, RANDOM, p, key, yd);
    /* the reference draws for element i of its own buffer: the tail from index 0 again */
    float *tail = malloc(RANDOM * sizeof *tail);
    header_dropout(in->a + PAIRS, tail, RANDOM, p, key, 0);
    expect_near_ref("dropout against the double reference", tail, yd, RANDOM, 0x1p-22);
    free(xd), free(yd), free(tail);
  }
  free(in);
}

/* The mask is the generator's: kept exactly where fg_rng_u32_at(key, i) >> 8 >= p 2^24 (an
 * integer comparison, independent of the float uniform), and kept values are x / (1 - p). */
Test(cuda_math_elementwise, dropout_mask_is_the_generators) {
  const uint64_t key = 42;
  for (int k = 0; k < DROP_PS; k++) {
    const float p = DROP_P[k];
    const double threshold = ldexp((double)p, 24); /* exact: p has 24 bits */
    const float keep_scale = fg_math_dropout_keep_scale(p);
    cr_assert_eq(keep_scale, (float)(1.0 - (double)p), "1 - p once rounded, p = %a", (double)p);
    for (int64_t i = 0; i < 20000; i++) {
      const int keep = (double)(fg_rng_u32_at(key, (uint64_t)i) >> 8) >= threshold;
      cr_assert_eq(fg_math_dropout_keep(p, key, i), keep, "p %a, element %lld", (double)p,
                   (long long)i);
      cr_assert_eq(fg_math_dropout(3.0f, p, keep_scale, key, i), keep ? 3.0f / keep_scale : 0.0f);
    }
  }
  /* the boundary: a draw equal to p keeps its element, one just above p does not */
  for (int64_t i = 0; i < 256; i++) {
    const float u = fg_rng_uniform_at(key, (uint64_t)i);
    if (u == 0.0f) continue;
    float x[1] = {1.0f}, out[1] = {0.0f};
    fg_tensor xt = vec(x, 1), yt = vec(out, 1);
    cr_assert(fg_math_dropout_keep(u, key, i), "a draw equal to p = %a is kept", (double)u);
    cr_assert(!fg_math_dropout_keep(nextafterf(u, 1.0f), key, i), "p just above the draw %a",
              (double)u);
    if (i != 0) continue; /* the CPU backend draws element 0 of its tensor */
    FGT_OK(fg_dropout_forward(&xt, &yt, u, key));
    cr_assert_eq(bits_of(out[0]),
                 bits_of(fg_math_dropout(x[0], u, fg_math_dropout_keep_scale(u), key, 0)));
    cr_assert(out[0] != 0.0f, "the CPU keeps a draw equal to p");
  }
  /* p = 0 keeps everything unchanged (the kernels copy instead, as the CPU does) */
  for (int64_t i = 0; i < 1000; i++)
    cr_assert_eq(fg_math_dropout(-1.25f, 0.0f, 1.0f, key, i), -1.25f);
}

/* Statistics: the kept fraction of 200000 draws is 1 - p within 5 standard deviations. */
Test(cuda_math_elementwise, dropout_keeps_one_minus_p) {
  const int64_t n = 200000;
  for (int k = 1; k < DROP_PS; k++) {
    const double p = DROP_P[k];
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) kept += fg_math_dropout_keep(DROP_P[k], 7, i);
    const double sd = sqrt(n * p * (1.0 - p));
    cr_assert(fabs((double)kept - n * (1.0 - p)) <= 5.0 * sd + 1.0, "p %g: %lld of %lld kept", p,
              (long long)kept, (long long)n);
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Sigmoid and product                                                                        */

/* The sigmoid against the double reference (expf within a few ulp: 1e-6 relative on finite
 * outputs), its saturations and NaN; the CPU backend runs the header's function too, so the op
 * is checked to return it. */
Test(cuda_math_elementwise, sigmoid_matches_reference_and_saturates) {
  inputs *in = make_inputs(21);
  static float got[N], cpu[N];
  for (int i = 0; i < N; i++) got[i] = fg_math_sigmoid(4.0f * in->a[i]);
  static float x4[N];
  for (int i = 0; i < N; i++) x4[i] = 4.0f * in->a[i];
  fg_tensor x = vec(x4, N), y = vec(cpu, N);
  FGT_OK(fg_sigmoid_forward(&x, &y));
  expect_same("sigmoid", got, cpu, N, x4, NULL);
  double *xd = widen(x4, N), *yd = malloc(N * sizeof *yd);
  fg_ref_sigmoid_forward(xd, N, yd);
  expect_near_ref("sigmoid", got, yd, N, 1e-6);
  cr_assert_eq(fg_math_sigmoid(0.0f), 0.5f);
  cr_assert_eq(fg_math_sigmoid(-0.0f), 0.5f);
  cr_assert_eq(fg_math_sigmoid(INFINITY), 1.0f);
  cr_assert_eq(bits_of(fg_math_sigmoid(-INFINITY)), 0u, "sigmoid(-inf) is +0");
  cr_assert_eq(bits_of(fg_math_sigmoid(-200.0f)), 0u, "exp(200) overflows: 1 / inf = +0");
  cr_assert_eq(fg_math_sigmoid(200.0f), 1.0f);
  cr_assert(isnan(fg_math_sigmoid(NAN)));
  for (int i = 0; i < N; i++)
    if (!isnan(got[i])) cr_assert(got[i] >= 0.0f && got[i] <= 1.0f, "sigmoid(%a) = %a", (double)x4[i], (double)got[i]);
  free(xd), free(yd), free(in);
}

/* The gradient dy (y (1 - y)) is three roundings: against the double reference within 3 ulp
 * on y in [0, 1]; 1/2 and the ends by hand; the accumulating form adds dx after. */
Test(cuda_math_elementwise, sigmoid_gradient_matches_reference) {
  inputs *in = make_inputs(22);
  static float yv[N];
  for (int i = 0; i < N; i++) yv[i] = fg_math_sigmoid(in->a[PAIRS + i % RANDOM] * 3.0f);
  double *yd = widen(yv, N), *dyd = widen(in->b, N), *dxd = malloc(N * sizeof *dxd);
  fg_ref_sigmoid_backward(yd, dyd, N, dxd);
  for (int i = PAIRS; i < N; i++) {
    const float g = fg_math_sigmoid_grad(yv[i], in->b[i]);
    cr_assert(fabs((double)g - dxd[i]) <= 4e-7 * fabs(dxd[i]) + 1e-45, "sigmoid gradient at %d: %a vs %a", i,
              (double)g, dxd[i]);
    cr_assert_eq(bits_of(fg_math_sigmoid_grad_acc(yv[i], in->b[i], in->c[i])), bits_of(in->c[i] + g));
  }
  cr_assert_eq(fg_math_sigmoid_grad(0.5f, 1.0f), 0.25f);
  cr_assert_eq(fg_math_sigmoid_grad(0.0f, 3.0f), 0.0f);
  cr_assert_eq(fg_math_sigmoid_grad(1.0f, 3.0f), 0.0f);
  free(yd), free(dyd), free(dxd), free(in);
}

/* A product of two floats is exact in double: the header's product is its rounding, and the
 * accumulating form the float sum of that and y; both match the CPU op bit for bit. */
Test(cuda_math_elementwise, mul_matches_cpu_and_reference) {
  inputs *in = make_inputs(23);
  static float got[N], cpu[N];
  for (int i = 0; i < N; i++) got[i] = fg_math_mul(in->a[i], in->b[i]);
  fg_tensor x1 = vec(in->a, N), x2 = vec(in->b, N), y = vec(cpu, N);
  FGT_OK(fg_mul(&x1, &x2, &y, 0));
  expect_same("mul", got, cpu, N, in->a, in->b);
  double *ad = widen(in->a, N), *bd = widen(in->b, N), *yd = malloc(N * sizeof *yd);
  fg_ref_mul(ad, bd, N, yd);
  for (int i = 0; i < N; i++)
    if (!isnan(yd[i])) cr_assert(same(got[i], (float)yd[i]), "mul at %d: %a vs %a", i, (double)got[i], yd[i]);
  for (int i = 0; i < N; i++) got[i] = fg_math_mul_acc(in->a[i], in->b[i], in->c[i]);
  memcpy(cpu, in->c, sizeof cpu);
  FGT_OK(fg_mul(&x1, &x2, &y, 1));
  expect_same("accumulated mul", got, cpu, N, in->a, in->b);
  for (int i = PAIRS; i < N; i++)
    cr_assert(got[i] == in->c[i] + (float)yd[i], "accumulated mul at %d", i);
  free(ad), free(bd), free(yd), free(in);
}
