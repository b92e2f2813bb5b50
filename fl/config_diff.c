/* Which keys differ between two configurations (fg_config_diff, fl/config.h): both resolved
 * configurations are written as text, parsed back into libyaml trees and compared node by node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "fl/config.h"

enum { MAX_DEPTH = 16 };

typedef struct differ {
  yaml_document_t *a, *b;
  fg_config_change *out;
  int cap, n;
} differ;

static fg_status parse(const char *text, size_t len, yaml_document_t *doc) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) return FG_FAIL(FG_ERR_OOM, "libyaml: cannot create a parser");
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  int ok = yaml_parser_load(&parser, doc);
  yaml_parser_delete(&parser);
  if (!ok) return FG_FAIL(FG_ERR_INTERNAL, "a resolved configuration does not parse back as YAML");
  return FG_OK;
}

static int is_scalar_list(yaml_document_t *d, const yaml_node_t *n) {
  if (n->type != YAML_SEQUENCE_NODE) return 0;
  for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
    const yaml_node_t *item = yaml_document_get_node(d, *i);
    if (!item || item->type != YAML_SCALAR_NODE) return 0;
  }
  return 1;
}

/* A value as text: a scalar's, "[a, b]" for a list of scalars, else a short description. */
static void node_text(yaml_document_t *d, const yaml_node_t *n, char *buf, size_t cap) {
  if (!n) {
    snprintf(buf, cap, "(absent)");
    return;
  }
  if (n->type == YAML_SCALAR_NODE) {
    snprintf(buf, cap, "%s", (const char *)n->data.scalar.value);
    return;
  }
  if (is_scalar_list(d, n)) {
    size_t at = (size_t)snprintf(buf, cap, "[");
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top && at < cap; i++)
      at += (size_t)snprintf(buf + at, cap - at, "%s%s", i == n->data.sequence.items.start ? "" : ", ",
                             (const char *)yaml_document_get_node(d, *i)->data.scalar.value);
    if (at < cap) snprintf(buf + at, cap - at, "]");
    return;
  }
  if (n->type == YAML_SEQUENCE_NODE)
    snprintf(buf, cap, "a list of %d entries", (int)(n->data.sequence.items.top - n->data.sequence.items.start));
  else
    snprintf(buf, cap, "a mapping");
}

static void record(differ *df, const char *path, const yaml_node_t *x, const yaml_node_t *y) {
  if (df->n < df->cap) {
    fg_config_change *c = &df->out[df->n];
    snprintf(c->key, sizeof c->key, "%.127s", path);
    node_text(df->a, x, c->from, sizeof c->from);
    node_text(df->b, y, c->to, sizeof c->to);
  }
  df->n++;
}

static const yaml_node_t *lookup(yaml_document_t *d, const yaml_node_t *map, const char *key) {
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    const yaml_node_t *k = yaml_document_get_node(d, p->key);
    if (k && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
      return yaml_document_get_node(d, p->value);
  }
  return NULL;
}

static void walk(differ *df, const char *path, const yaml_node_t *x, const yaml_node_t *y, int depth);

static void walk_key(differ *df, const char *path, const char *key, const yaml_node_t *x, const yaml_node_t *y,
                     int depth) {
  char sub[256];
  snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", key);
  if (!x || !y) record(df, sub, x, y);
  else walk(df, sub, x, y, depth + 1);
}

static void walk(differ *df, const char *path, const yaml_node_t *x, const yaml_node_t *y, int depth) {
  if (depth > MAX_DEPTH || x->type != y->type) {
    record(df, path, x, y);
    return;
  }
  if (x->type == YAML_MAPPING_NODE) {
    for (yaml_node_pair_t *p = x->data.mapping.pairs.start; p < x->data.mapping.pairs.top; p++) {
      const yaml_node_t *k = yaml_document_get_node(df->a, p->key);
      if (!k || k->type != YAML_SCALAR_NODE) continue;
      const char *key = (const char *)k->data.scalar.value;
      if (depth == 0 && strcmp(key, "threads") == 0) continue;
      walk_key(df, path, key, yaml_document_get_node(df->a, p->value), lookup(df->b, y, key), depth);
    }
    for (yaml_node_pair_t *p = y->data.mapping.pairs.start; p < y->data.mapping.pairs.top; p++) {
      const yaml_node_t *k = yaml_document_get_node(df->b, p->key);
      if (!k || k->type != YAML_SCALAR_NODE) continue;
      const char *key = (const char *)k->data.scalar.value;
      if ((depth == 0 && strcmp(key, "threads") == 0) || lookup(df->a, x, key)) continue;
      walk_key(df, path, key, NULL, yaml_document_get_node(df->b, p->value), depth);
    }
    return;
  }
  if (x->type == YAML_SEQUENCE_NODE && !is_scalar_list(df->a, x) && !is_scalar_list(df->b, y)) {
    long nx = (long)(x->data.sequence.items.top - x->data.sequence.items.start);
    long ny = (long)(y->data.sequence.items.top - y->data.sequence.items.start);
    if (nx != ny) {
      record(df, path, x, y);
      return;
    }
    for (long i = 0; i < nx; i++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s[%ld]", path, i);
      const yaml_node_t *xi = yaml_document_get_node(df->a, x->data.sequence.items.start[i]);
      const yaml_node_t *yi = yaml_document_get_node(df->b, y->data.sequence.items.start[i]);
      if (!xi || !yi) record(df, sub, xi, yi);
      else walk(df, sub, xi, yi, depth + 1);
    }
    return;
  }
  char tx[512], ty[512];
  node_text(df->a, x, tx, sizeof tx);
  node_text(df->b, y, ty, sizeof ty);
  if (strcmp(tx, ty) != 0) record(df, path, x, y);
}

fg_status fg_config_diff(const fg_config *was, const fg_config *now, fg_config_change *out, int cap, int *n) {
  if (!was || !now || !n || cap < 0 || (cap > 0 && !out))
    return FG_FAIL(FG_ERR_INVALID, "fg_config_diff: bad argument");
  *n = 0;
  char *ta = NULL, *tb = NULL;
  size_t la = 0, lb = 0;
  FG_TRY(fg_config_resolved_text(was, -1, NULL, &ta, &la));
  fg_status st = fg_config_resolved_text(now, -1, NULL, &tb, &lb);
  yaml_document_t a, b;
  int have_a = 0, have_b = 0;
  if (st == FG_OK && (st = parse(ta, la, &a)) == FG_OK) have_a = 1;
  if (st == FG_OK && (st = parse(tb, lb, &b)) == FG_OK) have_b = 1;
  if (st == FG_OK) {
    differ df = {&a, &b, out, cap, 0};
    const yaml_node_t *ra = yaml_document_get_root_node(&a), *rb = yaml_document_get_root_node(&b);
    if (!ra || !rb) st = FG_FAIL(FG_ERR_INTERNAL, "a resolved configuration is empty");
    else walk(&df, "", ra, rb, 0);
    *n = df.n;
  }
  if (have_a) yaml_document_delete(&a);
  if (have_b) yaml_document_delete(&b);
  free(ta);
  free(tb);
  return st;
}
