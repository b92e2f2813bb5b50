/* Core: status messages, Philox known answers, RNG stream independence, ledger arithmetic,
 * regions under a cap. */
#include <math.h>
#include <string.h>

#include "common/test_util.h"
#include "engine/base/rng.h"
#include "engine/mem/ledger.h"
#include "engine/mem/region.h"

Test(status, message_and_prefix) {
  fg_status s = FG_FAIL(FG_ERR_FORMAT, "bad magic %d", 7);
  cr_assert_eq(s, FG_ERR_FORMAT);
  fg_error_prefix("file %s", "x.idx");
  cr_assert_str_eq(fg_last_error(), "file x.idx: bad magic 7");
  cr_assert_eq(fg_last_status(), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error_origin(), "test_core.c:") != NULL);
}

/* Known-answer vectors of Philox4x32-10 published with Random123 (kat_vectors). */
Test(rng, philox_known_answers) {
  uint32_t out[4];
  uint32_t zero[4] = {0, 0, 0, 0};
  fg_philox4x32(zero, 0, 0, out);
  cr_assert_eq(out[0], 0x6627e8d5u);
  cr_assert_eq(out[1], 0xe169c58du);
  cr_assert_eq(out[2], 0xbc57ac4cu);
  cr_assert_eq(out[3], 0x9b00dbd8u);
  uint32_t ones[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
  fg_philox4x32(ones, 0xffffffffu, 0xffffffffu, out);
  cr_assert_eq(out[0], 0x408f276du);
  cr_assert_eq(out[1], 0x41c83b0eu);
  cr_assert_eq(out[2], 0xa20bc7c6u);
  cr_assert_eq(out[3], 0x6d5451fdu);
  uint32_t pi[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
  fg_philox4x32(pi, 0xa4093822u, 0x299f31d0u, out);
  cr_assert_eq(out[0], 0xd16cfe09u);
  cr_assert_eq(out[1], 0x94fdccebu);
  cr_assert_eq(out[2], 0x5001e420u);
  cr_assert_eq(out[3], 0x24126ea1u);
}

Test(rng, streams_are_independent_of_call_order) {
  fg_rng a = fg_rng_stream(1, FG_RNG_SHUFFLE, 3, 4);
  fg_rng b = fg_rng_stream(1, FG_RNG_DROPOUT, 3, 4);
  uint32_t a1 = fg_rng_u32(&a);
  for (int i = 0; i < 100; i++) fg_rng_u32(&b);
  uint32_t a2 = fg_rng_u32(&a);
  cr_assert_eq(a1, fg_rng_u32_at(a.key, 0));
  cr_assert_eq(a2, fg_rng_u32_at(a.key, 1));
  cr_assert_neq(a.key, b.key);
  cr_assert_neq(fg_rng_key(1, FG_RNG_SHUFFLE, 3, 4), fg_rng_key(1, FG_RNG_SHUFFLE, 4, 3));
}

Test(rng, below_is_uniform_and_in_range) {
  fg_rng r = fg_rng_stream(9, FG_RNG_TEST, 0, 0);
  int counts[7] = {0};
  for (int i = 0; i < 70000; i++) {
    uint64_t v = fg_rng_below(&r, 7);
    cr_assert_lt(v, 7u);
    counts[v]++;
  }
  for (int k = 0; k < 7; k++) cr_assert(counts[k] > 9500 && counts[k] < 10500, "bucket %d: %d", k, counts[k]);
}

Test(rng, gamma_mean_matches_shape) {
  const double shapes[3] = {0.3, 1.0, 4.5};
  for (int s = 0; s < 3; s++) {
    fg_rng r = fg_rng_stream(2, FG_RNG_TEST, (uint64_t)s, 0);
    double sum = 0;
    const int n = 40000;
    for (int i = 0; i < n; i++) sum += fg_rng_gamma(&r, shapes[s]);
    double mean = sum / n, sd = sqrt(shapes[s] / n);
    cr_assert(fabs(mean - shapes[s]) < 5 * sd, "shape %g: mean %g", shapes[s], mean);
  }
}

Test(ledger, peaks_windows_and_categories) {
  fg_ledger l;
  fg_ledger_init(&l, "t", 0);
  FGT_OK(fg_ledger_charge(&l, FG_MEM_PARAMS, 100, "p"));
  FGT_OK(fg_ledger_charge(&l, FG_MEM_ACTIVATIONS, 50, "a"));
  fg_ledger_release(&l, FG_MEM_ACTIVATIONS, 50);
  cr_assert_eq(l.current, 100u);
  cr_assert_eq(l.peak, 150u);
  cr_assert_eq(l.peak_by_cat[FG_MEM_ACTIVATIONS], 50u);
  fg_ledger_window_reset(&l);
  cr_assert_eq(l.window_peak, 100u);
  FGT_OK(fg_ledger_charge(&l, FG_MEM_GRADS, 20, "g"));
  cr_assert_eq(l.window_peak, 120u);
  cr_assert_eq(l.peak, 150u);
  cr_assert_eq(l.window_by_cat[FG_MEM_GRADS], 20u);
  cr_assert_eq(l.live, 2u);
}

Test(ledger, cap_and_parent_cap_refuse_without_charging) {
  fg_ledger parent, child;
  fg_ledger_init(&parent, "board", 1000);
  fg_ledger_init(&child, "gpu", 0);
  child.parent = &parent;
  FGT_OK(fg_ledger_charge(&child, FG_MEM_PARAMS, 600, "weights"));
  fg_status s = fg_ledger_charge(&child, FG_MEM_ACTIVATIONS, 401, "activations");
  cr_assert_eq(s, FG_ERR_BUDGET);
  cr_assert(strstr(fg_last_error(), "board") != NULL, "%s", fg_last_error());
  cr_assert_eq(child.current, 600u);
  cr_assert_eq(parent.current, 600u);
  FGT_OK(fg_ledger_charge(&child, FG_MEM_ACTIVATIONS, 400, "activations"));
  cr_assert_eq(parent.current, 1000u);
}

Test(region, rounding_cap_and_release) {
  fgt_setup_cpu(1);
  fg_ledger l;
  fg_ledger_init(&l, "client", 128);
  fg_region r1, r2;
  FGT_OK(fg_region_alloc(&r1, &l, fg_host_device(), FG_MEM_DATA, 10, "batch"));
  cr_assert_eq(r1.bytes, 64u);
  cr_assert_eq(((uintptr_t)r1.ptr) % 64, 0u);
  cr_assert_eq(fg_region_alloc(&r2, &l, fg_host_device(), FG_MEM_DATA, 65, "labels"), FG_ERR_BUDGET);
  cr_assert_null(r2.ptr);
  cr_assert_eq(l.current, 64u);
  fg_region_free(&r1);
  fg_region_free(&r1);
  cr_assert_eq(l.current, 0u);
  cr_assert_eq(l.live, 0u);
}

Test(device, parse_and_print) {
  fg_device d;
  char buf[32];
  cr_assert_eq(fg_device_parse("cpu", &d), FG_OK);
  cr_assert(d.kind == FG_DEV_CPU && d.index == 0);
  cr_assert_str_eq(fg_device_str(d, buf, sizeof buf), "cpu");
  cr_assert_eq(fg_device_parse("cuda", &d), FG_OK);
  cr_assert(d.kind == FG_DEV_CUDA && d.index == 0);
  cr_assert_str_eq(fg_device_str(d, buf, sizeof buf), "cuda:0");
  cr_assert_eq(fg_device_parse("cuda:12", &d), FG_OK);
  cr_assert(d.kind == FG_DEV_CUDA && d.index == 12);
  cr_assert_str_eq(fg_device_str(d, buf, sizeof buf), "cuda:12");
  cr_assert_eq(fg_device_parse("cuda:255", &d), FG_OK);
  cr_assert_eq(fg_device_parse("cuda:local", &d), FG_OK);
  cr_assert_eq(d.kind, FG_DEV_CUDA);
  cr_assert_eq(d.index, FG_DEVICE_INDEX_LOCAL);
  cr_assert_str_eq(fg_device_str(d, buf, sizeof buf), "cuda:local");
  const char *bad[] = {"", "gpu", "cuda:", "cuda:x", "cuda:1x", "cuda:256", "cuda:99999999999", "CPU", "cuda0"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(fg_device_parse(bad[i], &d), FG_ERR_INVALID, "%s", bad[i]);
    cr_assert(strstr(fg_last_error(), "cpu, cuda or cuda:N") != NULL, "%s", fg_last_error());
  }
  cr_assert_eq(fg_device_parse(NULL, &d), FG_ERR_INVALID);
}
