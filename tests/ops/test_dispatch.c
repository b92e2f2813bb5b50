/* Dispatch at the op entry points, independent of any backend's arithmetic: a backend whose
 * table is empty makes every entry point (workspace queries included) report "not supported"
 * naming the op and the backend, never crash; one missing entry of the CPU table does the same
 * for that op alone; tensors on two devices are refused before anything is dispatched. Runs on
 * host memory only (descriptors and small host buffers that are never written). A device's
 * synchronize goes to its backend's entry, and a device without a usable backend is refused. */
#include <stdio.h>
#include <string.h>

#include "common/test_util.h"
#include "cpu/cpu_backend.h"
#include "engine/backend/ops.h"

Test(dispatch, null_entries_are_unsupported) {
  fgt_register_empty_backend();
  float a[64] = {0}, b[64] = {0}, c[64] = {0}, d[64] = {0}, e[64] = {0};
  uint8_t am[16] = {0};
  int32_t lab[2] = {0, 1};
  const int64_t two = 2, s_am[4] = {1, 1, 2, 2};
  fg_tensor t4 = fg_tensor_1d(a, 4), u4 = fg_tensor_1d(b, 4), v4 = fg_tensor_1d(c, 4);
  fg_tensor w4 = fg_tensor_1d(d, 4), e4 = fg_tensor_1d(e, 4);
  fg_tensor m22 = fg_tensor_2d(a, 2, 2), n22 = fg_tensor_2d(b, 2, 2);
  fg_tensor ch = fg_tensor_1d(c, 2), ch2 = fg_tensor_1d(d, 2), ch3 = fg_tensor_1d(e, 2);
  fg_tensor tl = fg_tensor_view(lab, FG_I32, fg_host_device(), 1, &two);
  fg_tensor x = fg_tensor_4d(a, 1, 1, 4, 4), y = fg_tensor_4d(b, 1, 1, 2, 2);
  fg_tensor tam = fg_tensor_view(am, FG_U8, fg_host_device(), 4, s_am);
  fg_tensor cx = fg_tensor_4d(a, 1, 2, 3, 3), cw = fg_tensor_4d(b, 2, 2, 3, 3);
  fg_tensor cy = fg_tensor_4d(c, 1, 2, 3, 3), cb = fg_tensor_1d(d, 2),
            pooled = fg_tensor_2d(b, 1, 1);
  const fg_conv_desc cd = {1, 1, 1};
  const fg_pool_desc pd = {2, 2, 0};
  const fg_nhsic_desc hd = {1.0f, 0};
  fg_workspace ws = {e, sizeof e};
  double loss;
  size_t bytes;
  const fg_kl_desc kd = {1.0f, 0.0f, FG_KL_BATCHMEAN, 1.0f};
  const fg_sgd_hparams sh = {0.1f, 0.0f, 0.0f, 0.0f, 0};
  const fg_adam_hparams ah = {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f};
  const struct {
    const char *op;
    fg_status got;
  } calls[] = {
      {"conv2d_workspace", fg_conv2d_workspace(&cd, &cx, &cw, &bytes)},
      {"conv2d_forward", fg_conv2d_forward(&cd, &cx, &cw, &cb, &cy, ws)},
      {"conv2d_backward_data", fg_conv2d_backward_data(&cd, &cy, &cw, &cx, 0, ws)},
      {"conv2d_backward_filter", fg_conv2d_backward_filter(&cd, &cx, &cy, &cw, &cb, ws)},
      {"linear_forward", fg_linear_forward(&m22, &n22, &ch, &m22)},
      {"linear_backward_data", fg_linear_backward_data(&m22, &n22, &m22, 0)},
      {"linear_backward_params", fg_linear_backward_params(&m22, &m22, &n22, &ch)},
      {"bn_forward_train",
       fg_bn_forward_train(&m22, &ch, &ch2, &n22, &ch3, &ch, NULL, NULL, 0.1f, 1e-5f)},
      {"bn_forward_eval", fg_bn_forward_eval(&m22, &ch, &ch2, &ch3, &ch, 1e-5f, &n22)},
      {"bn_backward", fg_bn_backward(&m22, &n22, &ch, &ch2, &ch3, NULL, NULL, NULL, 0)},
      {"relu_forward", fg_relu_forward(&t4, &u4)},
      {"relu_backward", fg_relu_backward(&t4, &u4, &v4, 0)},
      {"add", fg_add(&t4, &u4, &v4)},
      {"axpy", fg_axpy(1.0f, &t4, &u4)},
      {"scale", fg_scale(1.0f, &t4, &u4)},
      {"copy", fg_copy(&t4, &u4)},
      {"fill", fg_fill(&t4, 0.0f)},
      {"dropout_forward", fg_dropout_forward(&t4, &u4, 0.5f, 1)},
      {"dropout_backward", fg_dropout_backward(&t4, &u4, 0.5f, 1, 0)},
      {"maxpool_forward", fg_maxpool_forward(&pd, &x, &y, &tam)},
      {"maxpool_backward", fg_maxpool_backward(&pd, &y, &tam, &x, 0)},
      {"avgpool_global_forward", fg_avgpool_global_forward(&x, &pooled)},
      {"avgpool_global_backward", fg_avgpool_global_backward(&pooled, &x, 0)},
      {"softmax_xent", fg_softmax_xent(&m22, &tl, NULL, 1.0f, NULL, 0, &loss, NULL)},
      {"kl_div", fg_kl_div(&kd, &m22, &n22, NULL, NULL, 0, &loss)},
      {"mse", fg_mse(&t4, &u4, 1.0f, NULL, 0, &loss)},
      {"nhsic_workspace", fg_nhsic_workspace(fg_host_device(), 2, &bytes)},
      {"nhsic", fg_nhsic(&hd, &m22, &n22, NULL, 1.0f, NULL, 0, ws, &loss)},
      {"sgd_step", fg_sgd_step(&sh, &t4, &u4, NULL)},
      {"adam_step", fg_adam_step(&ah, 1, &t4, &u4, &v4, &w4)},
      {"sum_squares", fg_sum_squares(&e4, &loss)},
      {"svd_workspace", fg_svd_workspace(&m22, &bytes)},
  };
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
    cr_assert_eq(calls[i].got, FG_ERR_UNSUPPORTED, "%s returned %s", calls[i].op,
                 fg_status_name(calls[i].got));
  fg_tensor vt22 = fg_tensor_2d(c, 2, 2);
  fgt_assert_error(fg_svd(&m22, &n22, &ch3, &vt22, ws), FG_ERR_UNSUPPORTED, NULL,
                   "svd [2, 2]: not supported by the empty backend");
  fgt_assert_error(fg_sum_squares(&e4, &loss), FG_ERR_UNSUPPORTED, NULL,
                   "sum_squares: not supported by the empty backend");
  fg_backend_registry_clear();
}

Test(dispatch, one_missing_entry_is_unsupported) {
  fgt_setup_cpu(1);
  static float buf[256];
  fg_backend *b = fg_cpu_backend();
  cr_assert_not_null(b);
  b->maxpool_forward = NULL; /* this test runs in its own process */
  fg_tensor x = fg_tensor_4d(buf, 1, 1, 4, 4), y = fg_tensor_4d(buf + 16, 1, 1, 2, 2);
  fg_pool_desc d = {2, 2, 0};
  fgt_assert_error(fg_maxpool_forward(&d, &x, &y, NULL), FG_ERR_UNSUPPORTED, NULL,
                   "maxpool_forward: not supported by the cpu backend");
  fg_tensor pooled = fg_tensor_2d(buf + 32, 1, 1);
  FGT_OK(fg_avgpool_global_forward(&x, &pooled)); /* the other entries still run */
}

Test(dispatch, tensors_on_different_devices) {
  fgt_setup_cpu(1);
  float a[4] = {0}, y[4];
  fg_tensor ta = fg_tensor_1d(a, 4), ty = fg_tensor_1d(y, 4);
  ty.device.kind = FG_DEV_CUDA;
  fgt_assert_error(fg_relu_forward(&ta, &ty), FG_ERR_INVALID, NULL,
                   "relu_forward: tensors live on different devices (cpu:0 and cuda:0)");
}

/* A backend's synchronize entry, counting its calls; fails when `sync_fails` is set. */
static int sync_calls, sync_fails;
static fg_status counting_sync(fg_backend *b) {
  (void)b;
  sync_calls++;
  return sync_fails ? FG_FAIL(FG_ERR_LIBRARY, "queued work failed") : FG_OK;
}

Test(dispatch, device_synchronize) {
  fgt_setup_cpu(1);
  FGT_OK(fg_device_synchronize(fg_host_device())); /* the CPU runs every op before returning */
  const fg_device cuda0 = {FG_DEV_CUDA, 0};
  static fg_backend fake;
  memset(&fake, 0, sizeof fake);
  fake.name = "fake";
  fake.device = cuda0;
  fake.available = 0;
  snprintf(fake.reason, sizeof fake.reason, "no device here");
  FGT_OK(fg_backend_register(&fake));
  fgt_assert_error(fg_device_synchronize(cuda0), FG_ERR_NO_DEVICE, NULL, "fake: no device here");
  fake.available = 1;
  FGT_OK(fg_device_synchronize(cuda0)); /* no synchronize entry: nothing is ever queued */
  fake.synchronize = counting_sync;
  FGT_OK(fg_device_synchronize(cuda0));
  cr_assert_eq(sync_calls, 1);
  sync_fails = 1;
  fgt_assert_error(fg_device_synchronize(cuda0), FG_ERR_LIBRARY, NULL, "device_synchronize: queued work failed");
  cr_assert_eq(sync_calls, 2);
  const fg_device cuda1 = {FG_DEV_CUDA, 1};
  fgt_assert_error(fg_device_synchronize(cuda1), FG_ERR_NO_DEVICE, NULL, "fake:1 requested");
  fg_backend_registry_clear();
}
