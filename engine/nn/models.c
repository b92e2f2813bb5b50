/* The built-in architectures, written once against the graph builders. */
#include "engine/nn/models.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *fg_model_arch_list(void) { return "cnn, vgg-me, resnet18, resnet34"; }

double fg_model_width(const fg_model_spec *spec) {
  if (spec->width > 0) return spec->width;
  return spec->arch && strcmp(spec->arch, "cnn") == 0 ? 16.0 : 1.0;
}

int fg_model_block_count(const char *arch) {
  if (!arch) return 0;
  if (strcmp(arch, "cnn") == 0 || strcmp(arch, "vgg-me") == 0) return 3;
  if (strcmp(arch, "resnet18") == 0 || strcmp(arch, "resnet34") == 0) return 4;
  return 0;
}

/* Channels after a width multiplier: round(c * m), at least 1. */
static int64_t scaled(int64_t c, double m) {
  int64_t v = (int64_t)llround((double)c * m);
  return v < 1 ? 1 : v;
}

/* What every builder needs besides the graph: the sub-model rate and the Scaler. */
typedef struct build_ctx {
  fg_graph *g;
  double rate;
  fg_scaler_mode scaler;
  int stage;      /* the spec's: 0, 1..blocks or FG_STAGES_ALL */
  int classes;
  int no_projection;
  int om_bn_relu;
  int rate_floor;
  fg_exit_head exit_head;
} build_ctx;

/* Channels of a hidden layer in a rate-r sub-model: ceil(r * c) (HeteroFL) or, with rate_floor,
 * floor(r * c) (ScaleFL), at least 1. */
static int64_t kept(const build_ctx *b, int64_t c) {
  double v = (double)c * b->rate;
  int64_t k = (int64_t)(b->rate_floor ? floor(v + 1e-9) : ceil(v - 1e-9));
  return k < 1 ? 1 : k;
}

/* conv, then the Scaler when the model is a sub-model that uses one. */
static int conv_scaled(const build_ctx *b, int x, int64_t out_c, int kernel, int stride, int pad, int bias,
                       fg_init_kind init, const char *name) {
  x = fg_graph_conv(b->g, x, out_c, kernel, stride, pad, 1, bias, init, name);
  if (b->scaler == FG_SCALER_NONE || b->rate >= 1.0) return x;
  char sc[FG_NAME_CAP];
  snprintf(sc, sizeof sc, "%.50s.scaler", name);
  return fg_graph_scale(b->g, x, (float)(1.0 / b->rate), b->scaler == FG_SCALER_TRAIN_ONLY, sc);
}

static const char *name2(char *buf, size_t cap, const char *a, const char *b) {
  snprintf(buf, cap, "%.40s.%.20s", a, b);
  return buf;
}

/* conv3x3 -> BN -> ReLU, named <prefix>.conv<i>, <prefix>.bn<i>, <prefix>.relu<i>. */
static int conv_bn_relu(const build_ctx *b, int x, const char *prefix, int i, int64_t out_c, int bias,
                        fg_init_kind init) {
  fg_graph *g = b->g;
  char conv[FG_NAME_CAP], bn[FG_NAME_CAP], relu[FG_NAME_CAP];
  snprintf(conv, sizeof conv, "%.40s.conv%d", prefix, i);
  snprintf(bn, sizeof bn, "%.40s.bn%d", prefix, i);
  snprintf(relu, sizeof relu, "%.40s.relu%d", prefix, i);
  x = conv_scaled(b, x, out_c, 3, 1, 1, bias, init, conv);
  x = fg_graph_bn(g, x, bn);
  return fg_graph_relu(g, x, relu);
}

/* ------------------------------------------------------------------------------------------ */
/* NeuLite stage heads (neulite.md §1.3)                                                       */

/* What a stage head needs to know of the architecture: each block's output channels and
 * downsampling factor (1-based), the conv init, and the model's own pool and classifier names. */
typedef struct stage_geom {
  int blocks;
  int64_t channels[5];
  int stride[5];
  fg_init_kind init;
  const char *pool_name, *fc_name;
} stage_geom;

/* Stage t's head on block t's output x: O_t, global pool, classifier (marked as an output) and
 * P; with `features`, Z_X and Z_Y are marked. Returns the classifier node. */
static int stage_head(const build_ctx *b, const stage_geom *geo, int t, int x, int features) {
  fg_graph *g = b->g;
  char name[FG_NAME_CAP];
  int last = t == geo->blocks;
  for (int j = t + 1; j <= geo->blocks; j++) {
    snprintf(name, sizeof name, "neulite.stage%d.om%d", t, j - t);
    x = fg_graph_conv(g, x, geo->channels[j], 3, geo->stride[j], 1, 1, 0, geo->init, name);
    if (b->om_bn_relu) {
      char sub[FG_NAME_CAP];
      x = fg_graph_bn(g, x, name2(sub, sizeof sub, name, "bn"));
      x = fg_graph_relu(g, x, name2(sub, sizeof sub, name, "relu"));
    }
  }
  snprintf(name, sizeof name, "neulite.stage%d.zx", t);
  int zx = fg_graph_flatten(g, x, name); /* in every stage graph, so sub-model plans match by name */
  if (features) fg_graph_mark_feature(g, zx);
  if (!last) snprintf(name, sizeof name, "neulite.stage%d.pool", t);
  int pooled = fg_graph_avgpool(g, x, last ? geo->pool_name : name);
  if (!last) snprintf(name, sizeof name, "neulite.stage%d.fc", t);
  int logits = fg_graph_mark_output(g, fg_graph_linear(g, pooled, b->classes, 1, last ? geo->fc_name : name));
  if (b->no_projection && b->stage != FG_STAGES_ALL) return logits;
  int64_t c = geo->channels[geo->blocks];
  const int64_t widths[3] = {(int64_t)llround((double)c * 2056.0 / 512.0), 2 * c, c};
  int p = pooled;
  for (int k = 0; k < 3; k++) {
    snprintf(name, sizeof name, "neulite.stage%d.proj%d", t, k + 1);
    p = fg_graph_linear(g, p, widths[k], 1, name);
  }
  if (features) fg_graph_mark_feature(g, p);
  return logits;
}

/* After block k of a stage model or of the all-stages model: the stage head that belongs there
 * (1: the model ends here). */
static int stage_after_block(const build_ctx *b, const stage_geom *geo, int k, int x) {
  if (b->stage == FG_STAGES_ALL) {
    stage_head(b, geo, k, x, 0);
    return k == geo->blocks;
  }
  if (b->stage != k) return 0;
  stage_head(b, geo, k, x, 1);
  return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* cnn                                                                                         */

/* Early exit j of cnn and the resnets: global average pool + linear (exit{j}.pool, exit{j}). */
static int pooled_exit(fg_graph *g, int x, int j, int classes) {
  char pool[FG_NAME_CAP], head[FG_NAME_CAP];
  snprintf(pool, sizeof pool, "exit%d.pool", j);
  snprintf(head, sizeof head, "exit%d", j);
  x = fg_graph_avgpool(g, x, pool);
  return fg_graph_mark_output(g, fg_graph_linear(g, x, classes, 1, head));
}

/* ------------------------------------------------------------------------------------------ */
/* ScaleFL's exit heads (baselines.md A.5)                                                      */

/* ScaleFL's exit j on a block's output x [N, c, H, W] (c: the sub-model's channels there):
 * 3 x (conv3x3 c->c stride 1 pad 1 no bias, Scaler, BN, ReLU), global average pool, linear
 * c->classes with bias, marked as an output. Named scalefl.exit{j}.conv{i}, .bn{i}, .relu{i},
 * .pool, .fc. */
static int scalefl_exit_head(const build_ctx *b, int x, int j, int64_t c) {
  char prefix[FG_NAME_CAP], pool[FG_NAME_CAP], fc[FG_NAME_CAP];
  snprintf(prefix, sizeof prefix, "scalefl.exit%d", j);
  for (int i = 1; i <= 3; i++) x = conv_bn_relu(b, x, prefix, i, c, 0, FG_INIT_UNIFORM_FAN_IN);
  x = fg_graph_avgpool(b->g, x, name2(pool, sizeof pool, prefix, "pool"));
  return fg_graph_mark_output(b->g, fg_graph_linear(b->g, x, b->classes, 1, name2(fc, sizeof fc, prefix, "fc")));
}

/* Early exit j of cnn and the resnets on x (c channels): the model's own or ScaleFL's head. */
static int early_exit(const build_ctx *b, int x, int j, int64_t c) {
  if (b->exit_head == FG_EXIT_HEAD_SCALEFL) return scalefl_exit_head(b, x, j, c);
  return pooled_exit(b->g, x, j, b->classes);
}

static fg_status build_cnn(const fg_model_spec *s, int depth, const build_ctx *b) {
  fg_graph *g = b->g;
  int64_t w = (int64_t)llround(fg_model_width(s));
  if (w < 1 || fabs(fg_model_width(s) - (double)w) > 1e-9)
    return FG_FAIL(FG_ERR_INVALID, "model cnn: width %g, expected a whole number of channels >= 1", s->width);
  if (!s->exits && !s->stage && depth != 3)
    return FG_FAIL(FG_ERR_INVALID, "model cnn: depth %d needs early exits (exits: true)", depth);
  stage_geom geo = {3, {0, kept(b, w), kept(b, 2 * w), kept(b, 4 * w), 0}, {0, 1, 2, 1, 0},
                    FG_INIT_UNIFORM_FAN_IN, "block3.pool", "head"};
  int x = 0;
  for (int k = 1; k <= depth; k++) {
    char prefix[16];
    snprintf(prefix, sizeof prefix, "block%d", k);
    fg_graph_set_block(g, k - 1);
    fg_graph_set_segment(g, k - 1);
    int64_t c = kept(b, w << (k - 1));
    x = conv_bn_relu(b, x, prefix, 1, c, 0, FG_INIT_UNIFORM_FAN_IN);
    x = conv_bn_relu(b, x, prefix, 2, c, 0, FG_INIT_UNIFORM_FAN_IN);
    char pool[FG_NAME_CAP];
    if (k < 3) x = fg_graph_maxpool(g, x, 2, 2, name2(pool, sizeof pool, prefix, "pool"));
    if (b->stage) {
      if (stage_after_block(b, &geo, k, x)) break;
    } else if (k < 3) {
      if (s->exits) early_exit(b, x, k, c);
    } else {
      x = fg_graph_avgpool(g, x, name2(pool, sizeof pool, prefix, "pool"));
      fg_graph_mark_output(g, fg_graph_linear(g, x, s->classes, 1, "head"));
    }
  }
  return fg_graph_status(g);
}

/* ------------------------------------------------------------------------------------------ */
/* vgg-me                                                                                      */

static fg_status vgg_base_channels(const fg_model_spec *s, int64_t *base) {
  if ((s->in_c == 3 && s->in_h == 32 && s->in_w == 32) || (s->in_c == 1 && s->in_h == 28 && s->in_w == 28))
    *base = 32;
  else if ((s->in_c == 3 && s->in_h == 96 && s->in_w == 96) || (s->in_c == 1 && s->in_h == 18 && s->in_w == 25))
    *base = 64;
  else
    return FG_FAIL(FG_ERR_INVALID,
                   "model vgg-me: input %lldx%lldx%lld has no variant (expected 3x32x32, 1x28x28, "
                   "3x96x96 or 1x18x25)",
                   (long long)s->in_c, (long long)s->in_h, (long long)s->in_w);
  return FG_OK;
}

/* [conv3x3+bias, BN, ReLU] x2, max-pool 2. */
static int vgg_block(const build_ctx *b, int x, const char *prefix, int64_t c) {
  x = conv_bn_relu(b, x, prefix, 1, c, 1, FG_INIT_UNIFORM_FAN_IN);
  x = conv_bn_relu(b, x, prefix, 2, c, 1, FG_INIT_UNIFORM_FAN_IN);
  char pool[FG_NAME_CAP];
  return fg_graph_maxpool(b->g, x, 2, 2, name2(pool, sizeof pool, prefix, "pool"));
}

static fg_status build_vgg(const fg_model_spec *s, int depth, const build_ctx *b) {
  fg_graph *g = b->g;
  int64_t base = 0;
  FG_TRY(vgg_base_channels(s, &base));
  double m = fg_model_width(s);
  fg_graph_set_block(g, 0);
  fg_graph_set_segment(g, 0);
  int x = vgg_block(b, 0, "stem", kept(b, scaled(base, m)));
  for (int j = 1; j <= depth; j++) {
    char prefix[16], n1[FG_NAME_CAP], n2[FG_NAME_CAP], n3[FG_NAME_CAP];
    snprintf(prefix, sizeof prefix, "exit%d", j);
    fg_graph_set_block(g, j - 1);
    fg_graph_set_segment(g, j);
    int64_t c = kept(b, scaled(base << j, m));
    x = vgg_block(b, x, prefix, c);
    if (j < 3 && b->exit_head == FG_EXIT_HEAD_SCALEFL) {
      scalefl_exit_head(b, x, j, c);
      continue;
    }
    int h = fg_graph_flatten(g, x, name2(n1, sizeof n1, prefix, "flatten"));
    h = fg_graph_dropout(g, h, 0.5f, name2(n2, sizeof n2, prefix, "dropout"));
    fg_graph_mark_output(g, fg_graph_linear(g, h, s->classes, 1, name2(n3, sizeof n3, prefix, "head")));
  }
  return fg_graph_status(g);
}

/* ------------------------------------------------------------------------------------------ */
/* resnet18 / resnet34                                                                         */

static int basic_block(const build_ctx *bc, int x, int l, int u, int64_t in_c, int64_t out_c, int stride) {
  fg_graph *g = bc->g;
  char p[FG_NAME_CAP], a[FG_NAME_CAP], b[FG_NAME_CAP];
  snprintf(p, sizeof p, "layer%d.%d", l, u);
  int y = conv_scaled(bc, x, out_c, 3, stride, 1, 0, FG_INIT_NORMAL_FAN_OUT, name2(a, sizeof a, p, "conv1"));
  y = fg_graph_bn(g, y, name2(a, sizeof a, p, "bn1"));
  y = fg_graph_relu(g, y, name2(a, sizeof a, p, "relu1"));
  y = conv_scaled(bc, y, out_c, 3, 1, 1, 0, FG_INIT_NORMAL_FAN_OUT, name2(a, sizeof a, p, "conv2"));
  y = fg_graph_bn(g, y, name2(a, sizeof a, p, "bn2"));
  int sc = x;
  if (stride != 1 || in_c != out_c) {
    sc = conv_scaled(bc, x, out_c, 1, stride, 0, 0, FG_INIT_NORMAL_FAN_OUT, name2(b, sizeof b, p, "shortcut.conv"));
    sc = fg_graph_bn(g, sc, name2(b, sizeof b, p, "shortcut.bn"));
  }
  y = fg_graph_add(g, y, sc, name2(a, sizeof a, p, "add"));
  return fg_graph_relu(g, y, name2(a, sizeof a, p, "relu2"));
}

/* One depthwise-separable block of a DepthFL exit (FG_EXIT_HEAD_DEPTHFL, models.h): in_c -> out_c,
 * halving the map, named <prefix>.dw1, .pw1, .bn1, .relu1, .dw2, .pw2, .bn2, .relu2. */
static int depthfl_sep_block(const build_ctx *b, int x, const char *prefix, int64_t in_c, int64_t out_c) {
  fg_graph *g = b->g;
  char n[FG_NAME_CAP];
  x = fg_graph_conv(g, x, in_c, 3, 2, 1, (int)in_c, 0, FG_INIT_NORMAL_FAN_OUT, name2(n, sizeof n, prefix, "dw1"));
  x = conv_scaled(b, x, in_c, 1, 1, 0, 0, FG_INIT_NORMAL_FAN_OUT, name2(n, sizeof n, prefix, "pw1"));
  x = fg_graph_bn(g, x, name2(n, sizeof n, prefix, "bn1"));
  x = fg_graph_relu(g, x, name2(n, sizeof n, prefix, "relu1"));
  x = fg_graph_conv(g, x, in_c, 3, 1, 1, (int)in_c, 0, FG_INIT_NORMAL_FAN_OUT, name2(n, sizeof n, prefix, "dw2"));
  x = conv_scaled(b, x, out_c, 1, 1, 0, 0, FG_INIT_NORMAL_FAN_OUT, name2(n, sizeof n, prefix, "pw2"));
  x = fg_graph_bn(g, x, name2(n, sizeof n, prefix, "bn2"));
  return fg_graph_relu(g, x, name2(n, sizeof n, prefix, "relu2"));
}

/* DepthFL's attention gate on block j's output x [C,H,W] (FG_EXIT_HEAD_DEPTHFL, models.h), as the
 * DepthFL reference builds it: a separable block C -> C (exit{j}.gate.sep), BN (.bn), ReLU (.relu),
 * bilinear x2 upsampling (.up), sigmoid (.sigmoid), and the product with x (.mul). The reference
 * leaves the separable block at its default stride 2 (its first depthwise conv), so the gate is
 * computed at half resolution, ceil(H/2) x ceil(W/2), and the x2 upsampling (align_corners false,
 * nn.Upsample's default) restores H x W. On an odd map (7x7 for 28x28 inputs, which the reference
 * never meets) the 2 ceil(H/2) map is one row/column too large: we drop its last row/column (a crop;
 * the x2 coordinates are kept) so that the product is defined. */
static int depthfl_gate(const build_ctx *b, int x, int j, int64_t c) {
  fg_graph *g = b->g;
  if (x < 0 || fg_graph_status(g) != FG_OK) return -1;
  const int64_t h = fg_graph_node(g, x)->shape[1], w = fg_graph_node(g, x)->shape[2];
  char prefix[FG_NAME_CAP], n[FG_NAME_CAP];
  snprintf(prefix, sizeof prefix, "exit%d.gate.sep", j);
  int a = depthfl_sep_block(b, x, prefix, c, c);
  snprintf(prefix, sizeof prefix, "exit%d.gate", j);
  a = fg_graph_bn(g, a, name2(n, sizeof n, prefix, "bn"));
  a = fg_graph_relu(g, a, name2(n, sizeof n, prefix, "relu"));
  a = fg_graph_upsample2x_bilinear(g, a, h, w, name2(n, sizeof n, prefix, "up"));
  a = fg_graph_sigmoid(g, a, name2(n, sizeof n, prefix, "sigmoid"));
  return fg_graph_mul(g, a, x, name2(n, sizeof n, prefix, "mul"));
}

/* DepthFL's exit j < 4 on block j's output x (FG_EXIT_HEAD_DEPTHFL, models.h): the attention gate,
 * separable blocks down to the last block's channels, global pool, linear; marked as an output. */
static int depthfl_exit(const build_ctx *b, const stage_geom *geo, int x, int j) {
  char prefix[FG_NAME_CAP], n[FG_NAME_CAP];
  x = depthfl_gate(b, x, j, geo->channels[j]);
  for (int k = j; k < geo->blocks; k++) {
    snprintf(prefix, sizeof prefix, "exit%d.sep%d", j, k - j + 1);
    x = depthfl_sep_block(b, x, prefix, geo->channels[k], geo->channels[k + 1]);
  }
  snprintf(prefix, sizeof prefix, "exit%d", j);
  x = fg_graph_avgpool(b->g, x, name2(n, sizeof n, prefix, "pool"));
  return fg_graph_mark_output(b->g, fg_graph_linear(b->g, x, b->classes, 1, name2(n, sizeof n, prefix, "fc")));
}

/* Blocks 1..depth (stem + layer1 is block 1); with exits, exit j (global pool + linear, or DepthFL's
 * classifier) after block j < 4, and the model's own pool + fc only when all four blocks are built. */
static fg_status build_resnet(const fg_model_spec *s, int depth, const int units[4], const build_ctx *b) {
  fg_graph *g = b->g;
  double m = fg_model_width(s);
  int segment = 0;
  fg_graph_set_block(g, 0);
  fg_graph_set_segment(g, segment++);
  int64_t c = kept(b, scaled(64, m));
  int x = conv_scaled(b, 0, c, 3, 1, 1, 0, FG_INIT_NORMAL_FAN_OUT, "stem.conv");
  x = fg_graph_bn(g, x, "stem.bn");
  x = fg_graph_relu(g, x, "stem.relu");
  stage_geom geo = {4, {0}, {0, 1, 2, 2, 2}, FG_INIT_NORMAL_FAN_OUT, "pool", "fc"};
  for (int l = 1; l <= 4; l++) geo.channels[l] = kept(b, scaled(64 << (l - 1), m));
  for (int l = 1; l <= depth; l++) {
    int64_t out_c = geo.channels[l];
    fg_graph_set_block(g, l - 1);
    for (int u = 0; u < units[l - 1]; u++) {
      fg_graph_set_segment(g, segment++);
      x = basic_block(b, x, l, u, c, out_c, (l > 1 && u == 0) ? 2 : 1);
      c = out_c;
    }
    if (b->stage && stage_after_block(b, &geo, l, x)) return fg_graph_status(g);
    if (s->exits && l < 4) {
      if (s->exit_head == FG_EXIT_HEAD_DEPTHFL)
        depthfl_exit(b, &geo, x, l);
      else
        early_exit(b, x, l, out_c);
    }
  }
  if (depth < 4) return fg_graph_status(g);
  x = fg_graph_avgpool(g, x, "pool");
  fg_graph_mark_output(g, fg_graph_linear(g, x, s->classes, 1, "fc"));
  return fg_graph_status(g);
}

/* ------------------------------------------------------------------------------------------ */

fg_status fg_model_build(const fg_model_spec *s, fg_graph **out) {
  *out = NULL;
  int blocks = fg_model_block_count(s->arch);
  if (!blocks)
    return FG_FAIL(FG_ERR_INVALID, "model: unknown architecture '%s' (expected one of %s)",
                   s->arch ? s->arch : "", fg_model_arch_list());
  if (s->classes < 2 || s->classes > 100000)
    return FG_FAIL(FG_ERR_INVALID, "model %s: %d classes, expected 2..100000", s->arch, s->classes);
  if (!(s->width >= 0) || s->width > 64 * 16)
    return FG_FAIL(FG_ERR_INVALID, "model %s: width %g is out of range", s->arch, s->width);
  if (s->stage != 0) {
    if (strcmp(s->arch, "vgg-me") == 0)
      return FG_FAIL(FG_ERR_INVALID, "model vgg-me: NeuLite stage models exist for cnn, resnet18 and resnet34");
    if (s->stage != FG_STAGES_ALL && (s->stage < 1 || s->stage > blocks))
      return FG_FAIL(FG_ERR_INVALID, "model %s: stage %d, expected 1..%d", s->arch, s->stage, blocks);
    if (s->exits || s->depth)
      return FG_FAIL(FG_ERR_INVALID, "model %s: a NeuLite stage model has no early exits and no depth", s->arch);
  }
  if (s->exit_head != FG_EXIT_HEAD_MODEL && s->exit_head != FG_EXIT_HEAD_SCALEFL && s->exit_head != FG_EXIT_HEAD_DEPTHFL)
    return FG_FAIL(FG_ERR_INVALID, "model %s: exit head kind %d, expected %d (the model's), %d (ScaleFL's) or %d (DepthFL's)",
                   s->arch, (int)s->exit_head, (int)FG_EXIT_HEAD_MODEL, (int)FG_EXIT_HEAD_SCALEFL,
                   (int)FG_EXIT_HEAD_DEPTHFL);
  if (s->exit_head == FG_EXIT_HEAD_DEPTHFL && (blocks != 4 || !s->exits || s->stage))
    return FG_FAIL(FG_ERR_INVALID, "model %s: DepthFL's exit classifiers exist only on a resnet with exits", s->arch);
  int depth = s->depth ? s->depth : blocks;
  if (depth < 1 || depth > blocks)
    return FG_FAIL(FG_ERR_INVALID, "model %s: depth %d, expected 1..%d", s->arch, s->depth, blocks);
  double rate = s->rate > 0 ? s->rate : 1.0;
  if (!(rate <= 1.0))
    return FG_FAIL(FG_ERR_INVALID, "model %s: width rate %g, expected 0 < rate <= 1", s->arch, s->rate);
  fg_graph *g = fg_graph_create(s->in_c, s->in_h, s->in_w);
  if (!g) return FG_FAIL(FG_ERR_OOM, "model %s: out of memory", s->arch);
  fg_status st = fg_graph_status(g);
  build_ctx b = {g, rate, s->scaler, s->stage, s->classes, s->no_projection, s->om_bn_relu, s->rate_floor, s->exit_head};
  if (st == FG_OK) {
    if (strcmp(s->arch, "cnn") == 0) {
      st = build_cnn(s, depth, &b);
    } else if (strcmp(s->arch, "vgg-me") == 0) {
      st = build_vgg(s, depth, &b);
    } else if (!s->exits && !s->stage && depth != blocks) {
      st = FG_FAIL(FG_ERR_INVALID, "model %s: depth %d needs early exits (exits: true)", s->arch, depth);
    } else {
      static const int r18[4] = {2, 2, 2, 2}, r34[4] = {3, 4, 6, 3};
      st = build_resnet(s, depth, strcmp(s->arch, "resnet18") == 0 ? r18 : r34, &b);
    }
  }
  if (st != FG_OK) {
    fg_graph_free(g);
    return st;
  }
  *out = g;
  return FG_OK;
}

fg_status fg_model_block_tail(const fg_model_spec *spec, int block, char *prefix, size_t cap) {
  int blocks = fg_model_block_count(spec->arch);
  if (!blocks || strcmp(spec->arch, "vgg-me") == 0 || block < 1 || block > blocks)
    return FG_FAIL(FG_ERR_INVALID, "model %s: no block %d with a conv tail (cnn blocks 1..3, resnet blocks 1..4)",
                   spec->arch ? spec->arch : "", block);
  if (strcmp(spec->arch, "cnn") == 0) {
    snprintf(prefix, cap, "block%d", block);
  } else {
    int units = strcmp(spec->arch, "resnet18") == 0 ? 2 : (const int[4]){3, 4, 6, 3}[block - 1];
    snprintf(prefix, cap, "layer%d.%d", block, units - 1);
  }
  return FG_OK;
}
