/* A method's configuration (fl/method_config.h): its entry read, built and written by walking the
 * option table of the method's file. */
#include "fl/method_config.h"

#include <stdlib.h>
#include <string.h>

#include "engine/nn/models.h"
#include "fl/method.h"
#include "fl/sampling.h"

enum { MAX_OPTIONS = 64, TEXT_CAP = 512 };

static const fg_choice weightings[] = {{"samples", FG_WEIGHT_SAMPLES}, {"count", FG_WEIGHT_COUNT}};

const char *fg_weighting_name(fg_weighting w) {
  const char *name = fg_choice_name(weightings, 2, (int)w);
  return name ? name : "unknown";
}

/* The keys of every entry, read before the method's own. */
typedef struct entry_keys {
  int method;    /* index in the registry */
  int weighting;
  char *label;   /* heap, or NULL */
  int sampling;  /* fg_sampling_kind, or -1: the experiment's sampling.kind */
} entry_keys;

enum { ENTRY_FIELDS = 4 };

typedef struct entry_fields {
  fg_choice names[32];
  fg_field fields[ENTRY_FIELDS];
} entry_fields;

/* name (one of the registry's) and weighting (default: the method's, once known). */
static void make_entry_fields(entry_fields *e, const fg_method_ops *ops) {
  int n = fg_method_count() < 32 ? fg_method_count() : 32;
  for (int i = 0; i < n; i++) e->names[i] = (fg_choice){fg_method_at(i)->name, i};
  e->fields[0] = (fg_field){.key = "name", .type = FG_FIELD_CHOICE, .offset = offsetof(entry_keys, method),
                            .required = 1, .choices = e->names, .n_choices = n, .doc = "the method"};
  e->fields[1] = (fg_field){.key = "weighting", .type = FG_FIELD_CHOICE, .offset = offsetof(entry_keys, weighting),
                            .def = ops ? ops->weighting : FG_WEIGHT_SAMPLES, .choices = weightings, .n_choices = 2,
                            .doc = "how updates are weighted in aggregation"};
  e->fields[2] = (fg_field){.key = "label", .type = FG_FIELD_STRING, .offset = offsetof(entry_keys, label),
                            .doc = "the entry's run folder and table row in a comparison (default: the name)"};
  e->fields[3] = (fg_field){.key = "sampling", .type = FG_FIELD_CHOICE, .offset = offsetof(entry_keys, sampling),
                            .def = -1, .choices = fg_sampling_kinds, .n_choices = FG_SAMPLING_KINDS,
                            .doc = "this entry's sampling kind (default: the experiment's sampling.kind)"};
}

const char *fg_method_label(const fg_method_config *m) { return m->label ? m->label : m->name; }

/* A label names a folder: letters, digits, '.', '_', '-', not starting with '.'. */
static fg_status check_label(fg_schema_ctx *c, const char *label) {
  if (!label) return FG_OK;
  int ok = label[0] != '.';
  for (const char *p = label; ok && *p; p++)
    ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
         *p == '_' || *p == '-';
  if (ok && strlen(label) <= 64) return FG_OK;
  return fg_schema_fail_key(c, "label", "'%s' is not a folder name (expected up to 64 letters, digits, '.', '_' "
                            "or '-', not starting with '.')", label);
}

/* A method's options in order: the shared ones, then its own. */
static int option_count(const fg_method_ops *ops) { return ops->n_shared_options + ops->n_options; }

static const fg_field *option_at(const fg_method_ops *ops, int i) {
  return i < ops->n_shared_options ? &ops->shared_options[i] : &ops->options[i - ops->n_shared_options];
}

static const fg_field *find_option(const fg_method_ops *ops, const char *key) {
  for (int i = 0; i < option_count(ops); i++)
    if (strcmp(option_at(ops, i)->key, key) == 0) return option_at(ops, i);
  return NULL;
}

/* "weighting, rates, scaler, ...": what `ops` takes. */
static void options_taken(const fg_method_ops *ops, char *out, size_t cap) {
  size_t len = (size_t)snprintf(out, cap, "weighting, sampling");
  for (int i = 0; i < option_count(ops) && len < cap; i++)
    len += (size_t)snprintf(out + len, cap - len, ", %s", option_at(ops, i)->key);
}

/* A key the entry's method does not have: an option of another method is named as such; any
 * other key is left to the walker's "unknown key". */
static fg_status other_method_key(fg_schema_ctx *c, const char *key, void *arg) {
  const fg_method_ops *ops = arg;
  for (int m = 0; m < fg_method_count(); m++) {
    if (!find_option(fg_method_at(m), key)) continue;
    char takes[512];
    options_taken(ops, takes, sizeof takes);
    return fg_schema_fail_key(c, key, "method %s does not take '%s' (it takes: %s)", ops->name, key, takes);
  }
  return FG_OK;
}

fg_status fg_method_config_read(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *node, const char *arch,
                                fg_method_config *out) {
  memset(out, 0, sizeof *out);
  entry_fields e;
  entry_keys keys = {-1, 0, NULL, -1};
  make_entry_fields(&e, NULL);
  if (!node || node->type != YAML_MAPPING_NODE)
    return fg_schema_read_mapping(c, doc, node, e.fields, ENTRY_FIELDS, &keys);
  yaml_node_t *name = fg_schema_lookup(doc, node, "name");
  if (!name) return fg_schema_fail_key(c, "name", "required key is missing");
  size_t mark = fg_schema_push_key(c, "name");
  fg_status st = fg_schema_read_value(c, doc, name, &e.fields[0], &keys);
  fg_schema_pop(c, mark);
  if (st != FG_OK) return st;

  const fg_method_ops *ops = fg_method_at(keys.method);
  if (ops->n_options > MAX_OPTIONS) return FG_FAIL(FG_ERR_INTERNAL, "method %s: too many options", ops->name);
  make_entry_fields(&e, ops);
  void *options = ops->options_size ? calloc(1, ops->options_size) : NULL;
  if (ops->options_size && !options) return FG_FAIL(FG_ERR_OOM, "out of memory");
  unsigned char given[MAX_OPTIONS] = {0};
  fg_field_group groups[3] = {{e.fields, ENTRY_FIELDS, &keys, NULL},
                              {ops->shared_options, ops->n_shared_options, options, NULL},
                              {ops->options, ops->n_options, options, given}};
  st = fg_schema_read(c, doc, node, groups, 3, other_method_key, (void *)ops);
  if (st == FG_OK && ops->check_options) st = ops->check_options(c, options, given, arch);
  if (st == FG_OK) st = check_label(c, keys.label);
  if (st != FG_OK) {
    free(options);
    free(keys.label);
    return st;
  }
  out->name = ops->name;
  out->label = keys.label;
  out->weighting = (fg_weighting)keys.weighting;
  out->sampling = keys.sampling;
  out->options = options;
  return FG_OK;
}

/* An override of the entry's name: not an option. */
static int sets_name(const char *set) {
  return set && strncmp(set, "name", 4) == 0 && (set[4] == '=' || set[4] == '.' || set[4] == '[');
}

fg_status fg_method_config_with(const char *name, const char *arch, const char *const *set, int n_set,
                                fg_method_config *out) {
  if (!out) return FG_FAIL(FG_ERR_INVALID, "fg_method_config_with: null output");
  memset(out, 0, sizeof *out);
  if (n_set < 0 || (n_set > 0 && !set)) return FG_FAIL(FG_ERR_INVALID, "fg_method_config_with: bad overrides");
  const fg_method_ops *ops = fg_method_find(name);
  if (!ops) return fg_last_status();
  if (!arch || fg_model_block_count(arch) <= 0)
    return FG_FAIL(FG_ERR_CONFIG, "unknown architecture '%s' (expected one of: %s)", arch ? arch : "",
                   fg_model_arch_list());
  char label[64];
  snprintf(label, sizeof label, "method %s", ops->name);
  fg_schema_ctx c;
  FG_TRY(fg_schema_init(&c, label, set, n_set));
  c.top = "the method's options";
  fg_status st = FG_OK;
  for (int k = 0; k < n_set && st == FG_OK; k++)
    if (sets_name(set[k]))
      st = fg_schema_fail_at(&c, "", "--set %s: name is not an option (the method is %s)", set[k], ops->name);
  yaml_document_t doc;
  int have_doc = 0;
  if (st == FG_OK) st = fg_schema_new_document(&doc);
  have_doc = st == FG_OK;
  if (st == FG_OK) st = fg_schema_add_pair(&doc, yaml_document_get_root_node(&doc), "name", ops->name);
  if (st == FG_OK) st = fg_schema_apply_sets(&c, &doc);
  if (st == FG_OK) st = fg_method_config_read(&c, &doc, yaml_document_get_root_node(&doc), arch, out);
  if (have_doc) yaml_document_delete(&doc);
  fg_schema_release(&c);
  return st;
}

fg_status fg_method_config_default(const char *name, const char *arch, fg_method_config *out) {
  return fg_method_config_with(name, arch, NULL, 0, out);
}

void fg_method_config_free(fg_method_config *m) {
  if (!m) return;
  free(m->options);
  free(m->label);
  memset(m, 0, sizeof *m);
}

static int list_is_empty(const fg_field *f, const void *options) {
  if (f->type != FG_FIELD_REALS && f->type != FG_FIELD_INTS) return 0;
  return *(const int *)((const char *)options + f->count_offset) == 0;
}

fg_status fg_method_config_write(FILE *f, const fg_method_config *m, const char *first, const char *indent) {
  const fg_method_ops *ops = m->name ? fg_method_find(m->name) : NULL;
  if (!ops || (ops->options_size && !m->options))
    return FG_FAIL(FG_ERR_INVALID, "fg_config_write_resolved: method '%s' is not configured", m->name ? m->name : "");
  fprintf(f, "%sname: %s\n", first, ops->name);
  if (m->label) fprintf(f, "%slabel: %s\n", indent, m->label);
  fprintf(f, "%sweighting: %s\n", indent, fg_weighting_name(m->weighting));
  if (m->sampling >= 0) fprintf(f, "%ssampling: %s\n", indent, fg_choice_name(fg_sampling_kinds, FG_SAMPLING_KINDS, m->sampling));
  const char *last_note = NULL;
  for (int i = 0; i < option_count(ops); i++) {
    const fg_field *o = option_at(ops, i);
    int own = i - ops->n_shared_options;
    const char *note = ops->option_note && own >= 0 ? ops->option_note(m->options, own) : NULL;
    if (note) {
      if (!last_note || strcmp(note, last_note) != 0) fprintf(f, "%s# %s\n", indent, note);
      last_note = note;
      continue;
    }
    last_note = NULL;
    if (list_is_empty(o, m->options) && o->absent) {
      fprintf(f, "%s# %s: %s\n", indent, o->key, o->absent);
      continue;
    }
    char text[TEXT_CAP];
    fg_schema_value_text(o, m->options, text, sizeof text);
    fprintf(f, "%s%s: %s\n", indent, o->key, text);
  }
  return FG_OK;
}

fg_status fg_method_option_text(const fg_method_config *m, const char *key, char *buf, size_t cap) {
  const fg_method_ops *ops = m && m->name ? fg_method_find(m->name) : NULL;
  if (!ops) return FG_FAIL(FG_ERR_CONFIG, "no method configured");
  if (strcmp(key, "weighting") == 0) {
    snprintf(buf, cap, "%s", fg_weighting_name(m->weighting));
    return FG_OK;
  }
  const fg_field *o = find_option(ops, key);
  if (!o) return FG_FAIL(FG_ERR_CONFIG, "method %s has no option '%s'", ops->name, key);
  fg_schema_value_text(o, m->options, buf, cap);
  return FG_OK;
}
