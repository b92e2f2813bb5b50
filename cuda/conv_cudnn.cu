// CUDA ops: 2-D convolutions through cuDNN's legacy convolution API, present in cuDNN 8.2 (JetPack
// 4.6) and, deprecated, in 9.x. The only file of the backend that talks to cuDNN.
//
// Per shape (N, C, H, W, O, kh, kw, stride, pad, groups) a cache entry holds the descriptors
// (NCHW float tensors and filter; pad and stride, dilation 1, cross-correlation as PyTorch, float
// compute, the group count, CUDNN_FMA_MATH so no TF32 tensor-core kernel is used) and, for each of
// the three directions, the algorithm chosen from cudnnGetConvolution*Algorithm_v7's heuristic
// results (the library's expected-performance order): the first whose status is
// CUDNN_STATUS_SUCCESS, which is CUDNN_DETERMINISTIC, which uses FMA math, which is not passed over
// by name (below) and whose workspace is within fg_cuda_conv_workspace_limit. The Find variants
// are never used: they need real buffers, overwrite outputs, and their choice depends on timing.
// The first call with a shape fills its entry (at plan time, through the supports hook); the
// entries live until fg_cuda_conv_release.
//
// Workspace: no allocation here. conv2d_workspace reports the largest of the three chosen
// algorithms' workspaces plus FG_CUDA_CONV_WORKSPACE_ALIGN bytes, and each op hands cuDNN the
// `ws` it receives rounded up to that alignment.
//
// Bias: the forward fills y with the bias and cuDNN adds the convolution onto it (beta 1), the CPU
// backend's order; the bias gradient is our own kernel, one block per channel summing in double
// and combining with the fixed tree of cuda/reduce.cuh (arithmetic in cuda/math/linear.h).
//
// Empty extents (N, C, H, W or O = 0) never reach cuDNN, which rejects zero-sized descriptors: the
// ops write what the CPU backend writes (y := bias or 0, dx := 0 unless accumulating, dw := 0).
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.h"
#include "cuda/math/linear.h"
#include "cuda/reduce.cuh"

extern "C" {
#include "engine/backend/ops.h"
}

// Everything below exists from cuDNN 8.0 (CUDNN_FMA_MATH is the newest name used) through 9.x,
// where the legacy convolution API is deprecated but present.
#if CUDNN_MAJOR < 8
#error "the CUDA convolution ops need cuDNN 8.0 or later"
#endif

// The most workspace one direction's algorithm may use: algorithms asking for more are passed
// over (cuDNN's FFT variants can ask for GiBs on large images). The planner charges the chosen
// workspace to the ledger, so this bounds what one convolution adds to a plan.
static const size_t fg_cuda_conv_workspace_limit = (size_t)1 << 30;

enum {
  FG_CUDA_CONV_WORKSPACE_ALIGN = 256, // cuDNN's workspace pointer is rounded up to this
  FG_CUDA_CONV_MAX_ALGOS = 16,        // heuristic results asked for (cuDNN has at most 8 per direction)
  FG_CUDA_CONV_MAX_BLOCKS = 65535,    // grid cap of the per-channel kernel (it loops beyond)
};

typedef enum conv_direction { CONV_FORWARD = 0, CONV_BACKWARD_DATA, CONV_BACKWARD_FILTER, CONV_DIRECTIONS } conv_direction;

static const char *const conv_direction_names[CONV_DIRECTIONS] = {"forward", "backward-data", "backward-filter"};

static float *dev_f32(const fg_tensor *t) { return (float *)t->data; }

// ------------------------------------------------------------------------------------------- //
// The cache                                                                                    //

typedef struct conv_key {
  int64_t n, c, h, w; // the image (x or dx)
  int64_t o, kh, kw;  // the weight [O, C/groups, kh, kw]
  int stride, pad, groups;
} conv_key;

// One direction's algorithm, and why the heuristic's other results were passed over (for the
// message when none is left).
typedef struct conv_choice {
  int found;
  int algo;     // a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t value
  size_t bytes; // its workspace
  int candidates, unavailable, nondeterministic, excluded, too_large;
} conv_choice;

typedef struct conv_entry {
  conv_key key;
  int64_t ho, wo;
  int empty;                         // an extent is 0: no descriptors, the ops run without cuDNN
  cudnnTensorDescriptor_t x, y;      // [N,C,H,W] (x, dx) and [N,O,Ho,Wo] (y, dy)
  cudnnFilterDescriptor_t w;         // [O,C/groups,kh,kw] (w, dw)
  cudnnConvolutionDescriptor_t conv; // pad, stride, groups, FMA math
  conv_choice choice[CONV_DIRECTIONS];
} conv_entry;

// Entries are allocated one by one, so a pointer to one stays valid while the table grows.
// File-static as the backend's context is (one CUDA backend per process); used from the thread
// that runs the backend's ops.
static struct {
  conv_entry **entries;
  size_t count, capacity;
} conv_cache;

static conv_key key_of(const fg_conv_desc *d, const fg_tensor *img, const fg_tensor *wt) {
  conv_key k;
  memset(&k, 0, sizeof k);
  k.n = img->shape[0];
  k.c = img->shape[1];
  k.h = img->shape[2];
  k.w = img->shape[3];
  k.o = wt->shape[0];
  k.kh = wt->shape[2];
  k.kw = wt->shape[3];
  k.stride = d->stride;
  k.pad = d->pad;
  k.groups = d->groups;
  return k;
}

static int key_equal(const conv_key *a, const conv_key *b) {
  return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w && a->o == b->o && a->kh == b->kh &&
         a->kw == b->kw && a->stride == b->stride && a->pad == b->pad && a->groups == b->groups;
}

static void entry_destroy(conv_entry *e) {
  if (e->x) cudnnDestroyTensorDescriptor(e->x);
  if (e->y) cudnnDestroyTensorDescriptor(e->y);
  if (e->w) cudnnDestroyFilterDescriptor(e->w);
  if (e->conv) cudnnDestroyConvolutionDescriptor(e->conv);
  free(e);
}

void fg_cuda_conv_release(fg_backend *b) {
  (void)b;
  for (size_t i = 0; i < conv_cache.count; i++) entry_destroy(conv_cache.entries[i]);
  free(conv_cache.entries);
  conv_cache.entries = NULL;
  conv_cache.count = conv_cache.capacity = 0;
}

// The product of f[0..count) (each >= 0) is at most INT_MAX, computed without overflow.
static int product_fits_int(const int64_t *f, int count) {
  int64_t p = 1;
  for (int i = 0; i < count; i++) {
    if (f[i] == 0) return 1;
    if (p > INT_MAX / f[i]) return 0;
    p *= f[i];
  }
  return 1;
}

// cuDNN's legacy descriptors take int extents and at most INT_MAX elements per tensor.
static fg_status check_cudnn_range(const conv_key *k, int64_t ho, int64_t wo) {
  const int64_t x[4] = {k->n, k->c, k->h, k->w}, y[4] = {k->n, k->o, ho, wo};
  const int64_t w[4] = {k->o, k->c / k->groups, k->kh, k->kw};
  const int64_t *tensors[3] = {x, y, w};
  static const char *const names[3] = {"the image", "the output", "the weight"};
  for (int t = 0; t < 3; t++)
    if (!product_fits_int(tensors[t], 4))
      return FG_FAIL(FG_ERR_UNSUPPORTED, "%s [%lld, %lld, %lld, %lld] has more than %d elements, beyond cuDNN's limit",
                     names[t], (long long)tensors[t][0], (long long)tensors[t][1], (long long)tensors[t][2],
                     (long long)tensors[t][3], INT_MAX);
  return FG_OK;
}

// ------------------------------------------------------------------------------------------- //
// Algorithm choice                                                                             //

// Passed over by name whatever cuDNN reports: the algorithms cuDNN's documentation calls
// non-deterministic (atomic sums), in case a heuristic result ever mislabels one.
static int known_nondeterministic(int dir, int algo) {
  if (dir == CONV_BACKWARD_DATA) return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
  if (dir == CONV_BACKWARD_FILTER)
    return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
  return 0;
}

// Passed over for precision: the non-fused Winograd variants, which NVIDIA notes can lose
// precision (frameworks skip them too); the convolutions must meet the op suite's tolerance class.
static int excluded_for_precision(int dir, int algo) {
  switch (dir) {
    case CONV_FORWARD: return algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
    case CONV_BACKWARD_DATA: return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
    default: return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
  }
}

// The descriptor asks for FMA math; a result evaluated with tensor-op math is never taken.
static int fma_math(cudnnMathType_t m) { return m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH; }

// cuDNN's own workspace query for one algorithm of a direction (some cuDNN 8 releases reported a
// heuristic result's `memory` smaller than this; the larger of the two is used).
static cudnnStatus_t algo_workspace(const fg_cuda_ctx *c, const conv_entry *e, int dir, int algo, size_t *bytes) {
  switch (dir) {
    case CONV_FORWARD:
      return cudnnGetConvolutionForwardWorkspaceSize(c->cudnn, e->x, e->w, e->conv, e->y, (cudnnConvolutionFwdAlgo_t)algo,
                                                     bytes);
    case CONV_BACKWARD_DATA:
      return cudnnGetConvolutionBackwardDataWorkspaceSize(c->cudnn, e->w, e->y, e->conv, e->x,
                                                          (cudnnConvolutionBwdDataAlgo_t)algo, bytes);
    default:
      return cudnnGetConvolutionBackwardFilterWorkspaceSize(c->cudnn, e->x, e->y, e->conv, e->w,
                                                            (cudnnConvolutionBwdFilterAlgo_t)algo, bytes);
  }
}

// The first of the heuristic's `count` results (in its order) that passes every filter; Perf is
// one of the three cudnnConvolution*AlgoPerf_t structures.
template <typename Perf>
static void choose(const fg_cuda_ctx *c, const conv_entry *e, int dir, const Perf *perf, int count, conv_choice *ch) {
  memset(ch, 0, sizeof *ch);
  if (count > FG_CUDA_CONV_MAX_ALGOS) count = FG_CUDA_CONV_MAX_ALGOS;
  ch->candidates = count;
  for (int i = 0; i < count; i++) {
    const int algo = (int)perf[i].algo;
    if (perf[i].status != CUDNN_STATUS_SUCCESS) {
      ch->unavailable++;
      continue;
    }
    if (perf[i].determinism != CUDNN_DETERMINISTIC || known_nondeterministic(dir, algo)) {
      ch->nondeterministic++;
      continue;
    }
    if (!fma_math(perf[i].mathType) || excluded_for_precision(dir, algo)) {
      ch->excluded++;
      continue;
    }
    size_t bytes = 0;
    if (algo_workspace(c, e, dir, algo, &bytes) != CUDNN_STATUS_SUCCESS) {
      ch->unavailable++;
      continue;
    }
    if (perf[i].memory > bytes) bytes = perf[i].memory;
    if (bytes > fg_cuda_conv_workspace_limit) {
      ch->too_large++;
      continue;
    }
    ch->found = 1;
    ch->algo = algo;
    ch->bytes = bytes;
    return;
  }
}

static fg_status choose_all(const fg_cuda_ctx *c, conv_entry *e) {
  int count = 0;
  {
    cudnnConvolutionFwdAlgoPerf_t perf[FG_CUDA_CONV_MAX_ALGOS];
    FG_CUDNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(c->cudnn, e->x, e->w, e->conv, e->y, FG_CUDA_CONV_MAX_ALGOS,
                                                        &count, perf));
    choose(c, e, CONV_FORWARD, perf, count, &e->choice[CONV_FORWARD]);
  }
  {
    cudnnConvolutionBwdDataAlgoPerf_t perf[FG_CUDA_CONV_MAX_ALGOS];
    FG_CUDNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(c->cudnn, e->w, e->y, e->conv, e->x,
                                                             FG_CUDA_CONV_MAX_ALGOS, &count, perf));
    choose(c, e, CONV_BACKWARD_DATA, perf, count, &e->choice[CONV_BACKWARD_DATA]);
  }
  {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[FG_CUDA_CONV_MAX_ALGOS];
    FG_CUDNN_TRY(cudnnGetConvolutionBackwardFilterAlgorithm_v7(c->cudnn, e->x, e->y, e->conv, e->w,
                                                               FG_CUDA_CONV_MAX_ALGOS, &count, perf));
    choose(c, e, CONV_BACKWARD_FILTER, perf, count, &e->choice[CONV_BACKWARD_FILTER]);
  }
  return FG_OK;
}

// Descriptors for e->key (every extent >= 1, within cuDNN's range), checked against cuDNN's own
// output extents, then the three algorithms. On failure the caller destroys what was made.
static fg_status entry_build(const fg_cuda_ctx *c, conv_entry *e) {
  const conv_key *k = &e->key;
  FG_CUDNN_TRY(cudnnCreateTensorDescriptor(&e->x));
  FG_CUDNN_TRY(cudnnSetTensor4dDescriptor(e->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)k->n, (int)k->c, (int)k->h,
                                          (int)k->w));
  FG_CUDNN_TRY(cudnnCreateFilterDescriptor(&e->w));
  FG_CUDNN_TRY(cudnnSetFilter4dDescriptor(e->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)k->o,
                                          (int)(k->c / k->groups), (int)k->kh, (int)k->kw));
  FG_CUDNN_TRY(cudnnCreateConvolutionDescriptor(&e->conv));
  FG_CUDNN_TRY(cudnnSetConvolution2dDescriptor(e->conv, k->pad, k->pad, k->stride, k->stride, 1, 1,
                                               CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  FG_CUDNN_TRY(cudnnSetConvolutionGroupCount(e->conv, k->groups));
  FG_CUDNN_TRY(cudnnSetConvolutionMathType(e->conv, CUDNN_FMA_MATH));
  int on = 0, oc = 0, oh = 0, ow = 0;
  FG_CUDNN_TRY(cudnnGetConvolution2dForwardOutputDim(e->conv, e->x, e->w, &on, &oc, &oh, &ow));
  if (on != k->n || oc != k->o || oh != e->ho || ow != e->wo)
    return FG_FAIL(FG_ERR_INTERNAL, "cudnn: output extents [%d, %d, %d, %d] differ from the engine's [%lld, %lld, %lld, %lld]",
                   on, oc, oh, ow, (long long)k->n, (long long)k->o, (long long)e->ho, (long long)e->wo);
  FG_CUDNN_TRY(cudnnCreateTensorDescriptor(&e->y));
  FG_CUDNN_TRY(cudnnSetTensor4dDescriptor(e->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, on, oc, oh, ow));
  return choose_all(c, e);
}

// The entry of this convolution (img: x or dx [N,C,H,W]; wt: w or dw [O,C/groups,kh,kw]; the
// engine has checked them against each other and d), made on first use. FG_ERR_UNSUPPORTED when
// the shapes are beyond cuDNN's range.
static fg_status entry_get(const fg_cuda_ctx *c, const fg_conv_desc *d, const fg_tensor *img, const fg_tensor *wt,
                           conv_entry **out) {
  const conv_key k = key_of(d, img, wt);
  for (size_t i = 0; i < conv_cache.count; i++)
    if (key_equal(&conv_cache.entries[i]->key, &k)) {
      *out = conv_cache.entries[i];
      return FG_OK;
    }
  const int64_t ho = fg_conv_out_extent(k.h, (int)k.kh, k.stride, k.pad);
  const int64_t wo = fg_conv_out_extent(k.w, (int)k.kw, k.stride, k.pad);
  const int empty = k.n == 0 || k.c == 0 || k.h == 0 || k.w == 0 || k.o == 0;
  if (!empty) FG_TRY(check_cudnn_range(&k, ho, wo));
  if (!c->cudnn) return FG_FAIL(FG_ERR_NO_DEVICE, "cuda: no cuDNN handle (the backend is unavailable)");
  if (conv_cache.count == conv_cache.capacity) {
    const size_t capacity = conv_cache.capacity ? 2 * conv_cache.capacity : 16;
    conv_entry **grown = (conv_entry **)realloc(conv_cache.entries, capacity * sizeof *grown);
    if (!grown) return FG_FAIL(FG_ERR_OOM, "cuda: no host memory for %zu convolution cache entries", capacity);
    conv_cache.entries = grown;
    conv_cache.capacity = capacity;
  }
  conv_entry *e = (conv_entry *)calloc(1, sizeof *e);
  if (!e) return FG_FAIL(FG_ERR_OOM, "cuda: no host memory for a convolution cache entry");
  e->key = k;
  e->ho = ho;
  e->wo = wo;
  e->empty = empty;
  if (empty) {
    for (int dir = 0; dir < CONV_DIRECTIONS; dir++) e->choice[dir].found = 1; // no algorithm, no workspace
  } else {
    const fg_status s = entry_build(c, e);
    if (s != FG_OK) {
      entry_destroy(e);
      return s;
    }
  }
  conv_cache.entries[conv_cache.count++] = e;
  *out = e;
  return FG_OK;
}

// FG_OK when direction `dir` of e has an algorithm (or needs none), else FG_ERR_UNSUPPORTED saying
// why (the engine prefixes the op and the shapes).
static fg_status require(const conv_entry *e, int dir) {
  const conv_choice *ch = &e->choice[dir];
  if (ch->found) return FG_OK;
  return FG_FAIL(FG_ERR_UNSUPPORTED,
                 "no deterministic cuDNN %s algorithm for this convolution (stride %d, pad %d, groups %d) within "
                 "the %zu MiB workspace limit: of %d candidates %d unavailable, %d non-deterministic, %d excluded "
                 "(tensor-op math or non-fused Winograd), %d over the limit",
                 conv_direction_names[dir], e->key.stride, e->key.pad, e->key.groups,
                 fg_cuda_conv_workspace_limit >> 20, ch->candidates, ch->unavailable, ch->nondeterministic, ch->excluded,
                 ch->too_large);
}

static int direction_of(fg_op op) {
  switch (op) {
    case FG_OP_CONV2D_FORWARD: return CONV_FORWARD;
    case FG_OP_CONV2D_BACKWARD_DATA: return CONV_BACKWARD_DATA;
    case FG_OP_CONV2D_BACKWARD_FILTER: return CONV_BACKWARD_FILTER;
    default: return -1;
  }
}

// Plan time: q->t[0] is x or dx [N,C,H,W], q->t[1] w or dw (shape descriptors), q->conv set. Each
// direction is judged on its own, so an evaluation-only plan does not need the backward ones.
// Without a device (no cuDNN handle) only the range is checked: nothing can run there anyway.
fg_status fg_cuda_conv_supports(fg_backend *b, const fg_op_query *q) {
  const int dir = direction_of(q->op);
  if (dir < 0) return FG_OK;
  if (!q->conv || !q->t[0] || !q->t[1])
    return FG_FAIL(FG_ERR_INVALID, "conv2d support query: the descriptor or a shape is missing");
  const fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  if (!c->cudnn) {
    const conv_key k = key_of(q->conv, q->t[0], q->t[1]);
    const int empty = k.n == 0 || k.c == 0 || k.h == 0 || k.w == 0 || k.o == 0;
    if (empty) return FG_OK;
    return check_cudnn_range(&k, fg_conv_out_extent(k.h, (int)k.kh, k.stride, k.pad),
                             fg_conv_out_extent(k.w, (int)k.kw, k.stride, k.pad));
  }
  conv_entry *e = NULL;
  FG_TRY(entry_get(c, q->conv, q->t[0], q->t[1], &e));
  return require(e, dir);
}

// ------------------------------------------------------------------------------------------- //
// Kernels                                                                                      //

// y [N, channels, plane] := bias [channels] broadcast. One thread per element, grid-stride.
__global__ void conv_bias_fill_kernel(const float *bias, int64_t count, int64_t channels, int64_t plane, float *y) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride)
    y[i] = fg_bias_broadcast(bias, i, channels, plane);
}

// dbias [channels] := sum of dy [n, channels, plane] over n and plane. One block of
// FG_CUDA_THREADS threads per channel (grid-stride over channels): thread t sums the channel's
// positions t, t + T, ... in double, then the block's fixed tree combines the T shares. The
// partition and every addition's order depend on the shapes only.
__global__ void conv_bias_grad_kernel(const float *dy, int64_t n, int64_t channels, int64_t plane, float *dbias) {
  __shared__ double shared[FG_CUDA_THREADS];
  for (int64_t ch = blockIdx.x; ch < channels; ch += gridDim.x) {
    const double share = fg_bias_grad_partial(dy, n, channels, plane, ch, threadIdx.x, FG_CUDA_THREADS);
    const double sum = fg_block_sum(share, shared);
    if (threadIdx.x == 0) dbias[ch] = (float)sum;
  }
}

// y [N, channels, plane] (count elements >= 1) := bias broadcast.
static fg_status bias_fill(fg_cuda_ctx *c, const float *bias, int64_t count, int64_t channels, int64_t plane,
                           float *y) {
  conv_bias_fill_kernel<<<fg_cuda_blocks(count, FG_CUDA_THREADS), FG_CUDA_THREADS, 0, c->stream>>>(bias, count,
                                                                                                    channels, plane, y);
  FG_CUDA_LAUNCHED(c, "conv_bias_fill_kernel");
  return FG_OK;
}

// dbias [channels] (channels >= 1) := sums of dy [n, channels, plane] (zeros when n * plane is 0).
static fg_status bias_grad(fg_cuda_ctx *c, const float *dy, int64_t n, int64_t channels, int64_t plane,
                           float *dbias) {
  const int64_t most = FG_CUDA_CONV_MAX_BLOCKS;
  const unsigned blocks = (unsigned)(channels < most ? channels : most);
  conv_bias_grad_kernel<<<blocks, FG_CUDA_THREADS, 0, c->stream>>>(dy, n, channels, plane, dbias);
  FG_CUDA_LAUNCHED(c, "conv_bias_grad_kernel");
  return FG_OK;
}

// count floats at p := 0 (on the stream).
static fg_status zero(fg_cuda_ctx *c, float *p, int64_t count) {
  if (count > 0) FG_CUDA_TRY(cudaMemsetAsync(p, 0, (size_t)count * sizeof(float), c->stream));
  return FG_OK;
}

// ------------------------------------------------------------------------------------------- //
// Ops                                                                                          //

// cuDNN's workspace for direction `dir` of e: ws rounded up to FG_CUDA_CONV_WORKSPACE_ALIGN, and
// exactly the chosen algorithm's bytes (NULL, 0 when it needs none).
static fg_status cudnn_workspace(const conv_entry *e, int dir, fg_workspace ws, void **ptr, size_t *bytes) {
  const size_t need = e->choice[dir].bytes;
  *ptr = NULL;
  *bytes = 0;
  if (need == 0) return FG_OK;
  const uintptr_t p = (uintptr_t)ws.ptr;
  const uintptr_t aligned = (p + FG_CUDA_CONV_WORKSPACE_ALIGN - 1) / FG_CUDA_CONV_WORKSPACE_ALIGN *
                            FG_CUDA_CONV_WORKSPACE_ALIGN;
  const size_t lost = (size_t)(aligned - p);
  if (!ws.ptr || ws.bytes < lost || ws.bytes - lost < need)
    return FG_FAIL(FG_ERR_INVALID, "conv2d %s: workspace of %zu bytes at %p holds less than the %zu bytes cuDNN needs at %d-byte alignment",
                   conv_direction_names[dir], ws.bytes, ws.ptr, need, (int)FG_CUDA_CONV_WORKSPACE_ALIGN);
  *ptr = (void *)aligned;
  *bytes = need;
  return FG_OK;
}

// x [N,C,H,W], w [O,C/g,kh,kw] -> bytes: the largest of the three chosen algorithms' workspaces
// plus the alignment slack (0 when none needs any). The choice does not depend on `limit`: it is
// cached per shape, made under fg_cuda_conv_workspace_limit.
static fg_status cuda_conv2d_workspace(fg_backend *b, const fg_conv_desc *d, const fg_tensor *x, const fg_tensor *w,
                                       size_t limit, size_t *bytes) {
  (void)limit;
  conv_entry *e = NULL;
  FG_TRY(entry_get(fg_cuda_ctx_of(b), d, x, w, &e));
  size_t most = 0;
  for (int dir = 0; dir < CONV_DIRECTIONS; dir++)
    if (e->choice[dir].found && e->choice[dir].bytes > most) most = e->choice[dir].bytes;
  *bytes = most > 0 ? most + FG_CUDA_CONV_WORKSPACE_ALIGN : 0;
  return FG_OK;
}

// x [N,C,H,W], w [O,C/g,kh,kw], bias [O] | NULL -> y [N,O,Ho,Wo] := conv(x, w) (+ bias).
static fg_status cuda_conv2d_forward(fg_backend *b, const fg_conv_desc *d, const fg_tensor *x, const fg_tensor *w,
                                     const fg_tensor *bias, fg_tensor *y, fg_workspace ws) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  conv_entry *e = NULL;
  FG_TRY(entry_get(c, d, x, w, &e));
  FG_TRY(require(e, CONV_FORWARD));
  const int64_t n = e->key.n, o = e->key.o, plane = e->ho * e->wo, count = n * o * plane;
  if (count == 0) return FG_OK;
  float beta = 0.0f;
  if (bias) {
    FG_TRY(bias_fill(c, dev_f32(bias), count, o, plane, dev_f32(y)));
    beta = 1.0f;
  } else if (e->empty) {
    FG_TRY(zero(c, dev_f32(y), count)); // C, H or W is 0: every output sees only zeros
  }
  if (e->empty) return FG_OK;
  void *wsp = NULL;
  size_t wsb = 0;
  FG_TRY(cudnn_workspace(e, CONV_FORWARD, ws, &wsp, &wsb));
  const float alpha = 1.0f;
  FG_CUDNN_TRY(cudnnConvolutionForward(c->cudnn, &alpha, e->x, x->data, e->w, w->data, e->conv,
                                       (cudnnConvolutionFwdAlgo_t)e->choice[CONV_FORWARD].algo, wsp, wsb, &beta, e->y,
                                       y->data));
  return FG_OK;
}

// dy [N,O,Ho,Wo], w [O,C/g,kh,kw] -> dx [N,C,H,W] (=|+=) conv_transpose(dy, w); beta 1 accumulates.
static fg_status cuda_conv2d_backward_data(fg_backend *b, const fg_conv_desc *d, const fg_tensor *dy,
                                           const fg_tensor *w, fg_tensor *dx, int accumulate, fg_workspace ws) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  conv_entry *e = NULL;
  FG_TRY(entry_get(c, d, dx, w, &e));
  FG_TRY(require(e, CONV_BACKWARD_DATA));
  const int64_t count = e->key.n * e->key.c * e->key.h * e->key.w;
  if (count == 0) return FG_OK;
  if (e->empty) return accumulate ? FG_OK : zero(c, dev_f32(dx), count); // O = 0: no gradient flows
  void *wsp = NULL;
  size_t wsb = 0;
  FG_TRY(cudnn_workspace(e, CONV_BACKWARD_DATA, ws, &wsp, &wsb));
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  FG_CUDNN_TRY(cudnnConvolutionBackwardData(c->cudnn, &alpha, e->w, w->data, e->y, dy->data, e->conv,
                                            (cudnnConvolutionBwdDataAlgo_t)e->choice[CONV_BACKWARD_DATA].algo, wsp, wsb,
                                            &beta, e->x, dx->data));
  return FG_OK;
}

// x [N,C,H,W], dy [N,O,Ho,Wo] -> dw [O,C/g,kh,kw] := sum over the batch, dbias [O] := sum of dy
// over N, Ho, Wo (when not NULL).
static fg_status cuda_conv2d_backward_filter(fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                             const fg_tensor *dy, fg_tensor *dw, fg_tensor *dbias, fg_workspace ws) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  conv_entry *e = NULL;
  FG_TRY(entry_get(c, d, x, dw, &e));
  FG_TRY(require(e, CONV_BACKWARD_FILTER));
  const conv_key *k = &e->key;
  const int64_t count = k->o * (k->c / k->groups) * k->kh * k->kw;
  if (e->empty) {
    FG_TRY(zero(c, dev_f32(dw), count)); // N, C, H or W is 0: nothing but zeros meets the weights
  } else {
    void *wsp = NULL;
    size_t wsb = 0;
    FG_TRY(cudnn_workspace(e, CONV_BACKWARD_FILTER, ws, &wsp, &wsb));
    const float alpha = 1.0f, beta = 0.0f;
    FG_CUDNN_TRY(cudnnConvolutionBackwardFilter(c->cudnn, &alpha, e->x, x->data, e->y, dy->data, e->conv,
                                                (cudnnConvolutionBwdFilterAlgo_t)e->choice[CONV_BACKWARD_FILTER].algo,
                                                wsp, wsb, &beta, e->w, dw->data));
  }
  if (dbias && k->o > 0) FG_TRY(bias_grad(c, dev_f32(dy), k->n, k->o, e->ho * e->wo, dev_f32(dbias)));
  return FG_OK;
}

void fg_cuda_register_conv_ops(fg_backend *b) {
  b->conv2d_workspace = cuda_conv2d_workspace;
  b->conv2d_forward = cuda_conv2d_forward;
  b->conv2d_backward_data = cuda_conv2d_backward_data;
  b->conv2d_backward_filter = cuda_conv2d_backward_filter;
}
