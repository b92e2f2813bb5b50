/* Backend interface: one table of function pointers per device kind (CPU, CUDA).
 *
 * Layers and methods never call a backend directly: they call the validating entry points in
 * engine/backend/ops.h, which check shapes, dtypes and devices and then call the table of the
 * device the tensors live on. An absent (NULL) entry means "not supported": the entry point
 * returns FG_ERR_UNSUPPORTED, never a silent fallback. Compute entries receive their workspace
 * explicitly and never allocate. Owns: nothing; backends own their contexts. */
#ifndef FG_BACKEND_H
#define FG_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"
#include "engine/mem/ledger.h"
#include "engine/tensor/tensor.h"

/* ----------------------------------------------------------------------------------------- */
/* Op descriptors                                                                             */

/* 2-D convolution, square stride and padding, dilation 1. Kernel size comes from w's shape. */
typedef struct fg_conv_desc {
  int stride;
  int pad;
  int groups; /* 1 = dense; C = depthwise */
} fg_conv_desc;

/* Max pooling window. Output extent floor((H + 2 pad - kernel) / stride) + 1. */
typedef struct fg_pool_desc {
  int kernel;
  int stride;
  int pad;
} fg_pool_desc;

typedef enum fg_kl_reduction {
  FG_KL_BATCHMEAN = 0,    /* sum over classes, mean over the batch */
  FG_KL_ELEMENTWISE_MEAN, /* mean over batch x classes (PyTorch's default "mean") */
} fg_kl_reduction;

/* Distillation loss  weight * T^2 * reduce( sum_k q_k (log q_k - log p_k) )  with
 * p = softmax(student / T), q = softmax(teacher / T) + teacher_eps. */
typedef struct fg_kl_desc {
  float temperature;
  float teacher_eps;
  fg_kl_reduction reduction;
  float weight;
} fg_kl_desc;

/* SGD as PyTorch: d = g + wd*p; buf = momentum*buf + (1 - dampening)*d (buf = d at the first
 * step, which a zero-initialised buffer gives when dampening = 0); p -= lr*(nesterov ? d +
 * momentum*buf : buf). Coupled weight decay. */
typedef struct fg_sgd_hparams {
  float lr;
  float momentum;
  float weight_decay;
  float dampening;
  int nesterov;
} fg_sgd_hparams;

/* Adam as PyTorch (coupled L2 weight decay: g += wd*p); step is 1-based. */
typedef struct fg_adam_hparams {
  float lr;
  float beta1;
  float beta2;
  float eps;
  float weight_decay;
} fg_adam_hparams;

/* The parameter tensors one optimizer step updates together (a trainer's trainable parameters:
 * one launch on a GPU, not one per tensor). Tensor i (f32, flat, any shapes) is param[i] with
 * its gradient grad[i] (equal numel) and its state: state[0][i] is SGD's momentum buffer (the
 * array NULL when momentum is 0) or Adam's m, state[1][i] Adam's v (NULL array for SGD). */
typedef struct fg_param_group {
  int count;
  fg_tensor *const *param;
  const fg_tensor *const *grad;
  fg_tensor *const *state[2];
} fg_param_group;

/* Normalised HSIC (neulite.md §2): Gaussian kernels K_ij = exp(-|a_i - a_j|^2 / (2 sigma^2 d))
 * over the rows a_i of a [m, d] matrix (d its per-row size), centred K~ = H K H, and
 * nHSIC = tr(K~_z K~_t) / (|K~_z|_F |K~_t|_F) (Gaussian-kernel CKA, in [0, 1]). */
typedef struct fg_nhsic_desc {
  float sigma;  /* the reference uses 5 */
  int classes;  /* label targets: one-hot width K */
} fg_nhsic_desc;

/* Workspaces are byte ranges the caller carves from a region; entry points check their size
 * against the backend's own query and that they start at a multiple of FG_WORKSPACE_ALIGN. */
typedef struct fg_workspace {
  void *ptr;
  size_t bytes;
} fg_workspace;

enum { FG_WORKSPACE_ALIGN = 8 };

/* What a backend found wrong in index data it read while running an op (labels, max-pool argmax
 * positions), which only it can read where the data lives: how many entries were out of range,
 * and the first one (lowest position) with its value. The entry point, which zeroes it before the
 * call, turns a nonzero count into FG_ERR_INVALID naming the op; the op's outputs are then
 * unspecified (a backend may stop before computing them). */
typedef struct fg_index_report {
  int64_t bad;
  int64_t first; /* position of the first bad entry; -1 when the backend does not track it */
  int64_t value; /* its value */
} fg_index_report;

/* ----------------------------------------------------------------------------------------- */
/* Ops and capability queries                                                                 */

/* The compute entries of the table, one per op (names as in engine/backend/ops.h). */
typedef enum fg_op {
  FG_OP_CONV2D_FORWARD = 0,
  FG_OP_CONV2D_BACKWARD_DATA,
  FG_OP_CONV2D_BACKWARD_FILTER,
  FG_OP_LINEAR_FORWARD,
  FG_OP_LINEAR_BACKWARD_DATA,
  FG_OP_LINEAR_BACKWARD_PARAMS,
  FG_OP_BN_FORWARD_TRAIN,
  FG_OP_BN_FORWARD_EVAL,
  FG_OP_BN_BACKWARD,
  FG_OP_RELU_FORWARD,
  FG_OP_RELU_BACKWARD,
  FG_OP_ADD,
  FG_OP_AXPY,
  FG_OP_SCALE,
  FG_OP_COPY,
  FG_OP_FILL,
  FG_OP_DROPOUT_FORWARD,
  FG_OP_DROPOUT_BACKWARD,
  FG_OP_SIGMOID_FORWARD,
  FG_OP_SIGMOID_BACKWARD,
  FG_OP_MUL,
  FG_OP_MAXPOOL_FORWARD,
  FG_OP_MAXPOOL_BACKWARD,
  FG_OP_AVGPOOL_GLOBAL_FORWARD,
  FG_OP_AVGPOOL_GLOBAL_BACKWARD,
  FG_OP_UPSAMPLE2X_BILINEAR_FORWARD,
  FG_OP_UPSAMPLE2X_BILINEAR_BACKWARD,
  FG_OP_SOFTMAX_XENT,
  FG_OP_KL_DIV,
  FG_OP_MSE,
  FG_OP_NHSIC,
  FG_OP_SGD_STEP,
  FG_OP_ADAM_STEP,
  FG_OP_SUM_SQUARES,
  FG_OP_SVD,
  FG_OP_COUNT
} fg_op;

/* One op call as far as it is known before any memory exists: the op, and for the ops whose
 * support can depend on them, shape descriptors (data may be NULL) and descriptors:
 *   conv2d_*:        t[0] = the image-shaped tensor (x or dx) [N,C,H,W], t[1] = the weight
 *                    [O,C/g,kh,kw], conv set;
 *   linear_*:        the two matrices that define the GEMM: x [N,I] and w [O,I] (forward),
 *                    dx [N,I] and w (backward data), x and dy [N,O] (backward params);
 *   softmax_xent:    t[0] = logits [N,K], class_mask set when a mask is given;
 *   nhsic:           t[0] = z [m, ...];
 *   svd:             t[0] = a [m,n];
 * other ops: nothing (only the presence of the entry is asked). */
typedef struct fg_op_query {
  fg_op op;
  const fg_tensor *t[2];
  const fg_conv_desc *conv;
  int class_mask;
} fg_op_query;

/* ----------------------------------------------------------------------------------------- */
/* The table                                                                                  */

typedef struct fg_backend fg_backend;

typedef enum fg_copy_kind { FG_COPY_H2D = 0, FG_COPY_D2H, FG_COPY_D2D } fg_copy_kind;

struct fg_backend {
  const char *name;        /* "cpu", "cuda" */
  fg_device device;
  size_t alignment;        /* region alignment in bytes (64 CPU, 256 CUDA) */
  int available;           /* 0: compiled but unusable, see `reason` */
  char reason[256];        /* why unavailable */
  char description[256];   /* e.g. "cpu: 2 threads, OpenBLAS 0.3.21" */
  void *ctx;
  /* The backend's fixed overhead on its device, outside every trainer's plan: the ledger of its
   * own scratch (library workspaces, reduction partials; NULL when it keeps none) and the memory
   * its runtime and library handles took, measured when it started (baseline_bytes). */
  const fg_ledger *fixed;
  size_t baseline_bytes;

  /* Optional: FG_OK when this backend can run the call q describes (the engine has already
   * checked that the op's entry is present and the shapes are consistent), else
   * FG_ERR_UNSUPPORTED with a message saying why. The planner asks it for every op of a plan, so
   * unsupported work fails before anything runs; every entry point asks it too. */
  fg_status (*supports)(fg_backend *b, const fg_op_query *q);

  /* Memory. Only engine/mem/region.c calls alloc/free, after charging the ledger. */
  fg_status (*alloc)(fg_backend *b, size_t bytes, void **out);
  void (*free)(fg_backend *b, void *ptr);
  fg_status (*copy)(fg_backend *b, void *dst, const void *src, size_t bytes, fg_copy_kind kind);
  fg_status (*synchronize)(fg_backend *b);
  fg_status (*mem_query)(fg_backend *b, size_t *free_bytes, size_t *total_bytes);

  /* Convolution. x [N,C,H,W], w [O,C/groups,kh,kw], bias [O] or NULL, y [N,O,Ho,Wo].
   * workspace: *bytes := what any of the three calls needs for these shapes when they may use
   * up to `limit` bytes (0: the least they need; a backend may plan faster algorithms with more,
   * never more than the larger of the least and limit). A call given a workspace of ws.bytes
   * bytes runs what the query with limit ws.bytes plans. */
  fg_status (*conv2d_workspace)(fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                const fg_tensor *w, size_t limit, size_t *bytes);
  fg_status (*conv2d_forward)(fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                              const fg_tensor *w, const fg_tensor *bias, fg_tensor *y,
                              fg_workspace ws);
  /* dx (=|+=) conv_transpose(dy, w). */
  fg_status (*conv2d_backward_data)(fg_backend *b, const fg_conv_desc *d, const fg_tensor *dy,
                                    const fg_tensor *w, fg_tensor *dx, int accumulate,
                                    fg_workspace ws);
  /* dw := sum over the batch; dbias := sum of dy over N,H,W (when not NULL). */
  fg_status (*conv2d_backward_filter)(fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                      const fg_tensor *dy, fg_tensor *dw, fg_tensor *dbias,
                                      fg_workspace ws);

  /* Linear. x [N,I], w [O,I], bias [O] or NULL, y [N,O]. */
  fg_status (*linear_forward)(fg_backend *b, const fg_tensor *x, const fg_tensor *w,
                              const fg_tensor *bias, fg_tensor *y);
  fg_status (*linear_backward_data)(fg_backend *b, const fg_tensor *dy, const fg_tensor *w,
                                    fg_tensor *dx, int accumulate);
  /* dw := dy^T x, dbias := column sums of dy (each when not NULL). */
  fg_status (*linear_backward_params)(fg_backend *b, const fg_tensor *x, const fg_tensor *dy,
                                      fg_tensor *dw, fg_tensor *dbias);

  /* Batch norm over N,H,W per channel. x, y [N,C,H,W] or [N,C]; gamma, beta, mean, invstd,
   * running_* [C]. Train: normalise with the biased batch variance; save mean and 1/sqrt(var +
   * eps); when running_mean is not NULL update running_mean/var with `momentum`, running_var with
   * the unbiased variance. */
  fg_status (*bn_forward_train)(fg_backend *b, const fg_tensor *x, const fg_tensor *gamma,
                                const fg_tensor *beta, fg_tensor *y, fg_tensor *save_mean,
                                fg_tensor *save_invstd, fg_tensor *running_mean,
                                fg_tensor *running_var, float momentum, float eps);
  fg_status (*bn_forward_eval)(fg_backend *b, const fg_tensor *x, const fg_tensor *gamma,
                               const fg_tensor *beta, const fg_tensor *running_mean,
                               const fg_tensor *running_var, float eps, fg_tensor *y);
  /* Backward of the training-mode forward. dx (=|+=), dgamma := , dbeta := ; each may be NULL. */
  fg_status (*bn_backward)(fg_backend *b, const fg_tensor *dy, const fg_tensor *x,
                           const fg_tensor *gamma, const fg_tensor *save_mean,
                           const fg_tensor *save_invstd, fg_tensor *dx, fg_tensor *dgamma,
                           fg_tensor *dbeta, int accumulate);

  /* Elementwise, any shape; numel must agree. In-place (x == y) is allowed where noted. */
  fg_status (*relu_forward)(fg_backend *b, const fg_tensor *x, fg_tensor *y);      /* in-place ok */
  /* dx (=|+=) dy * (y > 0), from the forward output y. dx == dy allowed when !accumulate. */
  fg_status (*relu_backward)(fg_backend *b, const fg_tensor *y, const fg_tensor *dy, fg_tensor *dx,
                             int accumulate);
  fg_status (*add)(fg_backend *b, const fg_tensor *x1, const fg_tensor *x2, fg_tensor *y); /* in-place ok */
  fg_status (*axpy)(fg_backend *b, float alpha, const fg_tensor *x, fg_tensor *y);      /* y += alpha x */
  fg_status (*scale)(fg_backend *b, float alpha, const fg_tensor *x, fg_tensor *y);     /* in-place ok */
  fg_status (*copy_tensor)(fg_backend *b, const fg_tensor *x, fg_tensor *y);
  fg_status (*fill)(fg_backend *b, fg_tensor *y, float value);
  /* Inverted dropout: keep_i = uniform_at(key, i) >= p; y_i = keep_i ? x_i / (1 - p) : 0. The
   * mask is recomputed from the key in backward, so nothing is stored. */
  fg_status (*dropout_forward)(fg_backend *b, const fg_tensor *x, fg_tensor *y, float p,
                               uint64_t key);
  fg_status (*dropout_backward)(fg_backend *b, const fg_tensor *dy, fg_tensor *dx, float p,
                                uint64_t key, int accumulate);
  /* Logistic sigmoid y = 1 / (1 + exp(-x)) (0 for x below about -88, 1 above about 17). */
  fg_status (*sigmoid_forward)(fg_backend *b, const fg_tensor *x, fg_tensor *y); /* in-place ok */
  /* dx (=|+=) dy * (y (1 - y)), from the forward output y. dx == dy allowed when !accumulate. */
  fg_status (*sigmoid_backward)(fg_backend *b, const fg_tensor *y, const fg_tensor *dy,
                                fg_tensor *dx, int accumulate);
  /* y (=|+=) x1 * x2. Also the product's backward, once per input: dx1 (=|+=) dy * x2 and
   * dx2 (=|+=) dy * x1. y may be x1 or x2 when !accumulate. */
  fg_status (*mul)(fg_backend *b, const fg_tensor *x1, const fg_tensor *x2, fg_tensor *y,
                   int accumulate);

  /* Pooling. Max pool: x [N,C,H,W], y [N,C,Ho,Wo], argmax u8 [N,C,Ho,Wo] (position in the
   * window, row-major; ties go to the first) or NULL; padding never wins. */
  fg_status (*maxpool_forward)(fg_backend *b, const fg_pool_desc *d, const fg_tensor *x,
                               fg_tensor *y, fg_tensor *argmax);
  /* argmax entries outside the window (or pointing into the padding) are counted in `bad`. */
  fg_status (*maxpool_backward)(fg_backend *b, const fg_pool_desc *d, const fg_tensor *dy,
                                const fg_tensor *argmax, fg_tensor *dx, int accumulate,
                                fg_index_report *bad);
  /* Global average pool: x [N,C,H,W] -> y [N,C]. */
  fg_status (*avgpool_global_forward)(fg_backend *b, const fg_tensor *x, fg_tensor *y);
  fg_status (*avgpool_global_backward)(fg_backend *b, const fg_tensor *dy, fg_tensor *dx,
                                       int accumulate);
  /* Bilinear upsampling by 2 with align_corners false (PyTorch's nn.Upsample(scale_factor=2,
   * mode='bilinear')): x [N,C,H,W] -> y [N,C,Ho,Wo], Ho in {2H - 1, 2H}, Wo in {2W - 1, 2W} (an
   * odd extent drops the 2H map's last row or column: a crop, the coordinates being those of
   * scale 2 whatever the output extent). Along each axis of input extent H, output o
   * reads s = max(0, (o + 0.5) / 2 - 0.5), i0 = floor(s), i1 = min(i0 + 1, H - 1), with weights
   * 1 - (s - i0) and s - i0 (0, 0.25 or 0.75: exact); y = wy0 (wx0 x[i0,j0] + wx1 x[i0,j1]) +
   * wy1 (wx0 x[i1,j0] + wx1 x[i1,j1]) in that order (cuda/math/upsample.h). */
  fg_status (*upsample2x_bilinear_forward)(fg_backend *b, const fg_tensor *x, fg_tensor *y);
  /* Its transpose: dy [N,C,Ho,Wo] -> dx [N,C,H,W] (=|+=), each dx element gathered from the
   * (at most 4 x 4) outputs that read it in a fixed order (deterministic, no atomics). */
  fg_status (*upsample2x_bilinear_backward)(fg_backend *b, const fg_tensor *dy, fg_tensor *dx,
                                            int accumulate);

  /* Losses; the scalar comes back on the host. logits [N,K], labels i32 [N] in [0,K).
   * class_mask f32 [K] of 0/1 or NULL: masked logits are replaced by 0 (PyTorch's
   * masked_fill(mask == 0, 0), HeteroFL's label split) and get no gradient.
   * loss = weight * mean_n CE; dlogits (=|+=) its gradient when not NULL; correct (when not NULL)
   * = number of rows whose first argmax (of the masked logits) equals the label. Labels outside
   * [0, K) are counted in `bad`. */
  fg_status (*softmax_xent)(fg_backend *b, const fg_tensor *logits, const fg_tensor *labels,
                            const fg_tensor *class_mask, float weight, fg_tensor *dlogits,
                            int accumulate, double *loss, int64_t *correct, fg_index_report *bad);
  /* student, teacher [N,K]; dstudent / dteacher (=|+=) when not NULL (NULL = detached). */
  fg_status (*kl_div)(fg_backend *b, const fg_kl_desc *d, const fg_tensor *student,
                      const fg_tensor *teacher, fg_tensor *dstudent, fg_tensor *dteacher,
                      int accumulate, double *loss);
  /* loss = weight * mean((y - target)^2); dy (=|+=) 2 weight (y - target) / numel. */
  fg_status (*mse)(fg_backend *b, const fg_tensor *y, const fg_tensor *target, float weight,
                   fg_tensor *dy, int accumulate, double *loss);

  /* nHSIC of z [m, ...] (rows flattened, d_z values each) against a constant target: x
   * [m, ...] (rows flattened), or when x is NULL one-hot labels (labels i32 [m] in
   * [0, d->classes), d = classes). value := nHSIC (0 when a centred kernel vanishes, e.g. all
   * rows equal); dz (=|+=) weight * d nHSIC / dz when not NULL. ws: nhsic_workspace(m) bytes.
   * Labels outside [0, classes) are counted in `bad`. */
  fg_status (*nhsic_workspace)(fg_backend *b, int64_t m, size_t *bytes);
  fg_status (*nhsic)(fg_backend *b, const fg_nhsic_desc *d, const fg_tensor *z, const fg_tensor *x,
                     const fg_tensor *labels, float weight, fg_tensor *dz, int accumulate,
                     fg_workspace ws, double *value, fg_index_report *bad);

  /* Optimizers: one step over a group of parameter tensors, each updated as the hyper-parameters
   * define (the result is the same as updating them one at a time, in any order). */
  fg_status (*sgd_step)(fg_backend *b, const fg_sgd_hparams *h, const fg_param_group *g);
  fg_status (*adam_step)(fg_backend *b, const fg_adam_hparams *h, int64_t step, const fg_param_group *g);

  /* Reductions. */
  fg_status (*sum_squares)(fg_backend *b, const fg_tensor *x, double *out);

  /* Linear algebra (optional: used by methods on the server, never by training).
   * Thin SVD a = u diag(s) vt of a [m,n], k = min(m,n): u [m,k], s [k] descending and >= 0,
   * vt [k,n]; a is not modified. Sign rule: each component i (column u_i, row vt_i) is negated
   * jointly, if needed, so that the entry of largest magnitude of vt_i is positive (on equal
   * magnitudes the first, lowest column index, counts). svd_workspace: the bytes of `ws` svd
   * needs for [m,n] (m, n >= 1). */
  fg_status (*svd_workspace)(fg_backend *b, int64_t m, int64_t n, size_t *bytes);
  fg_status (*svd)(fg_backend *b, const fg_tensor *a, fg_tensor *u, fg_tensor *s, fg_tensor *vt,
                   fg_workspace ws);
};

/* ----------------------------------------------------------------------------------------- */
/* Registry: one backend per device kind, filled by explicit registration calls at start-up
 * (cpu/cpu_backend.h, cuda/cuda_backend.h). */

fg_status fg_backend_register(fg_backend *b);
/* The backend of `device`, or NULL with FG_ERR_NO_DEVICE recorded (naming the reason). */
fg_backend *fg_backend_for(fg_device device);
/* The registered backend of a kind, available or not; NULL when never registered. */
fg_backend *fg_backend_registered(fg_device_kind kind);
/* Forget all registrations (tests). Does not free backends. */
void fg_backend_registry_clear(void);

#endif
