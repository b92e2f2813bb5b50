/* fedgap bench hypernet: memory and time of one HypeMeFed server round (hypemefed.md §3.5-3.6)
 * with the LRF hypernetworks against naive ones (flattened kernel in, flattened kernel out), for
 * the vgg-me exit convs of SVHN (3x32x32) and STL-10 (3x96x96).
 *
 * A round is, for each of the four hypernetworks e1a->e2a, e1b->e2b, e2a->e3a, e2b->e3b in turn,
 * `epochs` x pairs Adam steps (batch 1; 7 pairs for exit1->exit2, 3 for exit2->exit3), then the
 * generation for the shallow clients (3 level-1 clients for exit1->exit2, 3 + 4 for exit2->exit3,
 * the level-1 ones chained from the exit-2 weights just generated). Inputs are synthetic conv
 * weights at PyTorch's default init scale, keyed by --seed.
 *
 * Memory is the ledger bytes of fg_hypernet_plan summed over the four networks: the server holds
 * all four between rounds. Time is the median of --repeats rounds after --warmup untimed ones,
 * a round's time being the sum of its nets' times; the nets are timed one at a time (each built,
 * timed and freed alone), so the naive variant runs when its largest net's planned bytes fit
 * under --max-bytes (the naive STL-10 exit2->exit3 nets hold 1.5 B weights each). With
 * --naive-epochs below --epochs the naive round time is extrapolated (per-step median x steps of
 * a full round, plus the measured generation) and labelled so. Prints a table and key=value lines. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "apps/progress.h"
#include "engine/backend/backend.h"
#include "engine/base/rng.h"
#include "fl/hypernet.h"

enum { HB_NETS = 4, HB_VARIANTS = 3, HB_MAX_CLIENTS = 16 };

typedef enum hb_variant { HB_LRF = 0, HB_LRF_SVD_EACH_STEP, HB_NAIVE } hb_variant;
static const char *const hb_variant_key[HB_VARIANTS] = {"lrf", "lrf_svd_each_step", "naive"};
static const char *const hb_variant_label[HB_VARIANTS] = {"LRF (factors cached per call)",
                                                          "LRF (SVD at every step)", "naive"};
static const char *const hb_net_name[HB_NETS] = {"e1a->e2a", "e1b->e2b", "e2a->e3a", "e2b->e3b"};

typedef struct hb_options {
  const char *dataset;
  int epochs, naive_epochs, repeats, warmup;
  int pairs_e12, pairs_e23, gen_e12, gen_e23;
  int rank, hidden;
  uint64_t max_bytes, seed;
  int svd_each_step, threads;
  const char *device_name; /* --device */
  fg_device device;
} hb_options;

/* One dataset's four hypernetworks: source and target conv shapes, pairs and generations. */
typedef struct hb_setup {
  const char *name;
  int64_t src[HB_NETS][4], tgt[HB_NETS][4];
  int pairs[HB_NETS], gens[HB_NETS];
} hb_setup;

/* The synthetic weights of one round: per net its training pairs and generation sources, and
 * the buffers generation writes. */
typedef struct hb_inputs {
  float *src[HB_NETS][HB_MAX_CLIENTS], *tgt[HB_NETS][HB_MAX_CLIENTS]; /* training pairs */
  float *gen_src[HB_NETS][HB_MAX_CLIENTS]; /* generation inputs (chained ones alias gen_out) */
  float *gen_out[HB_NETS][HB_MAX_CLIENTS];
  int owns_gen_src[HB_NETS][HB_MAX_CLIENTS];
} hb_inputs;

typedef struct hb_timing {
  int ran;
  int extrapolated;
  int epochs_run;
  double round_s, train_s, gen_s; /* medians (train: per round, extrapolated when marked) */
  int64_t steps;                  /* Adam steps of a full round */
} hb_timing;

typedef struct hb_result {
  fg_hypernet_memory mem[HB_VARIANTS];
  int64_t params[HB_VARIANTS];
  hb_timing time[HB_VARIANTS];
  char naive_skip[256];
} hb_result;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The median of a[i] + b[i] over n <= 1000 values (the argument bounds of --repeats). */
static double median_of_sum(const double *a, const double *b, int n) {
  double sum[1000];
  for (int i = 0; i < n; i++) sum[i] = a[i] + b[i];
  return median(sum, n);
}

static void set_shape(int64_t s[4], int64_t out, int64_t in) {
  s[0] = out;
  s[1] = in;
  s[2] = 3;
  s[3] = 3;
}

/* The vgg-me exit convs for stem width b (SVHN 32, STL-10 64), hypemefed.md §1.2 and §3.3. */
static hb_setup make_setup(const char *name, int64_t b, const hb_options *o) {
  hb_setup s;
  memset(&s, 0, sizeof s);
  s.name = name;
  /* exit1: b->2b, 2b->2b; exit2: 2b->4b, 4b->4b; exit3: 4b->8b, 8b->8b */
  set_shape(s.src[0], 2 * b, b);
  set_shape(s.tgt[0], 4 * b, 2 * b);
  set_shape(s.src[1], 2 * b, 2 * b);
  set_shape(s.tgt[1], 4 * b, 4 * b);
  set_shape(s.src[2], 4 * b, 2 * b);
  set_shape(s.tgt[2], 8 * b, 4 * b);
  set_shape(s.src[3], 4 * b, 4 * b);
  set_shape(s.tgt[3], 8 * b, 8 * b);
  for (int j = 0; j < HB_NETS; j++) {
    s.pairs[j] = j < 2 ? o->pairs_e12 : o->pairs_e23;
    s.gens[j] = j < 2 ? o->gen_e12 : o->gen_e23;
  }
  return s;
}

static int64_t numel4(const int64_t s[4]) { return s[0] * s[1] * s[2] * s[3]; }

static fg_hypernet_desc variant_desc(hb_variant v, const hb_setup *s, int j, const hb_options *o, int epochs) {
  fg_hypernet_desc d =
      fg_hypernet_defaults(v == HB_NAIVE ? FG_HYPERNET_NAIVE : FG_HYPERNET_LRF, s->src[j], s->tgt[j]);
  d.rank = o->rank;
  d.hidden = o->hidden;
  d.epochs = epochs;
  d.max_pairs = o->pairs_e12 > o->pairs_e23 ? o->pairs_e12 : o->pairs_e23;
  d.cache_factors = v == HB_LRF;
  d.device = o->device;
  return d;
}

/* ----------------------------------------------------------------------------------------- */
/* Memory                                                                                     */

static fg_status plan_variant(hb_variant v, const hb_setup *s, const hb_options *o, fg_hypernet_memory *sum,
                              int64_t *params) {
  memset(sum, 0, sizeof *sum);
  *params = 0;
  for (int j = 0; j < HB_NETS; j++) {
    fg_hypernet_desc d = variant_desc(v, s, j, o, o->epochs);
    fg_hypernet_memory m;
    FG_TRY(fg_hypernet_plan(&d, &m));
    sum->params += m.params;
    sum->grads += m.grads;
    sum->optim += m.optim;
    sum->activations += m.activations;
    sum->workspace += m.workspace;
    sum->data += m.data;
    sum->total += m.total;
    *params += fg_hypernet_param_count(&d);
  }
  return FG_OK;
}

/* The planned bytes of variant v's largest net: what timing it (one net at a time) needs. */
static fg_status largest_net_bytes(hb_variant v, const hb_setup *s, const hb_options *o, size_t *bytes) {
  *bytes = 0;
  for (int j = 0; j < HB_NETS; j++) {
    fg_hypernet_desc d = variant_desc(v, s, j, o, o->epochs);
    fg_hypernet_memory m;
    FG_TRY(fg_hypernet_plan(&d, &m));
    if (m.total > *bytes) *bytes = m.total;
  }
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Synthetic inputs                                                                           */

/* A conv weight [O, I, k, k] drawn U(-1/sqrt(I k k), 1/sqrt(I k k)) from its own stream. */
static float *synthetic_conv(const int64_t s[4], uint64_t seed, uint64_t client, uint64_t layer) {
  const int64_t n = numel4(s);
  float *w = malloc((size_t)n * sizeof *w);
  if (!w) return NULL;
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, client, layer);
  const double bound = 1.0 / sqrt((double)(s[1] * s[2] * s[3]));
  for (int64_t i = 0; i < n; i++) w[i] = (float)(bound * (2.0 * fg_rng_uniform_double(&r) - 1.0));
  return w;
}

static void free_inputs(hb_inputs *in) {
  for (int j = 0; j < HB_NETS; j++)
    for (int c = 0; c < HB_MAX_CLIENTS; c++) {
      free(in->src[j][c]);
      free(in->tgt[j][c]);
      free(in->gen_out[j][c]);
      if (in->owns_gen_src[j][c]) free(in->gen_src[j][c]);
    }
  memset(in, 0, sizeof *in);
}

/* Clients get distinct streams: training client c of net j is (c, 10 j + 0/1), generation
 * client c is (100 + c, 10 j + 2). Exit-2 -> exit-3 generation for the first min(gen_e12,
 * gen_e23) clients chains from net j-2's outputs (the level-1 clients). */
static fg_status make_inputs(const hb_setup *s, uint64_t seed, hb_inputs *in) {
  memset(in, 0, sizeof *in);
  for (int j = 0; j < HB_NETS; j++) {
    for (int c = 0; c < s->pairs[j]; c++) {
      in->src[j][c] = synthetic_conv(s->src[j], seed, (uint64_t)c, 10 * (uint64_t)j);
      in->tgt[j][c] = synthetic_conv(s->tgt[j], seed, (uint64_t)c, 10 * (uint64_t)j + 1);
      if (!in->src[j][c] || !in->tgt[j][c]) return FG_FAIL(FG_ERR_OOM, "bench hypernet: out of host memory");
    }
    const int chained = j >= 2 ? (s->gens[j - 2] < s->gens[j] ? s->gens[j - 2] : s->gens[j]) : 0;
    for (int c = 0; c < s->gens[j]; c++) {
      in->gen_out[j][c] = malloc((size_t)numel4(s->tgt[j]) * sizeof(float));
      if (c < chained) {
        in->gen_src[j][c] = in->gen_out[j - 2][c];
      } else {
        in->gen_src[j][c] = synthetic_conv(s->src[j], seed, 100 + (uint64_t)c, 10 * (uint64_t)j + 2);
        in->owns_gen_src[j][c] = 1;
      }
      if (!in->gen_out[j][c] || !in->gen_src[j][c])
        return FG_FAIL(FG_ERR_OOM, "bench hypernet: out of host memory");
    }
  }
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Time                                                                                       */

/* Times net j of variant v alone: it is built, runs warmup + repeats rounds of its training
 * (epochs_run x pairs Adam steps) and its generation, and is freed, so only the largest single
 * net, not all four, has to fit in memory. train_s[r] and gen_s[r] receive timed round r's
 * seconds. Rounds use the keys the server would: (seed, FG_RNG_SERVER, round, j). */
static fg_status time_net(hb_variant v, const hb_setup *s, const hb_options *o, int epochs_run, int j,
                          hb_inputs *in, double *train_s, double *gen_s) {
  fg_ledger ledger;
  fg_ledger_init(&ledger, "bench hypernet", 0);
  fg_hypernet *net = NULL;
  fg_hypernet_desc d = variant_desc(v, s, j, o, epochs_run);
  FG_TRY(fg_hypernet_create(&d, fg_rng_key(o->seed, FG_RNG_INIT, 1000 + (uint64_t)j, 0), &ledger, &net));
  fg_status st = FG_OK;
  for (int r = 0; r < o->warmup + o->repeats && st == FG_OK; r++) {
    const double t0 = fg_now();
    st = fg_hypernet_train(net, s->pairs[j], (const float *const *)in->src[j], (const float *const *)in->tgt[j],
                           fg_rng_key(o->seed, FG_RNG_SERVER, (uint64_t)r, (uint64_t)j), NULL, NULL);
    const double t1 = fg_now();
    for (int c = 0; c < s->gens[j] && st == FG_OK; c++)
      st = fg_hypernet_generate(net, in->gen_src[j][c], in->gen_out[j][c]);
    if (r >= o->warmup) {
      train_s[r - o->warmup] = t1 - t0;
      gen_s[r - o->warmup] = fg_now() - t1;
    }
  }
  fg_hypernet_free(net);
  return st;
}

/* Times variant v net by net (in order, so the exit2->exit3 nets chain from the outputs the
 * exit1->exit2 nets generated) and fills *t: a round's time is the sum of its nets' times. */
static fg_status time_variant(hb_variant v, const hb_setup *s, const hb_options *o, int epochs_run, hb_inputs *in,
                              hb_timing *t) {
  const int runs = o->repeats;
  double *train_s = calloc((size_t)(runs * HB_NETS), sizeof(double));
  double *gen_s = calloc((size_t)(runs * HB_NETS), sizeof(double));
  double *round_s = calloc((size_t)runs, sizeof(double));
  double *gen_tot = calloc((size_t)runs, sizeof(double));
  double *per_step = calloc((size_t)runs, sizeof(double));
  fg_status st = train_s && gen_s && round_s && gen_tot && per_step
                     ? FG_OK
                     : FG_FAIL(FG_ERR_OOM, "bench hypernet: out of host memory");
  for (int j = 0; j < HB_NETS && st == FG_OK; j++) {
    st = time_net(v, s, o, epochs_run, j, in, train_s + j * runs, gen_s + j * runs);
    if (st == FG_OK)
      fprintf(stderr, "  %s %s %s: %.3f s a round (median, %d epochs)\n", s->name, hb_variant_key[v], hb_net_name[j],
              median_of_sum(train_s + j * runs, gen_s + j * runs, runs), epochs_run);
  }
  if (st == FG_OK) {
    memset(t, 0, sizeof *t);
    t->ran = 1;
    t->epochs_run = epochs_run;
    t->extrapolated = epochs_run != o->epochs;
    for (int r = 0; r < runs; r++)
      for (int j = 0; j < HB_NETS; j++) {
        round_s[r] += train_s[j * runs + r] + gen_s[j * runs + r];
        gen_tot[r] += gen_s[j * runs + r];
      }
    t->gen_s = median(gen_tot, runs);
    for (int j = 0; j < HB_NETS; j++) {
      const int64_t steps = (int64_t)o->epochs * s->pairs[j];
      for (int r = 0; r < runs; r++) per_step[r] = train_s[j * runs + r] / ((double)epochs_run * s->pairs[j]);
      t->steps += steps;
      t->train_s += median(per_step, runs) * (double)steps;
    }
    t->round_s = t->extrapolated ? t->train_s + t->gen_s : median(round_s, runs);
    if (!t->extrapolated) t->train_s = t->round_s - t->gen_s;
  }
  free(train_s);
  free(gen_s);
  free(round_s);
  free(gen_tot);
  free(per_step);
  return st;
}

/* ----------------------------------------------------------------------------------------- */
/* Report                                                                                     */

static double gib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0 * 1024.0); }
static double mib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

static void print_nets(const hb_setup *s, const hb_options *o) {
  printf("\n%s: the four hypernetworks (vgg-me exit convs)\n", s->name);
  for (int j = 0; j < HB_NETS; j++) {
    fg_hypernet_desc lrf = variant_desc(HB_LRF, s, j, o, o->epochs);
    fg_hypernet_desc naive = variant_desc(HB_NAIVE, s, j, o, o->epochs);
    const int64_t *a = s->src[j], *t = s->tgt[j];
    printf("  %s  [%lld, %lld, 3, 3] -> [%lld, %lld, 3, 3]  pairs %d, generated %d  weights: LRF %lld, naive %lld\n",
           hb_net_name[j], (long long)a[0], (long long)a[1], (long long)t[0], (long long)t[1], s->pairs[j],
           s->gens[j], (long long)fg_hypernet_param_count(&lrf), (long long)fg_hypernet_param_count(&naive));
  }
}

static void print_memory_table(const hb_setup *s, const hb_result *r) {
  printf("\n%s: hypernetwork memory, ledger bytes summed over the 4 networks (MiB)\n", s->name);
  printf("  %-32s %14s %10s %10s %10s %10s %10s %10s %12s\n", "variant", "weights", "params", "grads", "optim",
         "activ.", "workspace", "data", "total");
  for (int v = 0; v < HB_VARIANTS; v++) {
    const fg_hypernet_memory *m = &r->mem[v];
    printf("  %-32s %14lld %10.2f %10.2f %10.2f %10.2f %10.2f %10.2f %12.2f\n", hb_variant_label[v],
           (long long)r->params[v], mib(m->params), mib(m->grads), mib(m->optim), mib(m->activations),
           mib(m->workspace), mib(m->data), mib(m->total));
  }
  const double red = 100.0 * (1.0 - (double)r->mem[HB_LRF].total / (double)r->mem[HB_NAIVE].total);
  const double red2 = 100.0 * (1.0 - (double)r->mem[HB_LRF_SVD_EACH_STEP].total / (double)r->mem[HB_NAIVE].total);
  printf("  memory reduction LRF vs naive: %.2f%% (cached factors), %.2f%% (SVD at every step); the paper "
         "reports 98.22%%\n",
         red, red2);
}

static void print_time_table(const hb_setup *s, const hb_result *r, const hb_options *o) {
  printf("\n%s: time of one server round (4 nets x %d epochs x pairs (%d/%d) Adam steps + generation for "
         "%d/%d clients), median of %d\n",
         s->name, o->epochs, o->pairs_e12, o->pairs_e23, o->gen_e12, o->gen_e23, o->repeats);
  printf("  %-32s %12s %12s %12s %8s  %s\n", "variant", "round s", "train s", "generate s", "steps", "note");
  for (int v = 0; v < HB_VARIANTS; v++) {
    const hb_timing *t = &r->time[v];
    if (!t->ran) {
      printf("  %-32s %12s %12s %12s %8s  %s\n", hb_variant_label[v], "-", "-", "-", "-",
             v == HB_NAIVE ? r->naive_skip : "not run (add --svd-each-step)");
      continue;
    }
    char note[128] = "measured";
    if (t->extrapolated)
      snprintf(note, sizeof note, "extrapolated: per-step median of %d-epoch rounds x %lld steps", t->epochs_run,
               (long long)t->steps);
    printf("  %-32s %12.3f %12.3f %12.3f %8lld  %s\n", hb_variant_label[v], t->round_s, t->train_s, t->gen_s,
           (long long)t->steps, note);
  }
  if (r->time[HB_NAIVE].ran)
    printf("  naive / LRF round time: %.2fx\n", r->time[HB_NAIVE].round_s / r->time[HB_LRF].round_s);
}

static void print_keys(const hb_setup *s, const hb_result *r) {
  const char *p = s->name;
  for (int v = 0; v < HB_VARIANTS; v++) {
    const fg_hypernet_memory *m = &r->mem[v];
    const char *k = hb_variant_key[v];
    printf("%s_%s_weights=%lld %s_%s_params_bytes=%zu %s_%s_grads_bytes=%zu %s_%s_optim_bytes=%zu "
           "%s_%s_activations_bytes=%zu %s_%s_workspace_bytes=%zu %s_%s_data_bytes=%zu %s_%s_total_bytes=%zu\n",
           p, k, (long long)r->params[v], p, k, m->params, p, k, m->grads, p, k, m->optim, p, k, m->activations, p,
           k, m->workspace, p, k, m->data, p, k, m->total);
  }
  printf("%s_memory_reduction_pct=%.2f %s_memory_reduction_svd_each_step_pct=%.2f %s_param_reduction_pct=%.2f\n", p,
         100.0 * (1.0 - (double)r->mem[HB_LRF].total / (double)r->mem[HB_NAIVE].total), p,
         100.0 * (1.0 - (double)r->mem[HB_LRF_SVD_EACH_STEP].total / (double)r->mem[HB_NAIVE].total), p,
         100.0 * (1.0 - (double)r->params[HB_LRF] / (double)r->params[HB_NAIVE]));
  for (int v = 0; v < HB_VARIANTS; v++) {
    const hb_timing *t = &r->time[v];
    if (t->ran)
      printf("%s_%s_round_s=%.4f %s_%s_train_s=%.4f %s_%s_generate_s=%.4f %s_%s_round_extrapolated=%d\n", p,
             hb_variant_key[v], t->round_s, p, hb_variant_key[v], t->train_s, p, hb_variant_key[v], t->gen_s, p,
             hb_variant_key[v], t->extrapolated);
    else
      printf("%s_%s_round_s=not_run\n", p, hb_variant_key[v]);
  }
  if (r->time[HB_NAIVE].ran) printf("%s_speedup=%.3f\n", p, r->time[HB_NAIVE].round_s / r->time[HB_LRF].round_s);
  if (r->time[HB_NAIVE].ran && r->time[HB_LRF_SVD_EACH_STEP].ran)
    printf("%s_speedup_svd_each_step=%.3f\n", p,
           r->time[HB_NAIVE].round_s / r->time[HB_LRF_SVD_EACH_STEP].round_s);
}

/* ----------------------------------------------------------------------------------------- */
/* Driver                                                                                     */

static fg_status bench_dataset(const hb_setup *s, const hb_options *o) {
  hb_result r;
  memset(&r, 0, sizeof r);
  for (int v = 0; v < HB_VARIANTS; v++) FG_TRY(plan_variant((hb_variant)v, s, o, &r.mem[v], &r.params[v]));
  print_nets(s, o);
  print_memory_table(s, &r);
  fflush(stdout);
  hb_inputs in;
  fg_status st = make_inputs(s, o->seed, &in);
  if (st == FG_OK) st = time_variant(HB_LRF, s, o, o->epochs, &in, &r.time[HB_LRF]);
  if (st == FG_OK && o->svd_each_step)
    st = time_variant(HB_LRF_SVD_EACH_STEP, s, o, o->epochs, &in, &r.time[HB_LRF_SVD_EACH_STEP]);
  size_t naive_bytes = 0;
  if (st == FG_OK) st = largest_net_bytes(HB_NAIVE, s, o, &naive_bytes);
  if (st == FG_OK && naive_bytes <= o->max_bytes) {
    st = time_variant(HB_NAIVE, s, o, o->naive_epochs, &in, &r.time[HB_NAIVE]);
  } else if (st == FG_OK) {
    snprintf(r.naive_skip, sizeof r.naive_skip,
             "not run: its largest net's planned %.2f GiB exceed --max-bytes %.2f GiB", gib(naive_bytes), gib((size_t)o->max_bytes));
  }
  free_inputs(&in);
  if (st != FG_OK) return st;
  print_time_table(s, &r, o);
  print_keys(s, &r);
  fflush(stdout);
  return FG_OK;
}

int fg_cmd_bench_hypernet(int argc, char **argv) {
  hb_options o = {"both", 25, 0, 3, 1, 7, 3, 3, 7, 100, 512, (uint64_t)12 << 30, 1, 0, 0, "cpu", {FG_DEV_CPU, 0}};
  fg_arg args[] = {
      {"dataset", FG_ARG_STRING, &o.dataset, "svhn|stl10|both", "vgg-me shapes to measure (default both)", 0, -1, 0, 0},
      {"epochs", FG_ARG_INT, &o.epochs, "E", "epochs per server round (default 25)", 1, 100000, 0, 0},
      {"naive-epochs", FG_ARG_INT, &o.naive_epochs, "E",
       "epochs actually run for the naive nets; below --epochs the round is extrapolated (default --epochs)", 1,
       100000, 0, 0},
      {"repeats", FG_ARG_INT, &o.repeats, "R", "timed rounds; the median is reported (default 3)", 1, 1000, 0, 0},
      {"warmup", FG_ARG_INT, &o.warmup, "K", "untimed rounds first (default 1)", 0, 1000, 0, 0},
      {"pairs-e12", FG_ARG_INT, &o.pairs_e12, "N", "training pairs of the exit1->exit2 nets (default 7)", 1,
       HB_MAX_CLIENTS, 0, 0},
      {"pairs-e23", FG_ARG_INT, &o.pairs_e23, "N", "training pairs of the exit2->exit3 nets (default 3)", 1,
       HB_MAX_CLIENTS, 0, 0},
      {"gen-e12", FG_ARG_INT, &o.gen_e12, "N", "clients generated by the exit1->exit2 nets (default 3)", 0,
       HB_MAX_CLIENTS, 0, 0},
      {"gen-e23", FG_ARG_INT, &o.gen_e23, "N", "clients generated by the exit2->exit3 nets (default 7)", 0,
       HB_MAX_CLIENTS, 0, 0},
      {"rank", FG_ARG_INT, &o.rank, "R", "LRF rank (default 100)", 1, 1 << 20, 0, 0},
      {"hidden", FG_ARG_INT, &o.hidden, "H", "MLP hidden width (default 512)", 1, 1 << 20, 0, 0},
      {"max-bytes", FG_ARG_U64, &o.max_bytes, "B", "run naive only when its largest net's planned bytes fit (default 12 GiB)", 0,
       -1, 0, 0},
      {"seed", FG_ARG_U64, &o.seed, "S", "seed of the synthetic weights and the nets (default 1)", 0, -1, 0, 0},
      {"svd-each-step", FG_ARG_FLAG, &o.svd_each_step, "",
       "also time LRF redoing the SVD at every step, like the reference code", 0, -1, 0, 0},
      {"threads", FG_ARG_INT, &o.threads, "N", "CPU threads (default: all cores)", 1, 1024, 0, 0},
      {"device", FG_ARG_STRING, &o.device_name, "cpu|cuda[:N]", "device the networks train on (default cpu)", 0, -1,
       0, 0},
  };
  fg_command cmd = {"bench hypernet",
                    "Measure memory and round time of HypeMeFed's LRF hypernetworks against naive ones.", args,
                    (int)(sizeof args / sizeof args[0]), NULL, 0};
  int help, rc = fg_args_parse(&cmd, argc, argv, &help);
  if (rc != FG_EXIT_OK || help) return rc;
  if (o.naive_epochs > o.epochs)
    return fg_usage_error(&cmd, "--naive-epochs %d exceeds --epochs %d", o.naive_epochs, o.epochs);
  if (o.naive_epochs == 0) o.naive_epochs = o.epochs;
  const int svhn = strcmp(o.dataset, "svhn") == 0 || strcmp(o.dataset, "both") == 0;
  const int stl = strcmp(o.dataset, "stl10") == 0 || strcmp(o.dataset, "both") == 0;
  if (!svhn && !stl) return fg_usage_error(&cmd, "--dataset '%s' is not svhn, stl10 or both", o.dataset);
  rc = fg_cli_device(&cmd, o.device_name, &o.device);
  if (rc == FG_EXIT_OK) rc = fg_cli_start("bench hypernet", o.threads, o.device);
  if (rc != FG_EXIT_OK) return rc;
  printf("bench hypernet: %s; rank %d, hidden %d, epochs %d (naive %d), pairs %d/%d, generated %d/%d\n",
         fg_backend_for(o.device)->description, o.rank, o.hidden, o.epochs,
         o.naive_epochs, o.pairs_e12, o.pairs_e23, o.gen_e12, o.gen_e23);
  const double t0 = fg_now();
  if (svhn) {
    hb_setup s = make_setup("svhn", 32, &o);
    if (bench_dataset(&s, &o) != FG_OK) return fg_runtime_error("bench hypernet");
  }
  if (stl) {
    hb_setup s = make_setup("stl10", 64, &o);
    if (bench_dataset(&s, &o) != FG_OK) return fg_runtime_error("bench hypernet");
  }
  printf("wall_s=%.1f\n", fg_now() - t0);
  return FG_EXIT_OK;
}
