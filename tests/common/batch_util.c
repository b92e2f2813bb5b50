/* fg_batch_fill into host tensors, for the batching tests. */
#include "common/batch_util.h"

#include <string.h>

#include "common/test_util.h"

fg_status fgt_batch_fill(const fg_dataset_view *view, const uint32_t *order, int64_t start,
                         const fg_normalize *norm, const fg_augment *aug, uint64_t aug_key, fg_tensor *x,
                         fg_tensor *y) {
  cr_assert_eq(x->shape[0], y->shape[0], "fgt_batch_fill: x and y disagree on the count");
  int64_t count = x->shape[0];
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test batch", 0);
  fg_host_batch hb;
  FGT_OK(fg_host_batch_alloc(&hb, &ledger, count > 0 ? count : 1, x->shape[1], x->shape[2], x->shape[3]));
  fg_status s = fg_batch_fill(view, order, start, count, norm, aug, aug_key, &hb);
  if (s == FG_OK && count > 0) {
    memcpy(fg_f32(x), hb.images.ptr, (size_t)fg_tensor_numel(x) * sizeof(float));
    memcpy(fg_i32(y), hb.labels.ptr, (size_t)count * sizeof(int32_t));
  }
  fg_host_batch_free(&hb);
  return s;
}

void fgt_input_open(fgt_input *in, const fg_trainer *t) {
  const fg_node *node = fg_graph_node(fg_trainer_graph(t), 0);
  int64_t n = fg_trainer_plan(t)->opt.batch;
  fg_ledger_init(&in->ledger, "test input", 0);
  FGT_OK(fg_host_batch_alloc(&in->hb, &in->ledger, n, node->shape[0], node->shape[1], node->shape[2]));
  in->x = fg_host_batch_images(&in->hb, n);
  in->y = fg_host_batch_labels(&in->hb, n);
  memset(in->hb.images.ptr, 0, (size_t)fg_tensor_numel(&in->x) * sizeof(float));
  memset(in->hb.labels.ptr, 0, (size_t)n * sizeof(int32_t));
}

void fgt_input_load(fgt_input *in, fg_trainer *t, int64_t n) {
  fg_tensor x = fg_host_batch_images(&in->hb, n), y = fg_host_batch_labels(&in->hb, n);
  FGT_OK(fg_trainer_set_batch(t, &x, &y));
}

void fgt_input_close(fgt_input *in) { fg_host_batch_free(&in->hb); }
