/* The messages of `fedgap serve` and `fedgap device` (mqtt/mqtt_wire.h): jobs and results survive
 * the trip field by field and float by float, through chunks delivered out of order and twice;
 * every kind of malformed message or chunk is refused with FG_ERR_FORMAT naming the problem, and a
 * refused chunk leaves the assembly as it was; an assembly in a file holds the same bytes; device
 * statuses and topics survive their trip, and bad ones are refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/test_util.h"
#include "engine/io/atomic_file.h"
#include "engine/io/safetensors.h"
#include "mqtt/mqtt_wire.h"

static fg_msg sample_job(int64_t numel) {
  fg_msg m;
  memset(&m, 0, sizeof m);
  m.kind = FG_MSG_JOB;
  snprintf(m.run, sizeof m.run, "cnn-fmnist");
  m.config_hash = 0x0123456789abcdefull;
  fg_job j = {2, 7, 3, 41, 1, 0, 0xfedcba9876543210ull, (uint64_t)300 << 20};
  m.job = j;
  m.numel = numel;
  return m;
}

static fg_msg sample_result(int64_t numel) {
  fg_msg m = sample_job(numel);
  m.kind = FG_MSG_RESULT;
  m.result.round = m.job.round;
  m.result.slot = m.job.slot;
  m.result.numel = numel;
  m.result.rec.id = 41;
  m.result.rec.level = 1;
  m.result.rec.samples = 1234;
  m.result.rec.train_loss = 0.1 + 0.2; /* not a short decimal: must travel bit for bit */
  m.result.rec.seconds = 1.0 / 3.0;
  m.result.rec.engine_peak_bytes = (size_t)987654321;
  snprintf(m.result.rec.config, sizeof m.result.rec.config, "rate 0.5");
  return m;
}

static float *ramp(int64_t n) {
  float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
  for (int64_t i = 0; i < n; i++) v[i] = (float)i * 0.37f - 5.0f + (i % 7 == 0 ? 1e-30f : 0.0f);
  return v;
}

Test(mqtt_wire, job_round_trip) {
  enum { N = 1000 };
  fg_msg m = sample_job(N), back;
  float *state = ramp(N), got[N];
  unsigned char *bytes = NULL;
  size_t len = 0;
  FGT_OK(fg_msg_encode(&m, state, NULL, &bytes, &len));
  FGT_OK(fg_msg_decode(bytes, len, &back, got, NULL, N));
  cr_assert_eq(back.kind, FG_MSG_JOB);
  cr_assert_str_eq(back.run, "cnn-fmnist");
  cr_assert_eq(back.config_hash, m.config_hash);
  cr_assert_eq(memcmp(&back.job, &m.job, sizeof m.job), 0);
  cr_assert_eq(back.numel, N);
  cr_assert_eq(memcmp(got, state, sizeof got), 0);
  free(bytes);
  free(state);
}

Test(mqtt_wire, a_job_with_a_proximal_term_round_trip) {
  enum { N = 50 };
  fg_msg m = sample_job(N), back;
  float *state = ramp(N), linear[N], got[N], got_linear[N];
  for (int i = 0; i < N; i++) linear[i] = -0.5f * (float)i;
  unsigned char *bytes = NULL;
  size_t len = 0;
  FGT_OK(fg_msg_encode(&m, state, linear, &bytes, &len));
  FGT_OK(fg_msg_decode(bytes, len, &back, got, got_linear, N));
  cr_assert_eq(back.has_linear, 1);
  cr_assert_eq(memcmp(got, state, sizeof got), 0);
  cr_assert_eq(memcmp(got_linear, linear, sizeof linear), 0);
  cr_assert_eq(fg_msg_decode(bytes, len, &back, got, NULL, N), FG_ERR_FORMAT, "a receiver that expects none");
  cr_assert(strstr(fg_last_error(), "linear") != NULL, "%s", fg_last_error());
  free(bytes);
  m.kind = FG_MSG_RESULT;
  m.result.round = m.job.round;
  m.result.slot = m.job.slot;
  m.result.numel = N;
  cr_assert_eq(fg_msg_encode(&m, state, linear, &bytes, &len), FG_ERR_INVALID, "results carry no linear part");
  free(state);
}

Test(mqtt_wire, result_round_trip) {
  enum { N = 333 };
  fg_msg m = sample_result(N), back;
  float *state = ramp(N), got[N];
  unsigned char *bytes = NULL;
  size_t len = 0;
  FGT_OK(fg_msg_encode(&m, state, NULL, &bytes, &len));
  FGT_OK(fg_msg_decode(bytes, len, &back, got, NULL, N));
  cr_assert_eq(back.kind, FG_MSG_RESULT);
  cr_assert_eq(back.result.rec.samples, 1234);
  double loss = 0.1 + 0.2, third = 1.0 / 3.0;
  cr_assert_eq(memcmp(&back.result.rec.train_loss, &loss, sizeof loss), 0);
  cr_assert_eq(memcmp(&back.result.rec.seconds, &third, sizeof third), 0);
  cr_assert_eq(back.result.rec.engine_peak_bytes, (size_t)987654321);
  cr_assert_str_eq(back.result.rec.config, "rate 0.5");
  cr_assert_eq(memcmp(got, state, sizeof got), 0);
  free(bytes);
  free(state);
}

/* Decoding bytes [len] fails with FG_ERR_FORMAT and a message holding `needle`. */
static void refused(const unsigned char *bytes, size_t len, int64_t cap, const char *needle) {
  fg_msg back;
  float *got = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *got);
  fg_status s = fg_msg_decode(bytes, len, &back, got, NULL, cap);
  cr_assert_eq(s, FG_ERR_FORMAT, "expected a refusal naming '%s', got status %d (%s)", needle, (int)s, fg_last_error());
  cr_assert(strstr(fg_last_error(), needle) != NULL, "'%s' not in: %s", needle, fg_last_error());
  free(got);
}

Test(mqtt_wire, truncated_oversized_and_corrupt_messages_are_refused) {
  enum { N = 64 };
  fg_msg m = sample_result(N);
  float *state = ramp(N);
  unsigned char *bytes = NULL;
  size_t len = 0;
  FGT_OK(fg_msg_encode(&m, state, NULL, &bytes, &len));
  refused(bytes, len - 5, N, "message");                /* truncated */
  refused(bytes, 3, N, "message");                      /* not even a length */
  refused(bytes, len, N - 1, "oversized");              /* more floats than the receiver expects */
  bytes[len - 9] ^= 0x40;                               /* a bit of the state flipped */
  refused(bytes, len, N, "CRC");
  free(bytes);
  free(state);
}

/* A message written by hand: metadata and tensors as given (NULL: left out). */
typedef struct crafted {
  const char *kind, *run, *hash;
  const unsigned char *job;
  size_t job_len;
  const unsigned char *result;
  size_t result_len;
  const float *state;
  int64_t numel;
  fg_st_dtype state_dtype;
} crafted;

static unsigned char *craft(const crafted *c, size_t *len) {
  fg_st_writer w;
  fg_st_writer_init(&w);
  if (c->kind) FGT_OK(fg_st_writer_set_metadata(&w, "fedgap.kind", c->kind));
  if (c->run) FGT_OK(fg_st_writer_set_metadata(&w, "fedgap.run", c->run));
  if (c->hash) FGT_OK(fg_st_writer_set_metadata(&w, "fedgap.config_hash", c->hash));
  int64_t js = (int64_t)c->job_len, rs = (int64_t)c->result_len, ss = c->numel;
  if (c->job) FGT_OK(fg_st_writer_add(&w, "job", FG_ST_U8, 1, &js, c->job));
  if (c->result) FGT_OK(fg_st_writer_add(&w, "result", FG_ST_U8, 1, &rs, c->result));
  if (c->state) FGT_OK(fg_st_writer_add(&w, "state", c->state_dtype, 1, &ss, c->state));
  unsigned char *bytes = NULL;
  FGT_OK(fg_st_writer_to_memory(&w, &bytes, len));
  fg_st_writer_free(&w);
  return bytes;
}

Test(mqtt_wire, malformed_fields_are_refused) {
  enum { N = 16 };
  fg_msg m = sample_result(N);
  float *state = ramp(N);
  unsigned char job[128], result[FG_RESULT_BYTES];
  size_t job_len = 0, result_len = 0;
  fg_wire_header h = {FG_WIRE_ROUND, m.job.method, m.job.round, FG_OK, N, 1, 0};
  FGT_OK(fg_wire_header_encode(&h, &m.job, job, sizeof job, &job_len));
  FGT_OK(fg_result_encode(&m.result, result, sizeof result, &result_len));
  const crafted good = {"result", "r", "0123456789abcdef", job, job_len, result, result_len, state, N, FG_ST_F32};
  struct {
    const char *needle;
    crafted c;
  } cases[] = {
      {"fedgap.kind", good},
      {"neither job nor result", good},
      {"fedgap.run", good},
      {"config hash", good},
      {"config hash", good},
      {"no tensor 'job'", good},
      {"round header", good},
      {"no tensor 'result'", good},
      {"result", good},
      {"no tensor 'state'", good},
      {"tensor 'state' is not F32", good},
      {"tensor 'state' is not F32", good},
  };
  cases[0].c.kind = NULL;
  cases[1].c.kind = "update";
  cases[2].c.run = NULL;
  cases[3].c.hash = "12345";
  cases[4].c.hash = "0123456789abcdeg";
  cases[5].c.job = NULL;
  cases[6].c.job_len = job_len - 1;
  cases[7].c.result = NULL;
  cases[8].c.result_len = result_len - 8;
  cases[9].c.state = NULL;
  cases[10].c.numel = N - 1;
  cases[11].c.state_dtype = FG_ST_I32;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len = 0;
    unsigned char *bytes = craft(&cases[i].c, &len);
    refused(bytes, len, N, cases[i].needle);
    free(bytes);
  }
  /* A result that answers another slot than its job, and one declaring another size. */
  fg_result other = m.result;
  other.slot++;
  FGT_OK(fg_result_encode(&other, result, sizeof result, &result_len));
  size_t len = 0;
  unsigned char *bytes = craft(&good, &len);
  refused(bytes, len, N, "answers round");
  free(bytes);
  other = m.result;
  other.numel = N + 1;
  FGT_OK(fg_result_encode(&other, result, sizeof result, &result_len));
  bytes = craft(&good, &len);
  refused(bytes, len, N, "declares");
  free(bytes);
  /* The control: the hand-made good message is accepted. */
  FGT_OK(fg_result_encode(&m.result, result, sizeof result, &result_len));
  bytes = craft(&good, &len);
  fg_msg back;
  float got[N];
  FGT_OK(fg_msg_decode(bytes, len, &back, got, NULL, N));
  free(bytes);
  free(state);
}

Test(mqtt_wire, transfer_ids_name_kind_round_and_slot) {
  fg_msg_kind k;
  int round, slot;
  FGT_OK(fg_transfer_parse(fg_transfer_id(FG_MSG_RESULT, 1999, 12345), &k, &round, &slot));
  cr_assert_eq(k, FG_MSG_RESULT);
  cr_assert_eq(round, 1999);
  cr_assert_eq(slot, 12345);
  cr_assert_neq(fg_transfer_id(FG_MSG_RESULT, 3, 1), fg_transfer_id(FG_MSG_JOB, 3, 1));
  cr_assert_neq(fg_transfer_id(FG_MSG_RESULT, 3, 1), fg_transfer_id(FG_MSG_RESULT, 4, 1));
  cr_assert_eq(fg_transfer_parse(0, &k, &round, &slot), FG_ERR_FORMAT);
}

/* A message of `total` bytes cut into chunks of cb; the chunks [count][cb + head]. */
typedef struct cut {
  unsigned char *msg, *chunks;
  size_t *len, stride;
  uint32_t count;
} cut;

static cut cut_message(size_t total, size_t cb, uint64_t transfer, unsigned seed) {
  cut c;
  c.msg = malloc(total ? total : 1);
  for (size_t i = 0; i < total; i++) c.msg[i] = (unsigned char)((i * 131 + seed) >> 3);
  c.count = fg_chunk_count(total, cb);
  c.stride = FG_CHUNK_HEAD_BYTES + cb;
  c.chunks = malloc(c.count * c.stride);
  c.len = malloc(c.count * sizeof *c.len);
  for (uint32_t i = 0; i < c.count; i++)
    FGT_OK(fg_chunk_make(transfer, c.msg, total, cb, i, c.chunks + i * c.stride, c.stride, &c.len[i]));
  return c;
}

static void cut_free(cut *c) {
  free(c->msg);
  free(c->chunks);
  free(c->len);
}

Test(mqtt_wire, chunks_reassemble_in_any_order_and_twice) {
  const size_t totals[] = {0, 1, 999, 1000, 1001, 65536 + 17};
  const size_t sizes[] = {1000, 7, 4096};
  for (size_t t = 0; t < sizeof totals / sizeof totals[0]; t++)
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
      size_t total = totals[t], cb = sizes[z];
      if (total / cb > 2000) continue;
      cut c = cut_message(total, cb, fg_transfer_id(FG_MSG_RESULT, 2, 5), 7);
      fg_assembly a;
      fg_assembly_init(&a, 1 << 20);
      int complete = 0;
      /* Backwards, then the last chunk again (a QoS 1 redelivery). */
      for (uint32_t k = c.count; k-- > 0;) {
        cr_assert_eq(complete, 0, "complete before chunk %u", k);
        FGT_OK(fg_assembly_add(&a, c.chunks + k * c.stride, c.len[k], &complete));
      }
      cr_assert_eq(complete, 1, "total %zu, chunks of %zu", total, cb);
      FGT_OK(fg_assembly_add(&a, c.chunks + (c.count - 1) * c.stride, c.len[c.count - 1], &complete));
      cr_assert_eq(complete, 1);
      cr_assert_eq(a.first.total, total);
      cr_assert_eq(memcmp(a.bytes, c.msg, total), 0, "total %zu, chunks of %zu", total, cb);
      fg_assembly_free(&a);
      cut_free(&c);
    }
}

/* Adding chunk [len] is refused naming `needle`, and the assembly did not move. */
static void chunk_refused(fg_assembly *a, const unsigned char *chunk, size_t len, const char *needle) {
  uint32_t before = a->received;
  int complete = 0;
  fg_status s = fg_assembly_add(a, chunk, len, &complete);
  cr_assert_eq(s, FG_ERR_FORMAT, "expected a refusal naming '%s', got %d (%s)", needle, (int)s, fg_last_error());
  cr_assert(strstr(fg_last_error(), needle) != NULL, "'%s' not in: %s", needle, fg_last_error());
  cr_assert_eq(a->received, before);
  cr_assert_eq(complete, 0);
}

Test(mqtt_wire, malformed_chunks_are_refused) {
  enum { TOTAL = 2500, CB = 1000 };
  uint64_t id = fg_transfer_id(FG_MSG_RESULT, 0, 1);
  cut c = cut_message(TOTAL, CB, id, 1);
  unsigned char bad[FG_CHUNK_HEAD_BYTES + CB];
  fg_assembly a;
  fg_assembly_init(&a, TOTAL);
  int complete = 0;
  FGT_OK(fg_assembly_add(&a, c.chunks, c.len[0], &complete));

  chunk_refused(&a, c.chunks + c.stride, 40, "truncated");
  chunk_refused(&a, c.chunks + c.stride, c.len[1] - 1, "truncated");
  struct {
    size_t at;        /* byte flipped */
    const char *needle;
  } flips[] = {{0, "magic"}, {12, "index"}, {16, "count"}, {28, "len"}, {32, "len"},
               {40, "SHA-256"}, {FG_CHUNK_HEAD_BYTES + 10, "SHA-256"}, {4, "transfer"}};
  for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
    memcpy(bad, c.chunks + c.stride, c.len[1]);
    bad[flips[i].at] ^= flips[i].at == 12 ? 0x10 : 0x01;
    chunk_refused(&a, bad, c.len[1], flips[i].needle);
  }
  /* A chunk of the same transfer cut from other bytes: its own digest is right, but its index
   * arrived already with other bytes. */
  cut other = cut_message(TOTAL, CB, id, 99);
  chunk_refused(&a, other.chunks, other.len[0], "other bytes");
  /* A chunk of a message of another size under the same transfer id. */
  cut longer = cut_message(TOTAL - 1, CB, id, 1);
  chunk_refused(&a, longer.chunks + longer.stride, longer.len[1], "total");
  /* The assembly still completes with the right chunks. */
  FGT_OK(fg_assembly_add(&a, c.chunks + c.stride, c.len[1], &complete));
  FGT_OK(fg_assembly_add(&a, c.chunks + 2 * c.stride, c.len[2], &complete));
  cr_assert_eq(complete, 1);
  cr_assert_eq(memcmp(a.bytes, c.msg, TOTAL), 0);
  fg_assembly_free(&a);

  /* A message larger than the receiver's cap is refused at its first chunk. */
  fg_assembly small;
  fg_assembly_init(&small, TOTAL - 1);
  chunk_refused(&small, c.chunks, c.len[0], "oversized");
  fg_assembly_free(&small);
  cut_free(&c);
  cut_free(&other);
  cut_free(&longer);
}

Test(mqtt_wire, device_statuses_round_trip_and_bad_ones_are_refused) {
  fg_device_status st = {1, "0.1.0", "cuda:0", 123456789, 2000, 7, 0xfedcba9876543210ull, 3, {2, -1, 0}, 4, 9}, back;
  char text[512];
  FGT_OK(fg_device_status_format(&st, text, sizeof text));
  FGT_OK(fg_device_status_parse(text, &back));
  cr_assert_eq(memcmp(&st, &back, sizeof st), 0, "%s", text);
  st.holds_round = st.holds_slot = -1;
  FGT_OK(fg_device_status_format(&st, text, sizeof text));
  cr_assert(strstr(text, "holds") == NULL, "%s", text);
  FGT_OK(fg_device_status_parse(text, &back));
  cr_assert_eq(back.holds_round, -1);
  FGT_OK(fg_device_status_parse("offline", &back));
  cr_assert_eq(back.online, 0);
  const char *bad[][2] = {
      {"onlin", "neither online nor offline"},
      {"online backend=cpu budget=1 samples=1 client=0 config=00 fits=0", "version"},
      {"online version=1 backend=cpu budget=-1 samples=1 client=0 config=00 fits=0", "budget"},
      {"online version=1 backend=cpu budget=1 samples=1x client=0 config=00 fits=0", "samples"},
      {"online version=1 backend=cpu budget=1 samples=1 client=-2 config=00 fits=0", "out of range"},
      {"online version=1 backend=cpu budget=1 samples=1 client=0 config=zz fits=0", "config"},
      {"online version=1 backend=cpu budget=1 samples=1 client=0 config=00 fits=0,,1", "fits"},
      {"online version=1 backend=cpu budget=1 samples=1 client=0 config=00", "fits"},
      {"online version=1 backend=cpu budget=1 samples=1 client=0 config=00 fits=0 holds=1", "holds"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(fg_device_status_parse(bad[i][0], &back), FG_ERR_FORMAT, "%s", bad[i][0]);
    cr_assert(strstr(fg_last_error(), bad[i][1]) != NULL, "'%s' not in: %s", bad[i][1], fg_last_error());
  }
  char topic[64];
  FGT_OK(fg_mqtt_topic(topic, sizeof topic, "run1", "job", "dev0"));
  cr_assert_str_eq(topic, "fg/run1/job/dev0");
  cr_assert_eq(fg_mqtt_topic(topic, sizeof topic, "run1", "job", "dev/0"), FG_ERR_INVALID);
  cr_assert_eq(fg_mqtt_topic(topic, sizeof topic, "r+", "job", NULL), FG_ERR_INVALID);
  cr_assert_eq(fg_mqtt_topic(topic, 8, "run1", "job", "dev0"), FG_ERR_INVALID);
}

Test(mqtt_wire, assembly_in_a_file) {
  enum { TOTAL = 5000, CB = 1024 };
  char *dir = fgt_mkdtemp(), *path = fgt_join(dir, "msg.partial");
  uint64_t id = fg_transfer_id(FG_MSG_RESULT, 1, 2);
  cut c = cut_message(TOTAL, CB, id, 5), other = cut_message(TOTAL, CB, id, 6);
  fg_assembly a;
  fg_assembly_init(&a, 1 << 20);
  FGT_OK(fg_assembly_use_file(&a, path));
  cr_assert_null(a.bytes);
  int complete = 0;
  FGT_OK(fg_assembly_add(&a, c.chunks + 3 * c.stride, c.len[3], &complete));
  cr_assert_eq(access(path, F_OK), 0, "the file is made when the message begins");
  chunk_refused(&a, other.chunks + 3 * other.stride, other.len[3], "other bytes");
  fg_assembly_reset(&a); /* a message dropped midway takes its file along */
  cr_assert_neq(access(path, F_OK), 0);
  for (uint32_t k = c.count; k-- > 0;) FGT_OK(fg_assembly_add(&a, c.chunks + k * c.stride, c.len[k], &complete));
  FGT_OK(fg_assembly_add(&a, c.chunks, c.len[0], &complete)); /* again */
  cr_assert_eq(complete, 1);
  FGT_OK(fg_assembly_finish_file(&a));
  unsigned char *bytes = NULL;
  size_t len = 0;
  FGT_OK(fg_read_file(path, 1 << 20, &bytes, &len));
  cr_assert_eq(len, TOTAL);
  cr_assert_eq(memcmp(bytes, c.msg, TOTAL), 0);
  fg_assembly_reset(&a); /* a finished message's file stays: it is the caller's */
  cr_assert_eq(access(path, F_OK), 0);
  free(bytes);
  fg_assembly_free(&a);
  cut_free(&c);
  cut_free(&other);
  free(path);
  fgt_rmtree(dir);
  free(dir);
}
