/* Graph construction, shape inference and state initialisation. */
#include "engine/nn/graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/ops.h"
#include "engine/base/rng.h"

struct fg_graph {
  fg_node *nodes;
  int n_nodes, cap_nodes;
  fg_param *params;
  int n_params, cap_params;
  int outputs[16];
  int n_outputs;
  int features[8];
  int n_features;
  int64_t state_numel;
  int segment, block;
  fg_status status;
};

/* ------------------------------------------------------------------------------------------ */
/* Creation                                                                                    */

static int fail(fg_graph *g, fg_status s) {
  if (g->status == FG_OK) g->status = s;
  return -1;
}

static int grow(void **buf, int *cap, int need, size_t elem) {
  if (need <= *cap) return 1;
  int ncap = *cap ? *cap * 2 : 32;
  while (ncap < need) ncap *= 2;
  void *p = realloc(*buf, (size_t)ncap * elem);
  if (!p) return 0;
  memset((char *)p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
  *buf = p;
  *cap = ncap;
  return 1;
}

fg_graph *fg_graph_create(int64_t c, int64_t h, int64_t w) {
  fg_graph *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  if (c <= 0 || h <= 0 || w <= 0) {
    g->status = FG_FAIL(FG_ERR_INVALID, "model input %lldx%lldx%lld: every extent must be positive",
                        (long long)c, (long long)h, (long long)w);
  }
  if (!grow((void **)&g->nodes, &g->cap_nodes, 1, sizeof(fg_node))) {
    free(g);
    return NULL;
  }
  fg_node *in = &g->nodes[0];
  in->kind = FG_NODE_INPUT;
  snprintf(in->name, sizeof in->name, "input");
  in->ndim = 3;
  in->shape[0] = c;
  in->shape[1] = h;
  in->shape[2] = w;
  in->output = -1;
  g->n_nodes = 1;
  return g;
}

void fg_graph_free(fg_graph *g) {
  if (!g) return;
  free(g->nodes);
  free(g->params);
  free(g);
}

fg_status fg_graph_status(const fg_graph *g) { return g->status; }
void fg_graph_set_segment(fg_graph *g, int segment) { g->segment = segment; }
void fg_graph_set_block(fg_graph *g, int block) { g->block = block; }

/* Appends a node reading `in` (and `in2` when >= 0); returns its index or -1. */
static int add_node(fg_graph *g, fg_node_kind kind, int in, int in2, const char *name) {
  if (g->status != FG_OK) return -1;
  if (in < 0 || in >= g->n_nodes || in2 >= g->n_nodes)
    return fail(g, FG_FAIL(FG_ERR_INVALID, "graph: node '%s' reads a missing node", name));
  if (!grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof(fg_node)))
    return fail(g, FG_FAIL(FG_ERR_OOM, "graph: out of memory adding node '%s'", name));
  int id = g->n_nodes++;
  fg_node *n = &g->nodes[id];
  memset(n, 0, sizeof *n);
  n->kind = kind;
  snprintf(n->name, sizeof n->name, "%s", name);
  n->in[0] = in;
  n->n_in = 1;
  if (in2 >= 0) {
    n->in[1] = in2;
    n->n_in = 2;
  }
  n->param[0] = n->param[1] = n->buffer[0] = n->buffer[1] = -1;
  n->segment = g->segment;
  n->block = g->block;
  n->output = -1;
  return id;
}

static int add_param(fg_graph *g, int node, const char *suffix, int ndim, const int64_t *shape,
                     fg_init_kind init, int64_t fan_in, int64_t fan_out, int is_buffer) {
  if (!grow((void **)&g->params, &g->cap_params, g->n_params + 1, sizeof(fg_param)))
    return fail(g, FG_FAIL(FG_ERR_OOM, "graph: out of memory adding a parameter"));
  int id = g->n_params++;
  fg_param *p = &g->params[id];
  memset(p, 0, sizeof *p);
  size_t base = strlen(g->nodes[node].name), extra = strlen(suffix);
  if (base + 1 + extra >= sizeof p->name) {
    g->n_params--;
    return fail(g, FG_FAIL(FG_ERR_INVALID, "graph: parameter name '%s.%s' is longer than %d characters",
                           g->nodes[node].name, suffix, FG_NAME_CAP - 1));
  }
  memcpy(p->name, g->nodes[node].name, base);
  p->name[base] = '.';
  memcpy(p->name + base + 1, suffix, extra + 1);
  p->ndim = ndim;
  p->numel = 1;
  for (int i = 0; i < 4; i++) {
    p->shape[i] = i < ndim ? shape[i] : 1;
    if (i < ndim) p->numel *= shape[i];
  }
  p->offset = g->state_numel;
  g->state_numel += p->numel;
  p->trainable = !is_buffer;
  p->is_buffer = is_buffer;
  p->init = init;
  p->fan_in = fan_in;
  p->fan_out = fan_out;
  p->node = node;
  return id;
}

static const fg_node *input_of(const fg_graph *g, int in) { return &g->nodes[in]; }

static int need_image(fg_graph *g, int in, const char *name) {
  if (g->status != FG_OK) return 0;
  if (in < 0 || in >= g->n_nodes) {
    fail(g, FG_FAIL(FG_ERR_INVALID, "graph: node '%s' reads a missing node", name));
    return 0;
  }
  if (input_of(g, in)->ndim != 3) {
    fail(g, FG_FAIL(FG_ERR_SHAPE, "graph: '%s' needs a C x H x W input, '%s' is flat", name,
                    input_of(g, in)->name));
    return 0;
  }
  return 1;
}

int fg_graph_conv(fg_graph *g, int in, int64_t out_c, int kernel, int stride, int pad, int groups,
                  int bias, fg_init_kind weight_init, const char *name) {
  if (!need_image(g, in, name)) return -1;
  const fg_node *x = input_of(g, in);
  int64_t c = x->shape[0];
  if (out_c <= 0 || kernel <= 0 || stride <= 0 || pad < 0 || groups <= 0 || c % groups ||
      out_c % groups)
    return fail(g, FG_FAIL(FG_ERR_INVALID,
                           "graph: conv '%s': %lld -> %lld channels, kernel %d, stride %d, pad %d, "
                           "groups %d is not a valid convolution",
                           name, (long long)c, (long long)out_c, kernel, stride, pad, groups));
  int64_t ho = fg_conv_out_extent(x->shape[1], kernel, stride, pad);
  int64_t wo = fg_conv_out_extent(x->shape[2], kernel, stride, pad);
  if (ho <= 0 || wo <= 0)
    return fail(g, FG_FAIL(FG_ERR_SHAPE, "graph: conv '%s': kernel %d does not fit a %lldx%lld input",
                           name, kernel, (long long)x->shape[1], (long long)x->shape[2]));
  int id = add_node(g, FG_NODE_CONV, in, -1, name);
  if (id < 0) return -1;
  fg_node *n = &g->nodes[id];
  n->ndim = 3;
  n->shape[0] = out_c;
  n->shape[1] = ho;
  n->shape[2] = wo;
  n->conv.stride = stride;
  n->conv.pad = pad;
  n->conv.groups = groups;
  int64_t wshape[4] = {out_c, c / groups, kernel, kernel};
  /* PyTorch's fans: fan_in = (C/groups) k k, fan_out = O k k. */
  int64_t fan_in = (c / groups) * kernel * kernel, fan_out = out_c * kernel * kernel;
  n->param[0] = add_param(g, id, "weight", 4, wshape, weight_init, fan_in, fan_out, 0);
  n->n_param = 1;
  if (bias) {
    n->param[1] = add_param(g, id, "bias", 1, &out_c, FG_INIT_UNIFORM_FAN_IN, fan_in, fan_out, 0);
    n->n_param = 2;
  }
  return g->status == FG_OK ? id : -1;
}

int fg_graph_bn(fg_graph *g, int in, const char *name) {
  int id = add_node(g, FG_NODE_BN, in, -1, name);
  if (id < 0) return -1;
  fg_node *n = &g->nodes[id];
  const fg_node *x = input_of(g, in);
  n->ndim = x->ndim;
  memcpy(n->shape, x->shape, sizeof n->shape);
  n->bn_momentum = 0.1f;
  n->bn_eps = 1e-5f;
  int64_t c = x->shape[0];
  n->param[0] = add_param(g, id, "weight", 1, &c, FG_INIT_ONE, 0, 0, 0);
  n->param[1] = add_param(g, id, "bias", 1, &c, FG_INIT_ZERO, 0, 0, 0);
  n->n_param = 2;
  n->buffer[0] = add_param(g, id, "running_mean", 1, &c, FG_INIT_ZERO, 0, 0, 1);
  n->buffer[1] = add_param(g, id, "running_var", 1, &c, FG_INIT_ONE, 0, 0, 1);
  n->n_buffer = 2;
  return g->status == FG_OK ? id : -1;
}

/* A node whose output has its input's shape. */
static int same_shape_node(fg_graph *g, fg_node_kind kind, int in, int in2, const char *name) {
  int id = add_node(g, kind, in, in2, name);
  if (id < 0) return -1;
  fg_node *n = &g->nodes[id];
  const fg_node *x = input_of(g, in);
  n->ndim = x->ndim;
  memcpy(n->shape, x->shape, sizeof n->shape);
  return id;
}

int fg_graph_relu(fg_graph *g, int in, const char *name) {
  return same_shape_node(g, FG_NODE_RELU, in, -1, name);
}

int fg_graph_maxpool(fg_graph *g, int in, int kernel, int stride, const char *name) {
  if (!need_image(g, in, name)) return -1;
  const fg_node *x = input_of(g, in);
  int64_t ho = fg_conv_out_extent(x->shape[1], kernel, stride, 0);
  int64_t wo = fg_conv_out_extent(x->shape[2], kernel, stride, 0);
  if (kernel <= 0 || stride <= 0 || kernel * kernel > 256 || ho <= 0 || wo <= 0)
    return fail(g, FG_FAIL(FG_ERR_SHAPE, "graph: max pool '%s' (kernel %d, stride %d) on %lldx%lld",
                           name, kernel, stride, (long long)x->shape[1], (long long)x->shape[2]));
  int64_t channels = x->shape[0]; /* x points into the node array, which add_node may move */
  int id = add_node(g, FG_NODE_MAXPOOL, in, -1, name);
  if (id < 0) return -1;
  fg_node *n = &g->nodes[id];
  n->ndim = 3;
  n->shape[0] = channels;
  n->shape[1] = ho;
  n->shape[2] = wo;
  n->pool.kernel = kernel;
  n->pool.stride = stride;
  n->pool.pad = 0;
  return id;
}

int fg_graph_avgpool(fg_graph *g, int in, const char *name) {
  if (!need_image(g, in, name)) return -1;
  int id = add_node(g, FG_NODE_AVGPOOL, in, -1, name);
  if (id < 0) return -1;
  fg_node *n = &g->nodes[id];
  n->ndim = 1;
  n->shape[0] = input_of(g, in)->shape[0];
  return id;
}

int fg_graph_flatten(fg_graph *g, int in, const char *name) {
  int id = add_node(g, FG_NODE_FLATTEN, in, -1, name);
  if (id < 0) return -1;
  fg_node *n = &g->nodes[id];
  n->ndim = 1;
  n->shape[0] = fg_node_numel(input_of(g, in));
  return id;
}

int fg_graph_linear(fg_graph *g, int in, int64_t out_f, int bias, const char *name) {
  if (g->status != FG_OK) return -1;
  if (in >= 0 && in < g->n_nodes && input_of(g, in)->ndim != 1)
    return fail(g, FG_FAIL(FG_ERR_SHAPE, "graph: linear '%s' needs a flat input, '%s' is C x H x W",
                           name, input_of(g, in)->name));
  if (out_f <= 0)
    return fail(g, FG_FAIL(FG_ERR_INVALID, "graph: linear '%s' with %lld outputs", name,
                           (long long)out_f));
  int id = add_node(g, FG_NODE_LINEAR, in, -1, name);
  if (id < 0) return -1;
  fg_node *n = &g->nodes[id];
  int64_t in_f = input_of(g, in)->shape[0];
  n->ndim = 1;
  n->shape[0] = out_f;
  int64_t wshape[2] = {out_f, in_f};
  n->param[0] = add_param(g, id, "weight", 2, wshape, FG_INIT_UNIFORM_FAN_IN, in_f, out_f, 0);
  n->n_param = 1;
  if (bias) {
    n->param[1] = add_param(g, id, "bias", 1, &out_f, FG_INIT_UNIFORM_FAN_IN, in_f, out_f, 0);
    n->n_param = 2;
  }
  return g->status == FG_OK ? id : -1;
}

/* A node of `kind` ("add", "mul") combining two nodes of equal shape elementwise. */
static int binary_node(fg_graph *g, fg_node_kind kind, const char *what, int a, int b, const char *name) {
  if (g->status != FG_OK) return -1;
  if (a < 0 || b < 0 || a >= g->n_nodes || b >= g->n_nodes)
    return fail(g, FG_FAIL(FG_ERR_INVALID, "graph: %s '%s' reads a missing node", what, name));
  const fg_node *x = input_of(g, a), *y = input_of(g, b);
  if (x->ndim != y->ndim || memcmp(x->shape, y->shape, sizeof x->shape) != 0)
    return fail(g, FG_FAIL(FG_ERR_SHAPE, "graph: %s '%s': '%s' and '%s' differ in shape", what, name,
                           x->name, y->name));
  return same_shape_node(g, kind, a, b, name);
}

int fg_graph_add(fg_graph *g, int a, int b, const char *name) {
  return binary_node(g, FG_NODE_ADD, "add", a, b, name);
}

int fg_graph_mul(fg_graph *g, int a, int b, const char *name) {
  return binary_node(g, FG_NODE_MUL, "mul", a, b, name);
}

int fg_graph_sigmoid(fg_graph *g, int in, const char *name) {
  return same_shape_node(g, FG_NODE_SIGMOID, in, -1, name);
}

int fg_graph_upsample2x_bilinear(fg_graph *g, int in, int64_t h, int64_t w, const char *name) {
  if (!need_image(g, in, name)) return -1;
  const fg_node *x = input_of(g, in);
  int64_t c = x->shape[0], xh = x->shape[1], xw = x->shape[2];
  if ((h != 2 * xh && h != 2 * xh - 1) || (w != 2 * xw && w != 2 * xw - 1))
    return fail(g, FG_FAIL(FG_ERR_SHAPE, "graph: upsample '%s' of a %lldx%lld map to %lldx%lld, expected %lld or %lld "
                           "by %lld or %lld", name, (long long)xh, (long long)xw, (long long)h, (long long)w,
                           (long long)(2 * xh - 1), (long long)(2 * xh), (long long)(2 * xw - 1), (long long)(2 * xw)));
  int id = add_node(g, FG_NODE_UPSAMPLE2X, in, -1, name);
  if (id < 0) return -1;
  fg_node *n = &g->nodes[id];
  n->ndim = 3;
  n->shape[0] = c;
  n->shape[1] = h;
  n->shape[2] = w;
  return id;
}

int fg_graph_dropout(fg_graph *g, int in, float p, const char *name) {
  if (g->status != FG_OK) return -1;
  if (!(p >= 0.0f && p < 1.0f))
    return fail(g, FG_FAIL(FG_ERR_INVALID, "graph: dropout '%s' with p = %g, expected 0 <= p < 1",
                           name, (double)p));
  int id = same_shape_node(g, FG_NODE_DROPOUT, in, -1, name);
  if (id >= 0) g->nodes[id].p = p;
  return id;
}

int fg_graph_scale(fg_graph *g, int in, float alpha, int train_only, const char *name) {
  int id = same_shape_node(g, FG_NODE_SCALE, in, -1, name);
  if (id >= 0) {
    g->nodes[id].alpha = alpha;
    g->nodes[id].train_only = train_only;
  }
  return id;
}

int fg_graph_mark_output(fg_graph *g, int node) {
  if (g->status != FG_OK) return -1;
  if (node <= 0 || node >= g->n_nodes || g->nodes[node].ndim != 1)
    return fail(g, FG_FAIL(FG_ERR_INVALID, "graph: outputs must be flat logits nodes"));
  if (g->n_outputs >= (int)(sizeof g->outputs / sizeof g->outputs[0]))
    return fail(g, FG_FAIL(FG_ERR_INVALID, "graph: too many outputs"));
  g->nodes[node].output = g->n_outputs;
  g->outputs[g->n_outputs++] = node;
  return node;
}

int fg_graph_mark_feature(fg_graph *g, int node) {
  if (g->status != FG_OK) return -1;
  if (node <= 0 || node >= g->n_nodes)
    return fail(g, FG_FAIL(FG_ERR_INVALID, "graph: feature node %d does not exist", node));
  if (g->n_features >= (int)(sizeof g->features / sizeof g->features[0]))
    return fail(g, FG_FAIL(FG_ERR_INVALID, "graph: too many features"));
  g->features[g->n_features++] = node;
  return node;
}

/* ------------------------------------------------------------------------------------------ */
/* Queries                                                                                     */

int fg_graph_node_count(const fg_graph *g) { return g->n_nodes; }
const fg_node *fg_graph_node(const fg_graph *g, int i) { return &g->nodes[i]; }
fg_node *fg_graph_node_mut(fg_graph *g, int i) { return &g->nodes[i]; }
int fg_graph_output_count(const fg_graph *g) { return g->n_outputs; }
int fg_graph_output_node(const fg_graph *g, int k) { return g->outputs[k]; }
int fg_graph_feature_count(const fg_graph *g) { return g->n_features; }
int fg_graph_feature_node(const fg_graph *g, int k) { return g->features[k]; }

int64_t fg_node_numel(const fg_node *n) {
  int64_t v = 1;
  for (int i = 0; i < n->ndim; i++) v *= n->shape[i];
  return v;
}

int fg_graph_param_count(const fg_graph *g) { return g->n_params; }
const fg_param *fg_graph_param(const fg_graph *g, int i) { return &g->params[i]; }

int fg_graph_find_param(const fg_graph *g, const char *name) {
  for (int i = 0; i < g->n_params; i++)
    if (strcmp(g->params[i].name, name) == 0) return i;
  return -1;
}

int64_t fg_graph_state_numel(const fg_graph *g) { return g->state_numel; }

int64_t fg_graph_param_numel(const fg_graph *g) {
  int64_t n = 0;
  for (int i = 0; i < g->n_params; i++)
    if (!g->params[i].is_buffer) n += g->params[i].numel;
  return n;
}

int64_t fg_graph_trainable_numel(const fg_graph *g) {
  int64_t n = 0;
  for (int i = 0; i < g->n_params; i++)
    if (g->params[i].trainable) n += g->params[i].numel;
  return n;
}

int fg_graph_block_count(const fg_graph *g) {
  int m = 0;
  for (int i = 1; i < g->n_nodes; i++)
    if (g->nodes[i].block + 1 > m) m = g->nodes[i].block + 1;
  return m;
}

int fg_graph_set_trainable(fg_graph *g, const char *prefix, int trainable) {
  int changed = 0;
  size_t len = strlen(prefix);
  for (int i = 0; i < g->n_params; i++) {
    fg_param *p = &g->params[i];
    if (p->is_buffer || strncmp(p->name, prefix, len) != 0) continue;
    if (p->trainable != (trainable != 0)) changed++;
    p->trainable = trainable != 0;
  }
  return changed;
}

int fg_graph_set_bn_mode(fg_graph *g, const char *prefix, fg_bn_mode mode) {
  int changed = 0;
  size_t len = strlen(prefix);
  for (int i = 0; i < g->n_nodes; i++) {
    fg_node *n = &g->nodes[i];
    if (n->kind != FG_NODE_BN || strncmp(n->name, prefix, len) != 0) continue;
    n->bn_mode = mode;
    changed++;
  }
  return changed;
}

/* ------------------------------------------------------------------------------------------ */
/* Initialisation                                                                              */

static uint64_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

void fg_graph_init_state(const fg_graph *g, uint64_t seed, float *state) {
  for (int i = 0; i < g->n_params; i++) {
    const fg_param *p = &g->params[i];
    float *v = state + p->offset;
    fg_rng r = fg_rng_stream(seed, FG_RNG_INIT, name_hash(p->name), 0);
    switch (p->init) {
      case FG_INIT_ZERO:
        for (int64_t k = 0; k < p->numel; k++) v[k] = 0.0f;
        break;
      case FG_INIT_ONE:
        for (int64_t k = 0; k < p->numel; k++) v[k] = 1.0f;
        break;
      case FG_INIT_UNIFORM_FAN_IN: {
        double bound = 1.0 / sqrt((double)p->fan_in);
        for (int64_t k = 0; k < p->numel; k++)
          v[k] = (float)(bound * (2.0 * fg_rng_uniform_double(&r) - 1.0));
        break;
      }
      case FG_INIT_NORMAL_FAN_OUT: {
        double sd = sqrt(2.0 / (double)p->fan_out);
        for (int64_t k = 0; k < p->numel; k++) v[k] = (float)(sd * fg_rng_normal(&r));
        break;
      }
    }
  }
}
