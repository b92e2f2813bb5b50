/* fedgap bench nhsic: the nhsic op (value and gradient, as NeuLite's loss calls it) timed on one
 * device over a grid of batch rows m x feature sizes d, beside the roofline of each cell.
 *
 * Each cell allocates z [m, d] (standard normal), dz [m, d] and the target on the device through
 * a ledger, runs --warmup untimed calls, then --repeats timed calls; each timed call is bracketed
 * by device synchronisations, so the host clock measures finished work; the median and the
 * fastest are reported.
 *
 * The roofline counts the work of the algorithm the CUDA backend uses (cuda.md: a Gram matrix by
 * SYRK, m x m kernel work, the gradient by one GEMM), not of any backend's own loop order:
 *   FLOPs = m (m + 1) d           Z Z^T (m (m + 1) / 2 dot products of length d, 2 FLOPs a term)
 *         + 2 m^2 d               dZ = c M' Z
 *         + 24 m^2                distances, exponentials, centring, the three Frobenius
 *                                 products and M' over the two m x m kernels (a fixed count)
 *         [+ m (m + 1) d_x        X X^T, for a feature target x of d_x values per row]
 *   bytes = 4 m d + 4 m d         z read once, dz written once
 *         + 4 m                   the labels read once [or 4 m d_x: x read once]
 * (the m x m intermediates are not counted: at m <= 256 they fit in the L2 cache). The floor is
 * max(FLOPs / peak FLOP rate, bytes / peak bandwidth); the defaults are an H100 SXM's FP32 rate
 * without tensor cores (67 TFLOP/s) and HBM3 bandwidth (3350 GB/s), to be overridden for any
 * other device (the CPU's figures are only compared with that device's floor when given). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "apps/progress.h"
#include "engine/backend/ops.h"
#include "engine/base/rng.h"
#include "engine/mem/region.h"

enum { MAX_GRID = 16 };

typedef struct nhsic_bench {
  int ms[MAX_GRID], n_m;
  int64_t ds[MAX_GRID];
  int n_d;
  int repeats, warmup, classes, input_dim;
  int feature_target; /* --target input: x [m, input_dim] instead of labels */
  double peak_tflops, peak_gbs;
  fg_device device;
} nhsic_bench;

/* The counted work of one call (value and gradient), as the header describes. */
static void roofline_counts(const nhsic_bench *o, int64_t m, int64_t d, double *flops, double *bytes) {
  double md = (double)m, dd = (double)d;
  *flops = md * (md + 1.0) * dd + 2.0 * md * md * dd + 24.0 * md * md;
  *bytes = 8.0 * md * dd;
  if (o->feature_target) {
    *flops += md * (md + 1.0) * (double)o->input_dim;
    *bytes += 4.0 * md * (double)o->input_dim;
  } else {
    *bytes += 4.0 * md;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* "64,128,256" -> out[], each in [lo, hi]; returns the count, or -1. */
static int parse_list(const char *text, int64_t lo, int64_t hi, int64_t *out) {
  int n = 0;
  const char *p = text;
  while (*p) {
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p || v < lo || v > hi || n == MAX_GRID) return -1;
    out[n++] = v;
    if (*end == ',') end++;
    else if (*end != '\0') return -1;
    p = end;
  }
  return n;
}

/* Standard-normal (or uniform-label) host data of `count` elements uploaded into t. */
static fg_status upload_random(fg_tensor *t, uint64_t seed, int classes) {
  int64_t n = fg_tensor_numel(t);
  void *host = malloc((size_t)n * 4);
  if (!host) return FG_FAIL(FG_ERR_OOM, "out of memory staging %lld values", (long long)n);
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, 0, 0);
  for (int64_t i = 0; i < n; i++) {
    if (t->dtype == FG_I32) ((int32_t *)host)[i] = (int32_t)fg_rng_below(&r, (uint64_t)classes);
    else ((float *)host)[i] = (float)fg_rng_normal(&r);
  }
  fg_status s = fg_tensor_from_host(t, host, (size_t)n * 4);
  free(host);
  return s;
}

/* Times one cell; *median_s and *min_s on success. */
static fg_status time_cell(const nhsic_bench *o, int64_t m, int64_t d, double *median_s, double *min_s) {
  fg_ledger ledger;
  fg_ledger_init(&ledger, "bench nhsic", 0);
  const int64_t tdim = o->feature_target ? o->input_dim : 1;
  size_t ws_bytes = 0;
  fg_region rz = {0}, rdz = {0}, rt = {0}, rws = {0};
  double *times = calloc((size_t)o->repeats, sizeof *times);
  fg_status s = times ? fg_nhsic_workspace(o->device, m, &ws_bytes) : FG_FAIL(FG_ERR_OOM, "out of memory");
  if (s == FG_OK) s = fg_region_alloc(&rz, &ledger, o->device, FG_MEM_ACTIVATIONS, (size_t)(m * d) * 4, "z");
  if (s == FG_OK) s = fg_region_alloc(&rdz, &ledger, o->device, FG_MEM_WORKSPACE, (size_t)(m * d) * 4, "dz");
  if (s == FG_OK) s = fg_region_alloc(&rt, &ledger, o->device, FG_MEM_DATA, (size_t)(m * tdim) * 4, "target");
  if (s == FG_OK) s = fg_region_alloc(&rws, &ledger, o->device, FG_MEM_WORKSPACE, ws_bytes, "nhsic workspace");
  const int64_t zshape[2] = {m, d}, tshape[2] = {m, tdim};
  fg_tensor z = fg_tensor_view(rz.ptr, FG_F32, o->device, 2, zshape);
  fg_tensor dz = fg_tensor_view(rdz.ptr, FG_F32, o->device, 2, zshape);
  fg_tensor target = o->feature_target ? fg_tensor_view(rt.ptr, FG_F32, o->device, 2, tshape)
                                       : fg_tensor_view(rt.ptr, FG_I32, o->device, 1, tshape);
  if (s == FG_OK) s = upload_random(&z, 1, 0);
  if (s == FG_OK) s = upload_random(&target, 2, o->classes);
  const fg_nhsic_desc desc = {5.0f, o->classes};
  const fg_workspace ws = {rws.ptr, rws.bytes};
  const fg_tensor *x = o->feature_target ? &target : NULL, *labels = o->feature_target ? NULL : &target;
  double value = 0.0;
  for (int k = 0; s == FG_OK && k < o->warmup; k++) s = fg_nhsic(&desc, &z, x, labels, 1.0f, &dz, 0, ws, &value);
  for (int k = 0; s == FG_OK && k < o->repeats; k++) {
    s = fg_device_synchronize(o->device);
    double t0 = fg_now();
    if (s == FG_OK) s = fg_nhsic(&desc, &z, x, labels, 1.0f, &dz, 0, ws, &value);
    if (s == FG_OK) s = fg_device_synchronize(o->device);
    times[k] = fg_now() - t0;
  }
  if (s == FG_OK && !isfinite(value)) s = FG_FAIL(FG_ERR_NUMERIC, "nhsic value is %g", value);
  if (s == FG_OK) {
    qsort(times, (size_t)o->repeats, sizeof *times, cmp_double);
    *median_s = o->repeats % 2 ? times[o->repeats / 2] : 0.5 * (times[o->repeats / 2 - 1] + times[o->repeats / 2]);
    *min_s = times[0];
  }
  fg_region_free(&rws);
  fg_region_free(&rt);
  fg_region_free(&rdz);
  fg_region_free(&rz);
  free(times);
  return s;
}

int fg_cmd_bench_nhsic(int argc, char **argv) {
  static const char summary[] =
      "Time the nhsic op (value and gradient) over a grid of m rows x d features beside its roofline.";
  nhsic_bench o;
  memset(&o, 0, sizeof o);
  const char *m_list = "64,128,256", *d_list = "784,16384,65536", *device = "cpu", *target = "labels";
  int threads = 0;
  o.repeats = 5;
  o.warmup = 2;
  o.classes = 10;
  o.input_dim = 784;
  o.peak_tflops = 67.0;
  o.peak_gbs = 3350.0;
  fg_arg args[] = {
      {"m", FG_ARG_STRING, &m_list, "LIST", "batch rows, comma-separated (default 64,128,256)", 0, -1, 0, 0},
      {"d", FG_ARG_STRING, &d_list, "LIST", "values per row of z, comma-separated (default 784,16384,65536)", 0, -1,
       0, 0},
      {"repeats", FG_ARG_INT, &o.repeats, "R", "timed calls per cell; the median is reported (default 5)", 1, 100000,
       0, 0},
      {"warmup", FG_ARG_INT, &o.warmup, "K", "untimed calls per cell first (default 2)", 0, 100000, 0, 0},
      {"target", FG_ARG_STRING, &target, "labels|input",
       "what z is compared with: one-hot labels, or an input-like x [m, 784] (default labels)", 0, -1, 0, 0},
      {"classes", FG_ARG_INT, &o.classes, "K", "label classes (default 10)", 2, 1 << 20, 0, 0},
      {"peak-tflops", FG_ARG_DOUBLE, &o.peak_tflops, "F",
       "the device's FP32 rate for the roofline, TFLOP/s (default 67: H100 SXM without tensor cores)", 1e-6, 1e6, 0,
       0},
      {"peak-gbs", FG_ARG_DOUBLE, &o.peak_gbs, "B",
       "the device's memory bandwidth for the roofline, GB/s (default 3350: H100 SXM HBM3)", 1e-6, 1e9, 0, 0},
      {"threads", FG_ARG_INT, &threads, "N", "CPU threads (default: all cores)", 0, 1024, 0, 0},
      {"device", FG_ARG_STRING, &device, "cpu|cuda[:N]", "device the op runs on (default cpu)", 0, -1, 0, 0},
  };
  fg_command cmd = {"bench nhsic", summary, args, (int)(sizeof args / sizeof args[0]), NULL, 0};
  int help = 0;
  int rc = fg_args_parse(&cmd, argc, argv, &help);
  if (rc != FG_EXIT_OK || help) return rc;
  int64_t list[MAX_GRID];
  o.n_m = parse_list(m_list, 2, 1 << 16, list);
  if (o.n_m <= 0) return fg_usage_error(&cmd, "--m '%s': expected up to %d integers in 2..65536, comma-separated",
                                        m_list, MAX_GRID);
  for (int i = 0; i < o.n_m; i++) o.ms[i] = (int)list[i];
  o.n_d = parse_list(d_list, 1, (int64_t)1 << 26, o.ds);
  if (o.n_d <= 0)
    return fg_usage_error(&cmd, "--d '%s': expected up to %d integers in 1..67108864, comma-separated", d_list,
                          MAX_GRID);
  if (strcmp(target, "labels") == 0) o.feature_target = 0;
  else if (strcmp(target, "input") == 0) o.feature_target = 1;
  else return fg_usage_error(&cmd, "--target '%s' is not labels or input", target);
  rc = fg_cli_device(&cmd, device, &o.device);
  if (rc == FG_EXIT_OK) rc = fg_cli_start(cmd.name, threads, o.device);
  if (rc != FG_EXIT_OK) return rc;

  char dev[32];
  fg_device_str(o.device, dev, sizeof dev);
  printf("nhsic value + gradient on %s (%s), target %s, sigma 5, %d warm-up and %d timed calls per cell\n", dev,
         fg_backend_for(o.device)->description, o.feature_target ? "input x [m, 784]" : "one-hot labels",
         o.warmup, o.repeats);
  printf("roofline at %.4g TFLOP/s and %.4g GB/s (FLOPs: Z Z^T + the gradient GEMM + 24 m^2; bytes: z and dz "
         "once, the target once)\n",
         o.peak_tflops, o.peak_gbs);
  printf("%6s %7s %13s %13s %10s %9s %12s %7s %10s %9s\n", "m", "d", "median_us", "min_us", "GFLOP", "MB",
         "roofline_us", "bound", "x_roofline", "GFLOP/s");
  double start = fg_now(), worst = 0.0;
  for (int i = 0; i < o.n_m; i++)
    for (int j = 0; j < o.n_d; j++) {
      int64_t m = o.ms[i], d = o.ds[j];
      double med = 0.0, fastest = 0.0, flops, bytes;
      roofline_counts(&o, m, d, &flops, &bytes);
      if (time_cell(&o, m, d, &med, &fastest) != FG_OK) return fg_runtime_error(cmd.name);
      double t_flop = flops / (o.peak_tflops * 1e12), t_byte = bytes / (o.peak_gbs * 1e9);
      double roof = t_flop > t_byte ? t_flop : t_byte, ratio = med / roof;
      if (ratio > worst) worst = ratio;
      printf("%6lld %7lld %13.1f %13.1f %10.4f %9.3f %12.1f %7s %10.1f %9.1f\n", (long long)m, (long long)d,
             med * 1e6, fastest * 1e6, flops * 1e-9, bytes * 1e-6, roof * 1e6, t_flop > t_byte ? "compute" : "memory",
             ratio, flops / med * 1e-9);
      fflush(stdout);
    }
  printf("cells=%d wall_s=%.1f worst_x_roofline=%.1f\n", o.n_m * o.n_d, fg_now() - start, worst);
  return FG_EXIT_OK;
}
