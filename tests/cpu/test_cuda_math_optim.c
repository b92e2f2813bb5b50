/* The per-element arithmetic of the CUDA optimizer kernels (cuda/math/optim.h), compiled here by
 * the host's C compiler and driven as the kernels drive it (constants prepared once per step,
 * then one element function per element): bitwise against the CPU backend's sgd_step and
 * adam_step (cpu/optim.c) on the same state, over several consecutive steps; bitwise against
 * the float references of the bitwise class (tests/ref/ref_exact.h); and within float rounding
 * of the double references (tests/ref/ref_math.h). SGD without momentum, with momentum, Nesterov,
 * dampening (0.3 and 1), weight decay, lr 0; Adam at steps 1, 2, 10 and 1000 (and where beta^step
 * underflows), with and without weight decay, eps 0. Edge values in the state: +-0, denormals,
 * NaN and infinite gradients. Adam's prepared constants against an independent computation of
 * the bias corrections.
 *
 * "Bitwise" means the same bits, the sign of zero included, except that any NaN matches any NaN:
 * the GPU's arithmetic returns the canonical NaN, so payloads are no part of the contract. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "cuda/math/optim.h"
#include "engine/backend/ops.h"
#include "engine/tensor/tensor.h"
#include "ref/ref_exact.h"
#include "ref/ref_math.h"

enum { EDGES = 12, N = 3001 };

static uint32_t bits_of(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static int same(float got, float want) {
  return isnan(want) ? isnan(got) : bits_of(got) == bits_of(want);
}

static void expect_same(const char *what, int64_t step, const float *got, const float *want,
                        int64_t n) {
  for (int64_t i = 0; i < n; i++)
    cr_assert(same(got[i], want[i]),
              "%s, step %lld, element %lld: header %a (0x%08x), expected %a (0x%08x)", what,
              (long long)step, (long long)i, (double)got[i], bits_of(got[i]), (double)want[i],
              bits_of(want[i]));
}

static void expect_near(const char *what, const float *got, const double *want, int64_t from,
                        int64_t n, double atol, double rtol) {
  for (int64_t i = from; i < n; i++)
    cr_assert(fabs((double)got[i] - want[i]) <= atol + rtol * fabs(want[i]),
              "%s, element %lld: %.9g, the double reference %.17g", what, (long long)i,
              (double)got[i], want[i]);
}

/* Gradient edge values at the head of g (the rest uniform in [-1, 1)): NaN and infinity
 * propagate into the state as the CPU propagates them. */
static float edge_grad(int k) {
  const float e[EDGES] = {0.0f,  -0.0f,   1.0e-45f, -1.0e-45f, FLT_MIN,   1.0f,
                          -1.0f, 1.0e30f, -1.0e30f, INFINITY,  -INFINITY, NAN};
  return e[k];
}

/* A fresh state: p and the moments uniform, with zeros, -0 and denormals at the head of p. */
static void fill_state(float *p, float *g, float *s1, float *s2, int64_t n, uint64_t seed,
                       int zero_state) {
  fgt_fill_uniform(p, (size_t)n, seed, -1.0f, 1.0f);
  fgt_fill_uniform(g, (size_t)n, seed + 1, -1.0f, 1.0f);
  fgt_fill_uniform(s1, (size_t)n, seed + 2, -0.1f, 0.1f);
  fgt_fill_uniform(s2, (size_t)n, seed + 3, 0.0f, 0.01f);
  for (int k = 0; k < EDGES; k++) g[k] = edge_grad(k), g[EDGES + k] = g[k] * 0.5f;
  p[EDGES] = 0.0f, p[EDGES + 1] = -0.0f, p[EDGES + 2] = 1.0e-45f, p[EDGES + 3] = -FLT_MIN;
  if (zero_state) memset(s1, 0, (size_t)n * sizeof *s1), memset(s2, 0, (size_t)n * sizeof *s2);
}

static float *copy_of(const float *x, int64_t n) {
  float *c = malloc((size_t)n * sizeof *c);
  cr_assert(c);
  memcpy(c, x, (size_t)n * sizeof *c);
  return c;
}

static double *widen(const float *x, int64_t n) {
  double *d = malloc((size_t)n * sizeof *d);
  cr_assert(d);
  for (int64_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

static void setup(void) { fgt_setup_cpu(1); }

TestSuite(cuda_math_optim, .init = setup);

/* ----------------------------------------------------------------------------------------- */
/* SGD                                                                                        */

/* One step over n elements as cuda/optim.cu runs it: the plain element function when momentum
 * is 0 (the buffer untouched), else the momentum one. */
static void header_sgd(const fg_sgd_hparams *h, float *p, const float *g, float *buf, int64_t n) {
  const fg_math_sgd k = fg_math_sgd_prepare(h);
  for (int64_t i = 0; i < n; i++) {
    if (k.momentum == 0.0f) {
      p[i] = fg_math_sgd_plain(k, p[i], g[i]);
    } else {
      const fg_math_sgd_state s = fg_math_sgd_momentum(k, p[i], g[i], buf[i]);
      p[i] = s.p, buf[i] = s.buf;
    }
  }
}

static const fg_sgd_hparams SGD_CASES[] = {
    {0.1f, 0.0f, 1e-3f, 0.0f, 0},  /* no momentum, weight decay */
    {0.1f, 0.0f, 0.0f, 0.0f, 0},   /* no momentum, no weight decay */
    {0.1f, 0.9f, 5e-4f, 0.0f, 0},  /* momentum */
    {0.05f, 0.9f, 1e-3f, 0.0f, 1}, /* Nesterov */
    {0.1f, 0.5f, 0.0f, 0.3f, 0},   /* dampening */
    {0.1f, 0.9f, 1e-2f, 1.0f, 0},  /* dampening 1: the gradient never enters the buffer */
    {0.0f, 0.9f, 0.1f, 0.0f, 0},   /* lr 0: the buffer moves, the parameter keeps its bits */
    {3.0f, 0.99f, 0.5f, 0.1f, 0},  /* large lr and weight decay */
};
enum { SGD_CASE_COUNT = sizeof SGD_CASES / sizeof SGD_CASES[0] };

Test(cuda_math_optim, sgd_matches_cpu_over_steps) {
  for (int c = 0; c < SGD_CASE_COUNT; c++) {
    const fg_sgd_hparams *h = &SGD_CASES[c];
    for (int zero_buffer = 0; zero_buffer < 2; zero_buffer++) {
      float *p = malloc(N * sizeof *p), *g = malloc(N * sizeof *g), *buf = malloc(N * sizeof *buf);
      float *unused = malloc(N * sizeof *unused);
      fill_state(p, g, buf, unused, N, 100 + (uint64_t)c, zero_buffer);
      float *cp = copy_of(p, N), *cbuf = copy_of(buf, N), *fp = copy_of(p, N),
            *fbuf = copy_of(buf, N);
      float *p_before = copy_of(p, N), *buf_before = copy_of(buf, N);
      fg_tensor pt = fg_tensor_1d(cp, N), gt = fg_tensor_1d(g, N), bt = fg_tensor_1d(cbuf, N);
      for (int64_t step = 1; step <= 3; step++) {
        header_sgd(h, p, g, buf, N);
        FGT_OK(fg_sgd_step(h, &pt, &gt, h->momentum != 0.0f ? &bt : NULL));
        fg_ref_f32_sgd_step(h, N, fp, g, h->momentum != 0.0f ? fbuf : NULL);
        expect_same("sgd parameter against the CPU backend", step, p, cp, N);
        expect_same("sgd buffer against the CPU backend", step, buf, cbuf, N);
        expect_same("sgd parameter against the float reference", step, p, fp, N);
        expect_same("sgd buffer against the float reference", step, buf, fbuf, N);
      }
      if (h->momentum == 0.0f) /* the buffer is not touched at all */
        cr_assert(memcmp(buf, buf_before, N * sizeof *buf) == 0,
                  "sgd without momentum wrote the buffer");
      if (h->lr == 0.0f) /* p - 0 update = p, bit for bit, wherever the update is finite */
        for (int i = 0; i < N; i++)
          if (isfinite(g[i]))
            cr_assert_eq(bits_of(p[i]), bits_of(p_before[i]), "lr 0 moved p at %d", i);
      free(p), free(g), free(buf), free(unused), free(cp), free(cbuf), free(fp), free(fbuf);
      free(p_before), free(buf_before);
    }
  }
}

/* One step from random finite state against the double reference: float rounding only (p and the
 * update within a few ulps of 1, the buffer likewise). */
Test(cuda_math_optim, sgd_matches_double_reference) {
  for (int c = 0; c < SGD_CASE_COUNT; c++) {
    const fg_sgd_hparams *h = &SGD_CASES[c];
    float *p = malloc(N * sizeof *p), *g = malloc(N * sizeof *g), *buf = malloc(N * sizeof *buf);
    fgt_fill_uniform(p, N, 200 + (uint64_t)c, -1.0f, 1.0f);
    fgt_fill_uniform(g, N, 300 + (uint64_t)c, -1.0f, 1.0f);
    fgt_fill_uniform(buf, N, 400 + (uint64_t)c, -1.0f, 1.0f);
    double *pd = widen(p, N), *gd = widen(g, N), *bd = widen(buf, N);
    header_sgd(h, p, g, buf, N);
    fg_ref_sgd_step(h, N, pd, gd, h->momentum != 0.0f ? bd : NULL);
    /* |update| <= |g| + wd |p| + momentum (|buf| + ...) < 3 here, times lr <= 3 */
    expect_near("sgd parameter", p, pd, 0, N, 1e-5, 1e-6);
    if (h->momentum != 0.0f) expect_near("sgd buffer", buf, bd, 0, N, 1e-6, 1e-6);
    free(p), free(g), free(buf), free(pd), free(gd), free(bd);
  }
}

/* By hand: p = 1, g = 0.5, buffer 0, lr 0.1, weight decay 0.01 (d = 0.51): momentum 0.9 gives
 * buf 0.51 and p 0.949; Nesterov p = 1 - 0.1 (0.51 + 0.9 * 0.51) = 0.9031; dampening 0.5 gives
 * buf 0.255 and p 0.9745. */
Test(cuda_math_optim, sgd_by_hand) {
  const fg_sgd_hparams plain = {0.1f, 0.9f, 0.01f, 0.0f, 0},
                       nesterov = {0.1f, 0.9f, 0.01f, 0.0f, 1}, damp = {0.1f, 0.9f, 0.01f, 0.5f, 0};
  fg_math_sgd_state s = fg_math_sgd_momentum(fg_math_sgd_prepare(&plain), 1.0f, 0.5f, 0.0f);
  cr_assert(fabs(s.p - 0.949) <= 1e-7 && fabs(s.buf - 0.51) <= 1e-7, "momentum: %.9g %.9g", s.p,
            s.buf);
  s = fg_math_sgd_momentum(fg_math_sgd_prepare(&nesterov), 1.0f, 0.5f, 0.0f);
  cr_assert(fabs(s.p - 0.9031) <= 1e-7 && fabs(s.buf - 0.51) <= 1e-7, "nesterov: %.9g %.9g", s.p,
            s.buf);
  s = fg_math_sgd_momentum(fg_math_sgd_prepare(&damp), 1.0f, 0.5f, 0.0f);
  cr_assert(fabs(s.p - 0.9745) <= 1e-7 && fabs(s.buf - 0.255) <= 1e-7, "dampening: %.9g %.9g", s.p,
            s.buf);
  cr_assert(fabs(fg_math_sgd_plain(fg_math_sgd_prepare(&plain), 1.0f, 0.5f) - 0.949) <= 1e-7);
}

/* ----------------------------------------------------------------------------------------- */
/* Adam                                                                                       */

static void header_adam(const fg_adam_hparams *h, int64_t step, float *p, const float *g, float *m,
                        float *v, int64_t n) {
  const fg_math_adam k = fg_math_adam_prepare(h, step);
  for (int64_t i = 0; i < n; i++) {
    const fg_math_adam_state s = fg_math_adam_update(k, p[i], g[i], m[i], v[i]);
    p[i] = s.p, m[i] = s.m, v[i] = s.v;
  }
}

typedef struct adam_case {
  fg_adam_hparams h;
  int64_t first_step;
} adam_case;

static const adam_case ADAM_CASES[] = {
    {{1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f}, 1},
    {{1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f}, 2},
    {{0.01f, 0.8f, 0.99f, 1e-6f, 1e-2f}, 10},
    {{0.01f, 0.8f, 0.99f, 1e-6f, 1e-2f}, 1000},
    {{0.1f, 0.5f, 0.9f, 0.0f, 0.0f}, 1},            /* eps 0: 0 / 0 where g = v = 0 */
    {{1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f}, 2000000}, /* beta1^step underflows: bc1 = 1 */
};
enum { ADAM_CASE_COUNT = sizeof ADAM_CASES / sizeof ADAM_CASES[0] };

Test(cuda_math_optim, adam_matches_cpu_over_steps) {
  for (int c = 0; c < ADAM_CASE_COUNT; c++) {
    const fg_adam_hparams *h = &ADAM_CASES[c].h;
    const int64_t first = ADAM_CASES[c].first_step;
    float *p = malloc(N * sizeof *p), *g = malloc(N * sizeof *g), *m = malloc(N * sizeof *m),
          *v = malloc(N * sizeof *v);
    fill_state(p, g, m, v, N, 500 + (uint64_t)c, first == 1);
    float *cp = copy_of(p, N), *cm = copy_of(m, N), *cv = copy_of(v, N);
    float *fp = copy_of(p, N), *fm = copy_of(m, N), *fv = copy_of(v, N);
    fg_tensor pt = fg_tensor_1d(cp, N), gt = fg_tensor_1d(g, N), mt = fg_tensor_1d(cm, N),
              vt = fg_tensor_1d(cv, N);
    for (int64_t step = first; step < first + 3; step++) {
      header_adam(h, step, p, g, m, v, N);
      FGT_OK(fg_adam_step(h, step, &pt, &gt, &mt, &vt));
      fg_ref_f32_adam_step(h, step, N, fp, g, fm, fv);
      expect_same("adam parameter against the CPU backend", step, p, cp, N);
      expect_same("adam m against the CPU backend", step, m, cm, N);
      expect_same("adam v against the CPU backend", step, v, cv, N);
      expect_same("adam parameter against the float reference", step, p, fp, N);
      expect_same("adam m against the float reference", step, m, fm, N);
      expect_same("adam v against the float reference", step, v, fv, N);
    }
    free(p), free(g), free(m), free(v), free(cp), free(cm), free(cv), free(fp), free(fm), free(fv);
  }
}

/* One step from random finite state against the double reference. The update lr m / (sqrt(v) /
 * sqrt(bc2) + eps) is a few roundings of values of order lr; the moments are three roundings of
 * terms up to 0.1 (m a difference of them, v a sum of non-negative ones). */
Test(cuda_math_optim, adam_matches_double_reference) {
  for (int c = 0; c < ADAM_CASE_COUNT; c++) {
    const fg_adam_hparams *h = &ADAM_CASES[c].h;
    const int64_t step = ADAM_CASES[c].first_step;
    float *p = malloc(N * sizeof *p), *g = malloc(N * sizeof *g), *m = malloc(N * sizeof *m),
          *v = malloc(N * sizeof *v);
    fgt_fill_uniform(p, N, 600 + (uint64_t)c, -1.0f, 1.0f);
    fgt_fill_uniform(g, N, 700 + (uint64_t)c, -1.0f, 1.0f);
    fgt_fill_uniform(m, N, 800 + (uint64_t)c, -0.1f, 0.1f);
    fgt_fill_uniform(v, N, 900 + (uint64_t)c, 1e-4f, 0.01f);
    double *pd = widen(p, N), *gd = widen(g, N), *md = widen(m, N), *vd = widen(v, N);
    header_adam(h, step, p, g, m, v, N);
    fg_ref_adam_step(h, step, N, pd, gd, md, vd);
    expect_near("adam parameter", p, pd, 0, N, 1e-6, 1e-6);
    expect_near("adam m", m, md, 0, N, 1e-7, 1e-6); /* a difference of terms up to 0.1 */
    expect_near("adam v", v, vd, 0, N, 1e-12, 1e-6);
    free(p), free(g), free(m), free(v), free(pd), free(gd), free(md), free(vd);
  }
}

/* The prepared constants against the bias corrections computed independently: beta^step by
 * repeated multiplication in long double (64-bit significand: at most ~2e-16 relative error
 * after 1000 steps), so each constant is the correctly rounded float or its neighbour. */
Test(cuda_math_optim, adam_constants) {
  const int64_t steps[] = {1, 2, 3, 10, 1000};
  for (int c = 0; c < ADAM_CASE_COUNT; c++) {
    const fg_adam_hparams *h = &ADAM_CASES[c].h;
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
      long double b1 = 1.0L, b2 = 1.0L;
      for (int64_t i = 0; i < steps[s]; i++) b1 *= h->beta1, b2 *= h->beta2;
      const float step_size = (float)((long double)h->lr / (1.0L - b1));
      const float bc2_sqrt = (float)sqrtl(1.0L - b2);
      const fg_math_adam k = fg_math_adam_prepare(h, steps[s]);
      cr_assert(fabsf(k.step_size - step_size) <= FLT_EPSILON * step_size,
                "step %lld: lr / bc1 %a, expected %a", (long long)steps[s], (double)k.step_size,
                (double)step_size);
      cr_assert(fabsf(k.bc2_sqrt - bc2_sqrt) <= FLT_EPSILON * bc2_sqrt,
                "step %lld: sqrt(bc2) %a, expected %a", (long long)steps[s], (double)k.bc2_sqrt,
                (double)bc2_sqrt);
      cr_assert_eq(k.one_minus_beta1, (float)(1.0L - h->beta1));
      cr_assert_eq(k.one_minus_beta2, (float)(1.0L - h->beta2));
      cr_assert(k.beta1 == h->beta1 && k.beta2 == h->beta2 && k.eps == h->eps &&
                k.weight_decay == h->weight_decay);
    }
  }
  /* step 1: the first update is lr sign(g) (m / sqrt(v) = g / |g| after bias correction) */
  const fg_adam_hparams h = {0.01f, 0.9f, 0.999f, 0.0f, 0.0f};
  const fg_math_adam_state st =
      fg_math_adam_update(fg_math_adam_prepare(&h, 1), 0.5f, -0.25f, 0.0f, 0.0f);
  cr_assert(fabs(st.p - 0.51) <= 1e-7, "first Adam step from p 0.5, g -0.25: %.9g", st.p);
}

/* eps 0 with g = m = v = 0 gives 0 / 0 = NaN, as on the CPU; eps > 0 leaves p alone. */
Test(cuda_math_optim, adam_zero_gradient) {
  const fg_adam_hparams zero_eps = {0.1f, 0.9f, 0.999f, 0.0f, 0.0f},
                        with_eps = {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f};
  cr_assert(
      isnan(fg_math_adam_update(fg_math_adam_prepare(&zero_eps, 1), 0.5f, 0.0f, 0.0f, 0.0f).p));
  const fg_math_adam_state s =
      fg_math_adam_update(fg_math_adam_prepare(&with_eps, 1), -0.0f, 0.0f, 0.0f, 0.0f);
  cr_assert(bits_of(s.p) == bits_of(-0.0f) && s.m == 0.0f && s.v == 0.0f, "p %a m %a v %a",
            (double)s.p, (double)s.m, (double)s.v);
}
