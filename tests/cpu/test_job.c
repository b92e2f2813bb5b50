/* Spread runs without MPI: the wire formats of fl/job.h (every field survives the trip, doubles
 * bit for bit as little-endian binary64, malformed messages are refused naming the field) and the
 * start-up check of fl/spread.h through a scripted transport (rank 0 names the first process that
 * differs; a worker finds the first line where its configuration differs from rank 0's). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "fl/job.h"
#include "fl/spread.h"

static fg_job job_at(int i) {
  fg_job j = {3, 17, i, 1000 + i, i % 3 - 1, i % 4, UINT64_MAX - (uint64_t)i, ((uint64_t)1 << 40) + (uint64_t)i};
  return j;
}

Test(job, round_header_round_trip) {
  enum { N = 5 };
  fg_job jobs[N], back[N];
  for (int i = 0; i < N; i++) jobs[i] = job_at(i);
  fg_wire_header h = {FG_WIRE_ROUND, 3, 17, FG_OK, 123456789012LL, N, 98765432109LL}, g;
  unsigned char buf[512];
  size_t len = 0;
  FGT_OK(fg_wire_header_encode(&h, jobs, buf, sizeof buf, &len));
  cr_assert_eq(len, fg_wire_header_bytes(N));
  FGT_OK(fg_wire_header_decode(buf, len, &g, back, N));
  cr_assert_eq(g.kind, FG_WIRE_ROUND);
  cr_assert_eq(g.method, 3);
  cr_assert_eq(g.round, 17);
  cr_assert_eq(g.state_numel, 123456789012LL);
  cr_assert_eq(g.n, N);
  cr_assert_eq(g.prox_numel, 98765432109LL);
  for (int i = 0; i < N; i++) cr_assert_eq(memcmp(&jobs[i], &back[i], sizeof jobs[i]), 0, "job %d", i);
}

Test(job, malformed_headers_are_refused) {
  fg_job jobs[2] = {job_at(0), job_at(1)}, back[2];
  fg_wire_header h = {FG_WIRE_ROUND, 0, 0, FG_OK, 10, 2, 0}, g;
  unsigned char buf[256];
  size_t len = 0;
  cr_assert_eq(fg_wire_header_encode(&h, jobs, buf, 40, &len), FG_ERR_INVALID, "a buffer too small");
  FGT_OK(fg_wire_header_encode(&h, jobs, buf, sizeof buf, &len));
  cr_assert_eq(fg_wire_header_decode(buf, len - 1, &g, back, 2), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), "job.cap") != NULL, "%s", fg_last_error());
  cr_assert_eq(fg_wire_header_decode(buf, len, &g, back, 1), FG_ERR_FORMAT, "more jobs than the receiver holds");
  cr_assert(strstr(fg_last_error(), "field n") != NULL, "%s", fg_last_error());
  buf[0] ^= 1;
  cr_assert_eq(fg_wire_header_decode(buf, len, &g, back, 2), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), "magic") != NULL, "%s", fg_last_error());
  buf[0] ^= 1;
  buf[4] = 9; /* kind */
  cr_assert_eq(fg_wire_header_decode(buf, len, &g, back, 2), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), "kind") != NULL, "%s", fg_last_error());
}

static fg_result sample_result(void) {
  fg_result r;
  memset(&r, 0, sizeof r);
  r.round = 4;
  r.slot = 9;
  r.status = FG_OK;
  r.numel = 4321;
  fg_client_record *c = &r.rec;
  c->id = 77;
  c->level = 2;
  snprintf(c->config, sizeof c->config, "rate 0.25");
  c->samples = 601;
  c->status = FG_CLIENT_OK;
  c->budget_bytes = (size_t)3 << 30;
  c->planned_bytes = 1234567;
  c->engine_peak_bytes = 1234560;
  c->process_peak_bytes = 98765432;
  c->bytes_down = c->bytes_up = 40960;
  c->train_loss = 0.1;
  c->seconds = nextafter(1.0, 2.0);
  c->transfer_seconds = -0.0;
  return r;
}

Test(job, results_keep_every_field_and_every_bit) {
  fg_result r = sample_result(), back;
  unsigned char buf[FG_RESULT_BYTES];
  size_t len = 0;
  FGT_OK(fg_result_encode(&r, buf, sizeof buf, &len));
  cr_assert_eq(len, (size_t)FG_RESULT_BYTES);
  FGT_OK(fg_result_decode(buf, len, &back));
  cr_assert_eq(back.round, 4);
  cr_assert_eq(back.slot, 9);
  cr_assert_eq(back.numel, 4321);
  const fg_client_record *a = &r.rec, *b = &back.rec;
  cr_assert_eq(b->id, a->id);
  cr_assert_eq(b->level, a->level);
  cr_assert_str_eq(b->config, a->config);
  cr_assert_eq(b->samples, a->samples);
  cr_assert_eq(b->budget_bytes, a->budget_bytes);
  cr_assert_eq(b->planned_bytes, a->planned_bytes);
  cr_assert_eq(b->engine_peak_bytes, a->engine_peak_bytes);
  cr_assert_eq(b->process_peak_bytes, a->process_peak_bytes);
  cr_assert_eq(b->bytes_up, a->bytes_up);
  cr_assert_eq(memcmp(&b->train_loss, &a->train_loss, 8), 0);
  cr_assert_eq(memcmp(&b->seconds, &a->seconds, 8), 0);
  cr_assert_eq(memcmp(&b->transfer_seconds, &a->transfer_seconds, 8), 0, "-0.0 keeps its sign");
  /* train_loss travels as the little-endian bytes of its binary64 pattern: after the result's
   * header (4 magic, round, slot, status, skipped, 256 error, 8 numel) and the record's fields
   * before it (4 id, 4 level, 48 config, 8 samples, 4 status, 200 error, 6 x 8 sizes). */
  size_t at = 4 + 4 * 4 + 256 + 8 + 4 + 4 + 48 + 8 + 4 + 200 + 6 * 8;
  uint64_t bits;
  memcpy(&bits, &a->train_loss, 8);
  for (int i = 0; i < 8; i++) cr_assert_eq(buf[at + (size_t)i], (unsigned char)(bits >> (8 * i)), "byte %d", i);
}

Test(job, a_failed_result_carries_its_status_and_message) {
  fg_result r, back;
  memset(&r, 0, sizeof r);
  r.status = FG_ERR_NUMERIC;
  snprintf(r.error, sizeof r.error, "client 5, round 2: the loss is NaN");
  unsigned char buf[FG_RESULT_BYTES];
  size_t len = 0;
  FGT_OK(fg_result_encode(&r, buf, sizeof buf, &len));
  FGT_OK(fg_result_decode(buf, len, &back));
  cr_assert_eq(back.status, FG_ERR_NUMERIC);
  cr_assert_str_eq(back.error, r.error);
  buf[4 + 4 * 2] = 200; /* status */
  cr_assert_eq(fg_result_decode(buf, len, &back), FG_ERR_FORMAT);
}

Test(job, identities_and_worker_time_round_trip) {
  fg_identity_record r, back;
  memset(&r, 0, sizeof r);
  r.phase = 2;
  r.status = FG_ERR_IO;
  snprintf(r.error, sizeof r.error, "cannot read the dataset");
  r.config_hash = 0x0123456789abcdefull;
  r.partition_hash = 42;
  snprintf(r.revision, sizeof r.revision, "abc123-dirty");
  snprintf(r.host, sizeof r.host, "node7");
  r.diff_line = 3;
  snprintf(r.diff_mine, sizeof r.diff_mine, "seed: 2");
  unsigned char buf[FG_IDENTITY_BYTES];
  FGT_OK(fg_identity_encode(&r, buf));
  FGT_OK(fg_identity_decode(buf, &back));
  cr_assert_eq(memcmp(&r, &back, sizeof r), 0);
  fg_worker_time t = {1.5, 0.25, 3.0, 12}, u;
  unsigned char tb[FG_WORKER_TIME_BYTES];
  fg_worker_time_encode(&t, tb);
  FGT_OK(fg_worker_time_decode(tb, &u));
  cr_assert_eq(memcmp(&t, &u, sizeof t), 0);
}

/* ---- the start-up check through a scripted transport --------------------------------------- */

typedef struct script {
  int rank;
  fg_identity_record other;      /* rank 0's view: what rank 1 reports */
  const char *root_text;         /* rank 1's view: rank 0's configuration */
  fg_status root_verdict;        /* rank 1's view: the verdict rank 0 sends */
  unsigned char gathered[FG_IDENTITY_BYTES]; /* what this process gathered */
  unsigned char verdict[600];    /* rank 0's view: the verdict it sent */
  size_t verdict_len;
  int broadcasts;
} script;

static fg_status fake_broadcast(void *ctx, void *bytes, size_t *len, size_t cap) {
  script *s = ctx;
  s->broadcasts++;
  if (s->rank == 0) {
    cr_assert_leq(*len, sizeof s->verdict);
    memcpy(s->verdict, bytes, *len);
    s->verdict_len = *len;
    return FG_OK;
  }
  unsigned char *b = bytes;
  if (s->broadcasts == 1) { /* phase 1: rank 0's configuration */
    *len = strlen(s->root_text) + 1;
    cr_assert_leq(*len, cap);
    memcpy(b, s->root_text, *len);
    return FG_OK;
  }
  const char *msg = "rank 1 differs";
  for (int i = 0; i < 4; i++) b[i] = (unsigned char)((unsigned)s->root_verdict >> (8 * i));
  *len = 4 + strlen(msg) + 1;
  memcpy(b + 4, msg, strlen(msg) + 1);
  return FG_OK;
}

static fg_status fake_gather(void *ctx, const void *bytes, size_t len, void *all) {
  script *s = ctx;
  cr_assert_eq(len, (size_t)FG_IDENTITY_BYTES);
  memcpy(s->gathered, bytes, len);
  if (s->rank == 0) {
    memcpy(all, bytes, len);
    FGT_OK(fg_identity_encode(&s->other, (unsigned char *)all + len));
  }
  return FG_OK;
}

static fg_transport fake_transport(script *s) {
  fg_transport t;
  memset(&t, 0, sizeof t);
  t.ctx = s;
  t.rank = s->rank;
  t.size = 2;
  t.local_size = 2;
  t.broadcast = fake_broadcast;
  t.gather = fake_gather;
  return t;
}

static fg_identity identity(int phase) {
  fg_identity id;
  memset(&id, 0, sizeof id);
  id.phase = phase;
  id.config_text = "# fedgap \nname: x\nseed: 1\n";
  id.revision = "rev-a";
  id.kernels = "OpenBLAS core Haswell, AVX2 3x3 convolutions";
  id.partition_hash = 99;
  return id;
}

/* What rank 1 reports when it is rank 0's twin: rank 0's own record, as gathered. */
static fg_identity_record twin(script *s, int phase) {
  fg_transport t = fake_transport(s);
  fg_identity id = identity(phase);
  s->other.phase = phase;
  s->other.status = FG_OK;
  fg_spread_agree(&t, &id);
  fg_identity_record r;
  FGT_OK(fg_identity_decode(s->gathered, &r));
  return r;
}

/* Rank 0's verdict when rank 1 reports `other`. */
static fg_status judge(script *s, int phase, const fg_identity_record *other) {
  fg_transport t = fake_transport(s);
  s->other = *other;
  s->broadcasts = 0;
  fg_identity id = identity(phase);
  fg_status st = fg_spread_agree(&t, &id);
  cr_assert_geq(s->verdict_len, 5u, "a verdict is sent whatever it says");
  return st;
}

Test(spread, rank0_names_the_first_process_that_differs) {
  script s;
  memset(&s, 0, sizeof s);
  fg_identity_record same = twin(&s, 1), r;
  cr_assert_eq(judge(&s, 1, &same), FG_OK);
  r = same;
  snprintf(r.revision, sizeof r.revision, "rev-b");
  cr_assert_eq(judge(&s, 1, &r), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "rank 1") && strstr(fg_last_error(), "rev-b") && strstr(fg_last_error(), "rev-a"),
            "%s", fg_last_error());
  r = same;
  snprintf(r.kernels, sizeof r.kernels, "OpenBLAS core SkylakeX, AVX2 3x3 convolutions");
  cr_assert_eq(judge(&s, 1, &r), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "SkylakeX") && strstr(fg_last_error(), "OPENBLAS_CORETYPE"), "%s",
            fg_last_error());
  r = same;
  r.config_hash ^= 1;
  r.diff_line = 3;
  snprintf(r.diff_mine, sizeof r.diff_mine, "seed: 2");
  snprintf(r.diff_root, sizeof r.diff_root, "seed: 1");
  cr_assert_eq(judge(&s, 1, &r), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "another configuration") && strstr(fg_last_error(), "'seed: 2' where rank 0 has "
            "'seed: 1'"), "%s", fg_last_error());
  r = same;
  r.status = FG_ERR_IO;
  snprintf(r.error, sizeof r.error, "cannot open the dataset");
  cr_assert_eq(judge(&s, 1, &r), FG_ERR_IO, "a process that failed is reported with its status");
  cr_assert(strstr(fg_last_error(), "rank 1") && strstr(fg_last_error(), "cannot open the dataset"), "%s",
            fg_last_error());
  fg_identity_record two = twin(&s, 2);
  cr_assert_eq(judge(&s, 2, &two), FG_OK);
  two.partition_hash = 100;
  cr_assert_eq(judge(&s, 2, &two), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "partition"), "%s", fg_last_error());
}

Test(spread, a_worker_finds_where_its_configuration_differs) {
  script s;
  memset(&s, 0, sizeof s);
  s.rank = 1;
  s.root_text = "# fedgap \nname: x\nseed: 1\nrounds: 3\n";
  s.root_verdict = FG_ERR_CONFIG;
  fg_transport t = fake_transport(&s);
  fg_identity id = identity(1);
  id.config_text = "# fedgap \nname: x\nseed: 2\nrounds: 3\n";
  cr_assert_eq(fg_spread_agree(&t, &id), FG_ERR_CONFIG, "the verdict rank 0 sent");
  cr_assert_str_eq(fg_last_error(), "rank 1 differs");
  fg_identity_record r;
  FGT_OK(fg_identity_decode(s.gathered, &r));
  cr_assert_eq(r.diff_line, 3);
  cr_assert_str_eq(r.diff_mine, "seed: 2");
  cr_assert_str_eq(r.diff_root, "seed: 1");
  cr_assert_str_eq(r.revision, "rev-a");
}

Test(spread, one_process_agrees_with_itself) {
  fg_identity id = identity(1);
  FGT_OK(fg_spread_agree(NULL, &id));
  cr_assert_eq(fg_spread_active(NULL), 0);
  id.status = FG_ERR_IO;
  id.error = "no data";
  cr_assert_eq(fg_spread_agree(NULL, &id), FG_ERR_IO);
}
