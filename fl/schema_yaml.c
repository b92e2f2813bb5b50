/* Schemas (fl/schema.h), the libyaml side: a file parsed into a node tree, --set overrides grafted
 * into the tree, and the walker that reads a mapping against field tables. Scalars are read
 * strictly: an int is a decimal without leading zeros ("1e3", "010" and "1.5" are not ints), a
 * float any finite number, a bool true/false, yes/no or on/off, and a string given as nothing,
 * ~ or null is an error. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/atomic_file.h"
#include "fl/schema.h"

enum {
  MAX_FILE = 16 << 20, /* bytes of YAML read */
  MAX_DEPTH = 64,      /* nesting of a document or a --set value */
  MAX_SET_NODES = 10000, /* nodes a --set value may copy into the document (aliases counted each time) */
  MAX_STEPS = 16,      /* keys and indices of a --set path */
  MAX_GROUPS = 4,      /* tables read from one mapping */
  MAX_FIELDS = 64,     /* fields of one table */
};

/* ---- nodes --------------------------------------------------------------------------------- */

static const char *scalar_text(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* An empty plain scalar, ~ or null: YAML's null. */
static int scalar_is_null(const yaml_node_t *n) {
  if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
  const char *s = scalar_text(n);
  return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
         strcmp(s, "NULL") == 0;
}

/* What a node is, for "expected X, got Y" messages. */
static void describe_node(const yaml_node_t *n, char *out, size_t cap) {
  if (n->type == YAML_SEQUENCE_NODE) snprintf(out, cap, "a list");
  else if (n->type == YAML_MAPPING_NODE) snprintf(out, cap, "a mapping");
  else if (scalar_is_null(n)) snprintf(out, cap, "no value");
  else snprintf(out, cap, "'%.60s'", scalar_text(n));
}

/* Looks `key` up in a mapping node: the pair's index, or -1. */
static long mapping_find(yaml_document_t *doc, yaml_node_t *map, const char *key) {
  long i = 0;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++, i++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key);
    if (k && k->type == YAML_SCALAR_NODE && strcmp(scalar_text(k), key) == 0) return i;
  }
  return -1;
}

yaml_node_t *fg_schema_lookup(yaml_document_t *doc, yaml_node_t *map, const char *dotted) {
  char key[128];
  while (map && map->type == YAML_MAPPING_NODE) {
    const char *dot = strchr(dotted, '.');
    size_t n = dot ? (size_t)(dot - dotted) : strlen(dotted);
    if (n >= sizeof key) return NULL;
    memcpy(key, dotted, n);
    key[n] = '\0';
    long pair = mapping_find(doc, map, key);
    if (pair < 0) return NULL;
    map = yaml_document_get_node(doc, map->data.mapping.pairs.start[pair].value);
    if (!dot) return map;
    dotted = dot + 1;
  }
  return NULL;
}

static size_t list_count(const yaml_node_t *n) {
  return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

yaml_node_t *fg_schema_list_item(yaml_document_t *doc, yaml_node_t *list, size_t i) {
  return yaml_document_get_node(doc, list->data.sequence.items.start[i]);
}

fg_status fg_schema_list(fg_schema_ctx *c, yaml_node_t *node, size_t min, size_t max, size_t *count) {
  char got[96];
  if (node->type != YAML_SEQUENCE_NODE) {
    describe_node(node, got, sizeof got);
    return fg_schema_fail(c, "expected a list, got %s", got);
  }
  size_t n = list_count(node);
  if (n < min) return fg_schema_fail(c, "%zu entries (expected at least %zu)", n, min);
  if (max > 0 && n > max) return fg_schema_fail(c, "%zu entries (expected at most %zu)", n, max);
  *count = n;
  return FG_OK;
}

/* ---- parsing ------------------------------------------------------------------------------- */

static fg_status parse_text(fg_schema_ctx *c, const unsigned char *text, size_t len, yaml_document_t *doc) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) return FG_FAIL(FG_ERR_OOM, "libyaml: cannot create a parser");
  yaml_parser_set_input_string(&parser, text, len);
  if (!yaml_parser_load(&parser, doc)) {
    yaml_mark_t m = parser.problem_mark;
    char context[160] = "";
    if (parser.context)
      snprintf(context, sizeof context, " %s started at line %zu", parser.context, parser.context_mark.line + 1);
    fg_status st = FG_FAIL(FG_ERR_CONFIG, "%s:%zu:%zu: malformed YAML: %s%s", c->file, m.line + 1, m.column + 1,
                           parser.problem ? parser.problem : "syntax error", context);
    yaml_parser_delete(&parser);
    return st;
  }
  /* a second document in the stream is a mistake (e.g. a stray "---") */
  yaml_document_t extra;
  int ok = yaml_parser_load(&parser, &extra);
  int more = ok && yaml_document_get_root_node(&extra) != NULL;
  yaml_mark_t m = ok ? extra.start_mark : parser.problem_mark;
  if (ok) yaml_document_delete(&extra);
  fg_status st = FG_OK;
  if (!ok)
    st = FG_FAIL(FG_ERR_CONFIG, "%s:%zu:%zu: malformed YAML: %s", c->file, m.line + 1, m.column + 1,
                 parser.problem ? parser.problem : "syntax error");
  else if (more)
    st = FG_FAIL(FG_ERR_CONFIG, "%s:%zu: a second YAML document (expected one)", c->file, m.line + 1);
  yaml_parser_delete(&parser);
  if (st != FG_OK) yaml_document_delete(doc);
  return st;
}

/* The levels of nodes from `id` down (1 for a scalar), at most just past `limit` (the walk stops
 * there); -1 when an alias refers to a node holding it (a cycle). memo[id]: 0 not known yet, -1
 * on the path being walked, else the node's levels. Recursion is at most limit + 1 deep. */
static int node_levels(yaml_document_t *doc, int id, int *memo, int level, int limit) {
  yaml_node_t *n = yaml_document_get_node(doc, id);
  if (!n) return 1;
  if (memo[id] > 0) return memo[id];
  if (memo[id] < 0) return -1;
  if (level > limit || n->type == YAML_SCALAR_NODE) return 1;
  memo[id] = -1;
  int below = 0;
  if (n->type == YAML_SEQUENCE_NODE) {
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
      int d = node_levels(doc, *i, memo, level + 1, limit);
      if (d < 0) return -1;
      if (d > below) below = d;
      if (level + below > limit) break;
    }
  } else {
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
      int dk = node_levels(doc, p->key, memo, level + 1, limit);
      int dv = dk < 0 ? -1 : node_levels(doc, p->value, memo, level + 1, limit);
      if (dk < 0 || dv < 0) return -1;
      if (dk > below) below = dk;
      if (dv > below) below = dv;
      if (level + below > limit) break;
    }
  }
  memo[id] = below + 1;
  return below + 1;
}

/* The document nests at most MAX_DEPTH levels and has no alias to a node that holds it. */
static fg_status check_nesting(fg_schema_ctx *c, yaml_document_t *doc) {
  size_t nodes = (size_t)(doc->nodes.top - doc->nodes.start);
  if (nodes == 0) return FG_OK;
  int *memo = calloc(nodes + 1, sizeof *memo);
  if (!memo) return FG_FAIL(FG_ERR_OOM, "out of memory");
  int levels = node_levels(doc, 1, memo, 1, MAX_DEPTH);
  free(memo);
  if (levels < 0) return FG_FAIL(FG_ERR_CONFIG, "%s: an alias refers to a node that holds it (a cycle)", c->file);
  if (levels > MAX_DEPTH)
    return FG_FAIL(FG_ERR_CONFIG, "%s: nested deeper than %d levels (the limit of a configuration)", c->file,
                   MAX_DEPTH);
  return FG_OK;
}

fg_status fg_schema_load_file(fg_schema_ctx *c, yaml_document_t *doc) {
  unsigned char *text = NULL;
  size_t len = 0;
  fg_status st = fg_read_file(c->file, MAX_FILE, &text, &len);
  if (st == FG_ERR_FORMAT) return FG_FAIL(FG_ERR_CONFIG, "%s: larger than %d MiB", c->file, MAX_FILE >> 20);
  if (st != FG_OK) return st;
  st = parse_text(c, text, len, doc);
  free(text);
  if (st != FG_OK) return st;
  st = check_nesting(c, doc);
  if (st != FG_OK) {
    yaml_document_delete(doc);
    return st;
  }
  yaml_node_t *root = yaml_document_get_root_node(doc);
  if (!root) {
    /* an empty file: an empty mapping (the missing keys are reported by name) */
    if (yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE)) return FG_OK;
    yaml_document_delete(doc);
    return FG_FAIL(FG_ERR_OOM, "out of memory");
  }
  if (root->type == YAML_MAPPING_NODE) return FG_OK;
  char got[96];
  describe_node(root, got, sizeof got);
  yaml_document_delete(doc);
  return FG_FAIL(FG_ERR_CONFIG, "%s: expected a mapping of keys at the top level, got %s", c->file, got);
}

fg_status fg_schema_new_document(yaml_document_t *doc) {
  if (!yaml_document_initialize(doc, NULL, NULL, NULL, 1, 1)) return FG_FAIL(FG_ERR_OOM, "out of memory");
  if (yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE)) return FG_OK;
  yaml_document_delete(doc);
  return FG_FAIL(FG_ERR_OOM, "out of memory");
}

static int add_plain(yaml_document_t *doc, const char *text) {
  return yaml_document_add_scalar(doc, NULL, (const yaml_char_t *)text, (int)strlen(text), YAML_PLAIN_SCALAR_STYLE);
}

fg_status fg_schema_add_pair(yaml_document_t *doc, yaml_node_t *map, const char *key, const char *value) {
  int id = (int)(map - doc->nodes.start) + 1;
  int k = add_plain(doc, key), v = k ? add_plain(doc, value) : 0;
  if (!v || !yaml_document_append_mapping_pair(doc, id, k, v)) return FG_FAIL(FG_ERR_OOM, "out of memory");
  return FG_OK;
}

/* ---- --set overrides ----------------------------------------------------------------------- */

typedef struct set_step {
  char key[128]; /* a mapping key, or "" for a list index */
  long index;
} set_step;

/* An override's own mistake: "file: --set given: problem". */
#define SET_FAIL(c, ...) fg_schema_fail_at((c), "", __VA_ARGS__)

/* The index step "[N]" at text[i]; i just past it. */
static fg_status parse_index(fg_schema_ctx *c, const char *text, size_t len, size_t *i, const char *given,
                             set_step *step) {
  size_t j = *i + 1;
  long idx = 0;
  while (j < len && text[j] >= '0' && text[j] <= '9' && idx < 1000000) idx = idx * 10 + (text[j++] - '0');
  if (j == *i + 1 || j >= len || text[j] != ']')
    return SET_FAIL(c, "--set %s: expected [N] with a non-negative index", given);
  step->key[0] = '\0';
  step->index = idx;
  *i = j + 1;
  if (*i < len && text[*i] != '.' && text[*i] != '[')
    return SET_FAIL(c, "--set %s: expected '.' or '[' after ']'", given);
  return FG_OK;
}

/* "a.b[2].c" into steps and its canonical text. */
static fg_status parse_set_path(fg_schema_ctx *c, const char *text, size_t len, const char *given, set_step *steps,
                                int *n_steps, char *canon, size_t canon_cap) {
  int n = 0;
  size_t i = 0, clen = 0;
  canon[0] = '\0';
  while (i < len) {
    if (n == MAX_STEPS) return SET_FAIL(c, "--set %s: key path too deep", given);
    if (text[i] == '[') {
      if (n == 0) return SET_FAIL(c, "--set %s: the key path starts with an index", given);
      FG_TRY(parse_index(c, text, len, &i, given, &steps[n]));
      clen += (size_t)snprintf(canon + clen, canon_cap - clen, "[%ld]", steps[n].index);
    } else {
      size_t j = i;
      while (j < len && text[j] != '.' && text[j] != '[') j++;
      if (j == i) return SET_FAIL(c, "--set %s: empty key in the key path", given);
      if (j - i >= sizeof steps[n].key) return SET_FAIL(c, "--set %s: key too long", given);
      memcpy(steps[n].key, text + i, j - i);
      steps[n].key[j - i] = '\0';
      steps[n].index = -1;
      clen += (size_t)snprintf(canon + clen, canon_cap - clen, "%s%s", n ? "." : "", steps[n].key);
      i = j;
    }
    if (clen >= canon_cap) return SET_FAIL(c, "--set %s: key path too long", given);
    n++;
    if (i < len && text[i] == '.' && ++i == len) return SET_FAIL(c, "--set %s: the key path ends with '.'", given);
  }
  if (n == 0) return SET_FAIL(c, "--set %s: empty key path (expected dotted.key=value)", given);
  *n_steps = n;
  return FG_OK;
}

/* Copies node `index` of `src` (and everything below it) into `dst`; the new node's id, or 0. An
 * alias is copied as often as it is used, so *budget (nodes left to copy) bounds the work. */
static int copy_node(yaml_document_t *dst, yaml_document_t *src, int index, int depth, int *budget) {
  yaml_node_t *n = yaml_document_get_node(src, index);
  if (!n || depth > MAX_DEPTH || --*budget < 0) return 0;
  switch (n->type) {
    case YAML_SCALAR_NODE:
      return yaml_document_add_scalar(dst, n->tag, n->data.scalar.value, (int)n->data.scalar.length,
                                      n->data.scalar.style);
    case YAML_SEQUENCE_NODE: {
      int seq = yaml_document_add_sequence(dst, n->tag, YAML_BLOCK_SEQUENCE_STYLE);
      if (!seq) return 0;
      size_t count = list_count(n);
      for (size_t i = 0; i < count; i++) {
        n = yaml_document_get_node(src, index);
        int item = copy_node(dst, src, n->data.sequence.items.start[i], depth + 1, budget);
        if (!item || !yaml_document_append_sequence_item(dst, seq, item)) return 0;
      }
      return seq;
    }
    case YAML_MAPPING_NODE: {
      int map = yaml_document_add_mapping(dst, n->tag, YAML_BLOCK_MAPPING_STYLE);
      if (!map) return 0;
      size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
      for (size_t i = 0; i < count; i++) {
        n = yaml_document_get_node(src, index);
        yaml_node_pair_t pair = n->data.mapping.pairs.start[i];
        int k = copy_node(dst, src, pair.key, depth + 1, budget);
        int v = k ? copy_node(dst, src, pair.value, depth + 1, budget) : 0;
        if (!v || !yaml_document_append_mapping_pair(dst, map, k, v)) return 0;
      }
      return map;
    }
    default: return 0;
  }
}

/* Parses the value of an override as a YAML document and copies it into `doc`. */
static fg_status parse_set_value(fg_schema_ctx *c, yaml_document_t *doc, const char *value, const char *given,
                                 int *node_out) {
  yaml_parser_t parser;
  yaml_document_t vdoc;
  if (!yaml_parser_initialize(&parser)) return FG_FAIL(FG_ERR_OOM, "libyaml: cannot create a parser");
  yaml_parser_set_input_string(&parser, (const unsigned char *)value, strlen(value));
  if (!yaml_parser_load(&parser, &vdoc)) {
    fg_status st =
        SET_FAIL(c, "--set %s: malformed value: %s", given, parser.problem ? parser.problem : "YAML syntax error");
    yaml_parser_delete(&parser);
    return st;
  }
  yaml_parser_delete(&parser);
  fg_status st = FG_OK;
  if (!yaml_document_get_root_node(&vdoc)) {
    st = SET_FAIL(c, "--set %s: no value after '='", given);
  } else {
    int budget = MAX_SET_NODES;
    *node_out = copy_node(doc, &vdoc, 1, 0, &budget);
    if (!*node_out && budget < 0)
      st = SET_FAIL(c, "--set %s: value of more than %d nodes (aliases counted each time they are used)", given,
                    MAX_SET_NODES);
    else if (!*node_out)
      st = SET_FAIL(c, "--set %s: value nested deeper than %d levels, or out of memory", given, MAX_DEPTH);
  }
  yaml_document_delete(&vdoc);
  return st;
}

/* One list-index step of an override: the entry's node id, or `value` put in place (last step). */
static fg_status set_index(fg_schema_ctx *c, yaml_node_t *node, const set_step *st, int last, int value,
                           const char *given, const char *at, int *cur) {
  if (node->type != YAML_SEQUENCE_NODE) return SET_FAIL(c, "--set %s: %s is not a list", given, at);
  long count = (long)list_count(node);
  if (st->index >= count)
    return SET_FAIL(c, "--set %s: %s has %ld entries (index %ld is out of range)", given, at, count, st->index);
  if (last) node->data.sequence.items.start[st->index] = value;
  else *cur = node->data.sequence.items.start[st->index];
  return FG_OK;
}

/* One mapping-key step: the value's node id (created when missing), or `value` put in place. */
static fg_status set_key(fg_schema_ctx *c, yaml_document_t *doc, const set_step *steps, int s, int last, int value,
                         const char *given, const char *at, size_t at_len, int *cur) {
  yaml_node_t *node = yaml_document_get_node(doc, *cur);
  if (node->type != YAML_MAPPING_NODE)
    return SET_FAIL(c, "--set %s: %s is not a mapping", given, at_len ? at : "the top level");
  long pair = mapping_find(doc, node, steps[s].key);
  if (pair >= 0) {
    yaml_node_pair_t *p = &node->data.mapping.pairs.start[pair];
    if (last) {
      p->value = value;
      return FG_OK;
    }
    yaml_node_t *child = yaml_document_get_node(doc, p->value);
    if (!(scalar_is_null(child) && steps[s + 1].index < 0)) {
      *cur = p->value;
      return FG_OK;
    }
    /* "local:" with nothing under it: a mapping to put the key in */
    int map = yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE);
    if (!map) return FG_FAIL(FG_ERR_OOM, "out of memory");
    node = yaml_document_get_node(doc, *cur);
    node->data.mapping.pairs.start[pair].value = map;
    *cur = map;
    return FG_OK;
  }
  if (!last && steps[s + 1].index >= 0)
    return SET_FAIL(c, "--set %s: there is no list %s%s%s to index", given, at, at_len ? "." : "", steps[s].key);
  int key = add_plain(doc, steps[s].key);
  int child = last ? value : yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE);
  if (!key || !child || !yaml_document_append_mapping_pair(doc, *cur, key, child))
    return FG_FAIL(FG_ERR_OOM, "out of memory");
  *cur = child;
  return FG_OK;
}

/* Applies override k to the tree; missing mapping keys along the path are created. */
static fg_status apply_set(fg_schema_ctx *c, yaml_document_t *doc, int k) {
  const char *text = c->set[k];
  const char *eq = text ? strchr(text, '=') : NULL;
  /* messages quote the override, shortened so that what they say about it fits */
  char given[96];
  snprintf(given, sizeof given, "%s", text ? text : "");
  if (text && strlen(text) >= sizeof given) memcpy(given + sizeof given - 4, "...", 4);
  if (!eq) return SET_FAIL(c, "--set '%s': expected dotted.key=value", given);
  set_step steps[MAX_STEPS];
  int n_steps = 0;
  char canon[sizeof c->path];
  FG_TRY(parse_set_path(c, text, (size_t)(eq - text), given, steps, &n_steps, canon, sizeof canon));
  c->set_paths[k] = strdup(canon);
  if (!c->set_paths[k]) return FG_FAIL(FG_ERR_OOM, "out of memory");
  int value = 0;
  FG_TRY(parse_set_value(c, doc, eq + 1, given, &value));

  int cur = 1; /* the root mapping */
  char at[sizeof c->path] = "";
  size_t at_len = 0;
  for (int s = 0; s < n_steps; s++) {
    int last = s == n_steps - 1;
    if (steps[s].index >= 0) {
      FG_TRY(set_index(c, yaml_document_get_node(doc, cur), &steps[s], last, value, given, at, &cur));
      at_len += (size_t)snprintf(at + at_len, sizeof at - at_len, "[%ld]", steps[s].index);
    } else {
      FG_TRY(set_key(c, doc, steps, s, last, value, given, at, at_len, &cur));
      at_len += (size_t)snprintf(at + at_len, sizeof at - at_len, "%s%s", at_len ? "." : "", steps[s].key);
    }
    if (at_len >= sizeof at) at_len = sizeof at - 1;
  }
  return FG_OK;
}

fg_status fg_schema_apply_sets(fg_schema_ctx *c, yaml_document_t *doc) {
  for (int k = 0; k < c->n_set; k++) FG_TRY(apply_set(c, doc, k));
  return FG_OK;
}

/* ---- reading scalars ----------------------------------------------------------------------- */

/* A decimal integer without leading zeros. */
static int is_decimal(const char *s) {
  const char *p = s + (*s == '+' || *s == '-');
  if (!(*p >= '0' && *p <= '9') || (p[0] == '0' && p[1] != '\0')) return 0;
  for (; *p; p++)
    if (!(*p >= '0' && *p <= '9')) return 0;
  return 1;
}

static int parse_real(const char *s, double *out) {
  if (!*s) return 0;
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (*end != '\0' || errno == ERANGE || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

static void list_names(const fg_choice *choices, int n, char *out, size_t cap) {
  size_t len = 0;
  out[0] = '\0';
  for (int i = 0; i < n && len < cap; i++) {
    int k = snprintf(out + len, cap - len, "%s%s", i ? ", " : "", choices[i].name);
    if (k < 0) break;
    len += (size_t)k;
  }
}

/* What a field expects, for "expected X, got Y" messages. */
static void expected_kind(const fg_field *f, char *out, size_t cap) {
  char names[200];
  switch (f->type) {
    case FG_FIELD_INT: snprintf(out, cap, "an integer"); return;
    case FG_FIELD_UINT64: snprintf(out, cap, "a non-negative integer"); return;
    case FG_FIELD_BOOL: snprintf(out, cap, "true or false"); return;
    case FG_FIELD_REAL: snprintf(out, cap, "a number"); return;
    case FG_FIELD_STRING: snprintf(out, cap, "a string"); return;
    case FG_FIELD_MAPPING: snprintf(out, cap, "a mapping"); return;
    case FG_FIELD_CHOICE:
      list_names(f->choices, f->n_choices, names, sizeof names);
      snprintf(out, cap, "one of: %s", names);
      return;
    default: snprintf(out, cap, "a list"); return;
  }
}

static int has_range(const fg_field *f) { return f->min < f->max; }

static fg_status int_value(fg_schema_ctx *c, const fg_field *f, const char *v, int *out) {
  if (!is_decimal(v)) return fg_schema_fail(c, "'%.60s' is not an integer", v);
  long long lo = INT_MIN, hi = INT_MAX;
  if (has_range(f)) {
    lo = f->min > INT_MIN ? (long long)f->min : INT_MIN;
    hi = f->max < INT_MAX ? (long long)f->max : INT_MAX;
  }
  errno = 0;
  long long x = strtoll(v, NULL, 10);
  if (errno != ERANGE && x >= lo && x <= hi) {
    *out = (int)x;
    return FG_OK;
  }
  if (has_range(f) && isinf(f->max) && errno != ERANGE && x < lo)
    return fg_schema_fail(c, "%.60s is out of range (expected >= %lld)", v, lo);
  return fg_schema_fail(c, "%.60s is out of range (expected %lld..%lld)", v, lo, hi);
}

static fg_status uint64_value(fg_schema_ctx *c, const char *v, uint64_t *out) {
  if (!is_decimal(v)) return fg_schema_fail(c, "'%.60s' is not an integer", v);
  if (v[0] == '-') return fg_schema_fail(c, "%.60s is out of range (expected >= 0)", v);
  errno = 0;
  unsigned long long x = strtoull(v, NULL, 10);
  if (errno == ERANGE)
    return fg_schema_fail(c, "%.60s is out of range (expected at most %llu)", v, (unsigned long long)UINT64_MAX);
  *out = (uint64_t)x;
  return FG_OK;
}

static fg_status real_value(fg_schema_ctx *c, const fg_field *f, const char *v, double *out) {
  double x;
  if (!parse_real(v, &x)) return fg_schema_fail(c, "'%.60s' is not a finite number", v);
  int ok = !has_range(f) || ((f->min_open ? x > f->min : x >= f->min) && (f->max_open ? x < f->max : x <= f->max));
  if (ok) {
    *out = x;
    return FG_OK;
  }
  char range[64];
  if (isinf(f->max)) snprintf(range, sizeof range, "%s %g", f->min_open ? ">" : ">=", f->min);
  else snprintf(range, sizeof range, "in %s%g, %g%s", f->min_open ? "(" : "[", f->min, f->max, f->max_open ? ")" : "]");
  return fg_schema_fail(c, "%g is out of range (expected %s)", x, range);
}

static fg_status choice_value(fg_schema_ctx *c, const fg_field *f, const char *v, int *out) {
  for (int i = 0; i < f->n_choices; i++)
    if (strcmp(v, f->choices[i].name) == 0) {
      *out = f->choices[i].value;
      return FG_OK;
    }
  char names[256];
  list_names(f->choices, f->n_choices, names, sizeof names);
  return fg_schema_fail(c, "unknown value '%.60s' (expected one of: %s)", v, names);
}

static fg_status string_value(fg_schema_ctx *c, const yaml_node_t *n, char **out) {
  if (scalar_is_null(n) && n->data.scalar.length == 0) return fg_schema_fail(c, "no value (expected a string)");
  if (scalar_is_null(n)) return fg_schema_fail(c, "'%s' is YAML's null (expected a string; quote it)", scalar_text(n));
  if (n->data.scalar.length == 0) return fg_schema_fail(c, "empty string (expected a non-empty string)");
  free(*out);
  *out = strdup(scalar_text(n));
  return *out ? FG_OK : FG_FAIL(FG_ERR_OOM, "out of memory");
}

/* A scalar of field `f`'s type (an entry's type for lists) stored at `at`. */
static fg_status read_scalar(fg_schema_ctx *c, const yaml_node_t *n, const fg_field *f, fg_field_type type, void *at) {
  char got[96], want[220];
  if (!n) return fg_schema_fail(c, "internal: dangling YAML node");
  if (n->type != YAML_SCALAR_NODE || (type != FG_FIELD_STRING && scalar_is_null(n))) {
    describe_node(n, got, sizeof got);
    fg_field as = *f;
    as.type = type;
    expected_kind(&as, want, sizeof want);
    return fg_schema_fail(c, "expected %s, got %s", want, got);
  }
  const char *v = scalar_text(n);
  switch (type) {
    case FG_FIELD_INT: return int_value(c, f, v, at);
    case FG_FIELD_UINT64: return uint64_value(c, v, at);
    case FG_FIELD_REAL: return real_value(c, f, v, at);
    case FG_FIELD_BOOL:
      if (fg_schema_parse_bool(v, at)) return FG_OK;
      return fg_schema_fail(c, "'%.60s' is not a boolean (expected true or false)", v);
    case FG_FIELD_CHOICE: return choice_value(c, f, v, at);
    case FG_FIELD_STRING: return string_value(c, n, at);
    default: return fg_schema_fail(c, "internal: field type %d is not a scalar", (int)type);
  }
}

/* Entry i of a REALS / INTS list at `at` against the one before it, in the field's order. */
static fg_status check_order(fg_schema_ctx *c, const fg_field *f, const char *at, size_t i) {
  double v = f->type == FG_FIELD_REALS ? ((const double *)at)[i] : ((const int *)at)[i];
  double prev = f->type == FG_FIELD_REALS ? ((const double *)at)[i - 1] : ((const int *)at)[i - 1];
  if (f->order < 0 ? v < prev : v > prev) return FG_OK;
  return fg_schema_fail(c, "%g is not %s the previous %s %g (%s must be strictly %s)", v,
                        f->order < 0 ? "below" : "above", f->entry ? f->entry : "entry", prev, f->key,
                        f->order < 0 ? "descending" : "increasing");
}

/* FLAGS: the listed choices' values ORed. */
static fg_status read_flags(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *n, const fg_field *f, int *out) {
  size_t count = 0;
  FG_TRY(fg_schema_list(c, n, 0, (size_t)f->n_choices, &count));
  int flags = 0;
  for (size_t i = 0; i < count; i++) {
    int value = 0;
    size_t mark = fg_schema_push_index(c, i);
    fg_status st = read_scalar(c, fg_schema_list_item(doc, n, i), f, FG_FIELD_CHOICE, &value);
    fg_schema_pop(c, mark);
    if (st != FG_OK) return st;
    flags |= value;
  }
  *out = flags;
  return FG_OK;
}

/* REALS, INTS: each entry read as a number at key[i], in range and in the field's order. */
static fg_status read_numbers(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *n, const fg_field *f, void *base) {
  size_t count = 0;
  FG_TRY(fg_schema_list(c, n, (size_t)f->min_len, (size_t)f->max_len, &count));
  int reals = f->type == FG_FIELD_REALS;
  char *at = (char *)base + f->offset;
  for (size_t i = 0; i < count; i++) {
    void *entry = reals ? (void *)((double *)at + i) : (void *)((int *)at + i);
    size_t mark = fg_schema_push_index(c, i);
    fg_status st = read_scalar(c, fg_schema_list_item(doc, n, i), f, reals ? FG_FIELD_REAL : FG_FIELD_INT, entry);
    if (st == FG_OK && f->order && i > 0) st = check_order(c, f, at, i);
    fg_schema_pop(c, mark);
    if (st != FG_OK) return st;
  }
  *(int *)((char *)base + f->count_offset) = (int)count;
  return FG_OK;
}

fg_status fg_schema_read_value(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *node, const fg_field *f,
                               void *base) {
  if (!node) return fg_schema_fail(c, "internal: dangling YAML node");
  switch (f->type) {
    case FG_FIELD_MAPPING: return fg_schema_read_mapping(c, doc, node, f->fields, f->n_fields, base);
    case FG_FIELD_REALS:
    case FG_FIELD_INTS: return read_numbers(c, doc, node, f, base);
    case FG_FIELD_FLAGS: return read_flags(c, doc, node, f, (int *)((char *)base + f->offset));
    case FG_FIELD_LATER: return FG_OK;
    default: return read_scalar(c, node, f, f->type, (char *)base + f->offset);
  }
}

/* ---- reading mappings ---------------------------------------------------------------------- */

static void apply_default(const fg_field *f, void *base) {
  void *at = (char *)base + f->offset;
  switch (f->type) {
    case FG_FIELD_INT:
    case FG_FIELD_BOOL:
    case FG_FIELD_CHOICE:
    case FG_FIELD_FLAGS: *(int *)at = (int)f->def; return;
    case FG_FIELD_UINT64: *(uint64_t *)at = (uint64_t)f->def; return;
    case FG_FIELD_REAL: *(double *)at = f->def; return;
    case FG_FIELD_REALS:
    case FG_FIELD_INTS:
      for (int i = 0; i < f->n_def; i++) {
        if (f->type == FG_FIELD_REALS) ((double *)at)[i] = f->def_reals[i];
        else ((int *)at)[i] = f->def_ints[i];
      }
      *(int *)((char *)base + f->count_offset) = f->n_def;
      return;
    case FG_FIELD_MAPPING:
      for (int i = 0; i < f->n_fields; i++) apply_default(&f->fields[i], base);
      return;
    case FG_FIELD_STRING:
    case FG_FIELD_LATER: return;
  }
}

/* "unknown key 'k' in path (expected one of: every group's keys)". */
static fg_status unknown_key(fg_schema_ctx *c, const char *key, const fg_field_group *groups, int n_groups) {
  char names[768];
  size_t len = 0;
  names[0] = '\0';
  for (int g = 0; g < n_groups; g++)
    for (int i = 0; i < groups[g].n_fields && len < sizeof names; i++) {
      int k = snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "", groups[g].fields[i].key);
      if (k > 0) len += (size_t)k;
    }
  return fg_schema_fail_unknown(c, key, names);
}

/* Field `key` of the groups: its index in group *g, or -1. */
static int find_field(const fg_field_group *groups, int n_groups, const char *key, int *g) {
  for (*g = 0; *g < n_groups; (*g)++)
    for (int i = 0; i < groups[*g].n_fields; i++)
      if (strcmp(groups[*g].fields[i].key, key) == 0) return i;
  return -1;
}

fg_status fg_schema_read(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *node, const fg_field_group *groups,
                         int n_groups, fg_unknown_key unknown, void *arg) {
  char got[96];
  if (!node) return fg_schema_fail(c, "internal: dangling YAML node");
  if (node->type != YAML_MAPPING_NODE) {
    describe_node(node, got, sizeof got);
    return fg_schema_fail(c, "expected a mapping, got %s", got);
  }
  unsigned char seen[MAX_GROUPS][MAX_FIELDS] = {{0}};
  if (n_groups > MAX_GROUPS) return fg_schema_fail(c, "internal: too many tables");
  for (int g = 0; g < n_groups; g++)
    if (groups[g].n_fields > MAX_FIELDS) return fg_schema_fail(c, "internal: schema too wide");
  for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key);
    if (!k) return fg_schema_fail(c, "internal: dangling YAML key");
    if (k->type != YAML_SCALAR_NODE) {
      describe_node(k, got, sizeof got);
      return fg_schema_fail(c, "a key must be a name, got %s", got);
    }
    const char *key = scalar_text(k);
    int g = 0, f = find_field(groups, n_groups, key, &g);
    if (f < 0) {
      fg_status st = unknown ? unknown(c, key, arg) : FG_OK;
      return st != FG_OK ? st : unknown_key(c, key, groups, n_groups);
    }
    const fg_field_group *grp = &groups[g];
    size_t mark = fg_schema_push_key(c, key);
    fg_status st = seen[g][f] ? fg_schema_fail(c, "key given more than once")
                              : fg_schema_read_value(c, doc, yaml_document_get_node(doc, p->value), &grp->fields[f],
                                                     grp->base);
    fg_schema_pop(c, mark);
    if (st != FG_OK) return st;
    seen[g][f] = 1;
    if (grp->given) grp->given[f] = 1;
  }
  for (int g = 0; g < n_groups; g++)
    for (int i = 0; i < groups[g].n_fields; i++) {
      const fg_field *f = &groups[g].fields[i];
      if (seen[g][i]) continue;
      if (f->required) return fg_schema_fail_key(c, f->key, "required key is missing");
      apply_default(f, groups[g].base);
    }
  return FG_OK;
}

fg_status fg_schema_read_mapping(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *node, const fg_field *fields,
                                 int n_fields, void *base) {
  fg_field_group group = {fields, n_fields, base, NULL};
  return fg_schema_read(c, doc, node, &group, 1, NULL, NULL);
}
