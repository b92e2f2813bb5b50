/* Op suite: whole-tensor transfers (fg_tensor_from_host, fg_tensor_to_host, fg_tensor_transfer
 * host to device, device to host and within a device) on every backend, for f32, i32 and u8
 * tensors, odd sizes, differing shapes of equal element count, the misaligned and partial-batch
 * layouts: every byte arrives, nothing around the destination is written, and the entry points
 * refuse differing dtypes, element counts and byte counts. */
#include <string.h>

#include "engine/base/rng.h"
#include "ops/harness/op_suite.h"

enum { TO_DEVICE, TO_HOST, WITHIN, FROM_HOST, TO_HOST_BYTES };

typedef struct transfer_row {
  int kind;
  fg_dtype dtype;
  int64_t n;
  int reshape; /* the destination is [n / k, k] (k the smallest factor > 1), the source [n] */
  int layout;
} transfer_row;

static const transfer_row ROWS[] = {
    {TO_DEVICE, FG_F32, 1, 0, FGT_ALIGNED},     {TO_DEVICE, FG_I32, 7, 0, FGT_ALIGNED},
    {TO_DEVICE, FG_U8, 1001, 0, FGT_PARTIAL},   {TO_DEVICE, FG_F32, 70001, 1, FGT_MISALIGNED},
    {TO_HOST, FG_F32, 1, 0, FGT_ALIGNED},       {TO_HOST, FG_U8, 7, 0, FGT_ALIGNED},
    {TO_HOST, FG_I32, 1001, 1, FGT_PARTIAL},    {TO_HOST, FG_F32, 70001, 0, FGT_MISALIGNED},
    {WITHIN, FG_F32, 1, 0, FGT_ALIGNED},        {WITHIN, FG_U8, 7, 0, FGT_ALIGNED},
    {WITHIN, FG_I32, 1001, 1, FGT_MISALIGNED},  {WITHIN, FG_F32, 70001, 0, FGT_PARTIAL},
    {FROM_HOST, FG_F32, 7, 0, FGT_ALIGNED},     {FROM_HOST, FG_U8, 70001, 0, FGT_MISALIGNED},
    {TO_HOST_BYTES, FG_I32, 7, 0, FGT_ALIGNED}, {TO_HOST_BYTES, FG_F32, 1001, 0, FGT_PARTIAL},
    {WITHIN, FG_F32, 12, 0, FGT_ALIGNED},       /* the error rows' base */
};
enum { ROW_COUNT = sizeof ROWS / sizeof ROWS[0] };

enum { SRC, DST };

/* The host side of a transfer: the case's own memory, as a host tensor. */
typedef struct transfer_case {
  const transfer_row *r;
  void *host; /* TO_DEVICE / FROM_HOST: the source; TO_HOST*: the destination */
  fg_tensor host_t;
} transfer_case;

static fg_status transfer_call(fgt_op *op) {
  transfer_case *c = (transfer_case *)op->row;
  switch (c->r->kind) {
    case TO_DEVICE: return fg_tensor_transfer(fgt_t(op, DST), &c->host_t);
    case TO_HOST: return fg_tensor_transfer(&c->host_t, fgt_t(op, SRC));
    case FROM_HOST:
      return fg_tensor_from_host(fgt_t(op, DST), c->host, fg_tensor_bytes(&c->host_t));
    case TO_HOST_BYTES:
      return fg_tensor_to_host(c->host, fgt_t(op, SRC), fg_tensor_bytes(&c->host_t));
    default: return fg_tensor_transfer(fgt_t(op, DST), fgt_t(op, SRC));
  }
}

/* The host destination holds exactly the source's bytes. */
static void check_host_copy(const fgt_op *op, const char *backend, void *const *out) {
  const transfer_case *c = op->row;
  cr_assert(memcmp(c->host, out[SRC], fg_tensor_bytes(&c->host_t)) == 0,
            "%s on %s: the host copy differs", op->name, backend);
}

static int64_t smallest_factor(int64_t n) {
  for (int64_t k = 2; k * k <= n; k++)
    if (n % k == 0) return k;
  return n;
}

static void build_transfer(int index, fgt_op *op) {
  const transfer_row *r = &ROWS[index];
  static const char *kinds[] = {"host to device", "device to host", "within the device",
                                "tensor_from_host", "tensor_to_host"};
  fgt_name(op, "transfer %s %s n%lld%s%s", kinds[r->kind], fg_dtype_name(r->dtype), (long long)r->n,
           r->reshape ? " reshaped" : "", fgt_layout_name(r->layout));
  transfer_case *c = fgt_scratch(op, sizeof *c);
  c->r = r;
  op->row = c;
  op->call = transfer_call;
  fgt_layout(op, r->layout);
  const int64_t k = smallest_factor(r->n), shape2[2] = {r->n / k, k};
  const size_t bytes = (size_t)r->n * fg_dtype_size(r->dtype);
  c->host = fgt_scratch(op, bytes);
  c->host_t = fg_tensor_view(c->host, r->dtype, fg_host_device(), 1, &r->n);
  const int device_source = r->kind == TO_HOST || r->kind == TO_HOST_BYTES || r->kind == WITHIN;
  const int device_dest = r->kind != TO_HOST && r->kind != TO_HOST_BYTES;
  unsigned char *src =
      device_source ? fgt_arg_declare(op, SRC, "src", r->dtype, FGT_IN, 1, &r->n) : c->host;
  fg_rng rng = fg_rng_stream(op->seed, FG_RNG_TEST, 0, 0);
  for (size_t b = 0; b < bytes; b++) src[b] = (unsigned char)fg_rng_u32(&rng);
  if (r->dtype == FG_F32) /* finite floats: the comparison below is of values */
    for (int64_t i = 0; i < r->n; i++) ((float *)src)[i] = (float)(fg_rng_uniform(&rng) - 0.5f);
  if (!device_dest) {
    op->check = check_host_copy;
    return;
  }
  if (r->reshape)
    fgt_arg_declare(op, DST, "dst", r->dtype, FGT_OUT, 2, shape2);
  else
    fgt_arg_declare(op, DST, "dst", r->dtype, FGT_OUT, 1, &r->n);
  double *want = fgt_expect(op, DST, FGT_EXACT);
  for (int64_t i = 0; i < r->n; i++) {
    if (r->dtype == FG_F32)
      want[i] = ((float *)src)[i];
    else if (r->dtype == FG_I32)
      want[i] = ((int32_t *)src)[i];
    else
      want[i] = src[i];
  }
}

static const fgt_error_row ERRORS[] = {
    {ROW_COUNT - 1, DST, 0, {0}, FG_I32, FG_ERR_SHAPE,
     "tensor_transfer: dtypes differ (f32 into i32)", NULL},
    {ROW_COUNT - 1, DST, 2, {5, 2}, -1, FG_ERR_SHAPE,
     "tensor_transfer: dst has shape [5, 2] (10 elements), expected 12 elements", NULL},
    {12, DST, 1, {8}, -1, FG_ERR_SHAPE,
     "tensor_from_host: 28 bytes given for a tensor of 32 bytes", NULL},
    {14, SRC, 1, {9}, -1, FG_ERR_SHAPE,
     "tensor_to_host: 28 bytes given for a tensor of 36 bytes", NULL},
};
static const fgt_suite TRANSFER = {"tensor_transfer", ROW_COUNT, build_transfer, ERRORS, 4};
FGT_SUITE_TESTS(transfer, whole_tensors, TRANSFER)
