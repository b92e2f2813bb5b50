/* Schemas of configuration files, read from YAML (libyaml's node tree).
 *
 * A schema is a table of fields: key, type, where the value goes, default, range and a one-line
 * doc. The experiment's table is in fl/config.c; each method declares its options' table in its
 * own file (fg_method_ops.options, fl/method.h). One walker reads a mapping against tables:
 * it checks every value strictly (an int is a plain decimal, a float finite, a bool true/false,
 * yes/no or on/off), checks ranges, stores the values and fills the defaults, and every error
 * names the file, the key path (e.g. "methods[1].rates[2]") and what was expected, with the
 * --set override the value came from. Also here: parsing a file into a tree (a syntax error
 * names the line and column), --set overrides grafted into the tree before it is read, and the
 * text of a value as a resolved config.yaml writes it.
 *
 * Owns: the context's copies of the overrides' key paths (fg_schema_release); the heap strings
 * the walker stores in STRING fields belong to the destination. */
#ifndef FG_FL_SCHEMA_H
#define FG_FL_SCHEMA_H

#include <stddef.h>
#include <stdio.h>
#include <yaml.h>

#include "engine/base/status.h"

typedef enum fg_field_type {
  FG_FIELD_INT,     /* int */
  FG_FIELD_UINT64,  /* uint64_t, >= 0 */
  FG_FIELD_REAL,    /* double, finite */
  FG_FIELD_BOOL,    /* int: 0 or 1 */
  FG_FIELD_STRING,  /* char *: a non-empty heap copy; NULL when absent */
  FG_FIELD_CHOICE,  /* int: the value of the entry of `choices` named */
  FG_FIELD_FLAGS,   /* int: the values of the entries of `choices` listed, ORed (a list, maybe empty) */
  FG_FIELD_REALS,   /* double[max_len], the entry count an int at count_offset */
  FG_FIELD_INTS,    /* int[max_len], likewise */
  FG_FIELD_MAPPING, /* a nested mapping of `fields`, their offsets from the same base */
  FG_FIELD_LATER,   /* a known key whose value the caller reads after the walk */
} fg_field_type;

typedef struct fg_choice {
  const char *name;
  int value;
} fg_choice;

typedef struct fg_field {
  const char *key;
  fg_field_type type;
  size_t offset;       /* where the value goes, from the base the table is read into */
  size_t count_offset; /* REALS, INTS: where the entry count goes */
  int required;        /* absent: an error */
  /* Absent (and not required): `def` (INT, UINT64, REAL, BOOL, CHOICE, FLAGS), the n_def
   * entries of def_reals / def_ints (REALS, INTS), or the defaults of the fields (MAPPING). */
  double def;
  const double *def_reals;
  const int *def_ints;
  int n_def;
  /* Range of a given number, or of each entry of a list: [min, max], an end open with
   * min_open / max_open, max = INFINITY for none. min == max (both 0 when not written): none. */
  double min, max;
  int min_open, max_open;
  int min_len, max_len;     /* REALS, INTS: entries (max_len is the arrays' size) */
  int order;                /* REALS, INTS: -1 entries strictly descending, 1 strictly increasing, 0 any */
  const char *entry;        /* with an order: what an entry is called in messages ("rate") */
  const fg_choice *choices; /* CHOICE, FLAGS */
  int n_choices;
  const struct fg_field *fields; /* MAPPING */
  int n_fields;
  const char *absent; /* REALS, INTS without default: what no entries mean (a resolved file's comment) */
  const char *doc;    /* one line: what it is */
} fg_field;

/* The error context: the file (or what stands for it) and the overrides, named in every message,
 * and the key path of the value being read. Fields are the walker's; use the functions. */
typedef struct fg_schema_ctx {
  const char *file;
  const char *top;        /* what the top-level mapping is called in messages (NULL: "top level") */
  const char *const *set; /* the overrides as given, "key.path=value" */
  char **set_paths;       /* their canonical key paths ("methods[2].rates") once applied */
  int n_set;
  char path[512];
  size_t path_len;
} fg_schema_ctx;

/* A context for `file` (any label: it starts every message) with n_set overrides. */
fg_status fg_schema_init(fg_schema_ctx *c, const char *file, const char *const *set, int n_set);
void fg_schema_release(fg_schema_ctx *c);

/* The key path: push a key or a list index, pop back to the mark a push returned. */
size_t fg_schema_push_key(fg_schema_ctx *c, const char *key);
size_t fg_schema_push_index(fg_schema_ctx *c, size_t index);
void fg_schema_pop(fg_schema_ctx *c, size_t mark);

/* FG_ERR_CONFIG "file: key.path: message (from --set ...)": at the current path, at the current
 * path's `key` ("rates", "exits[2]"), or at `path` from the top ("" for the whole document). The
 * --set note is added when the override set the key, a mapping or list holding it, or a key
 * below it. */
fg_status fg_schema_fail(fg_schema_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
fg_status fg_schema_fail_key(fg_schema_ctx *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
fg_status fg_schema_fail_at(fg_schema_ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "file: unknown key 'key' in path (expected one of: expected)" for a key of the current mapping
 * (the message names the key and the mapping; the --set note is the key's). */
fg_status fg_schema_fail_unknown(fg_schema_ctx *c, const char *key, const char *expected);

/* ---- the YAML side ----------------------------------------------------------------------- */

/* Parses c->file into `doc` (at most 16 MiB; an empty file is an empty mapping). FG_ERR_IO when
 * it cannot be read; FG_ERR_CONFIG for malformed YAML (naming line and column), a second
 * document, or a top level that is not a mapping. */
fg_status fg_schema_load_file(fg_schema_ctx *c, yaml_document_t *doc);
/* A document holding an empty mapping, and a plain "key: value" added to a mapping node. */
fg_status fg_schema_new_document(yaml_document_t *doc);
fg_status fg_schema_add_pair(yaml_document_t *doc, yaml_node_t *map, const char *key, const char *value);
/* Applies the context's overrides in order: each "dotted.key=value" (value: a YAML scalar or flow
 * value; list entries as key[N]) replaces or adds the value at that path; mapping keys missing
 * along the path are created. */
fg_status fg_schema_apply_sets(fg_schema_ctx *c, yaml_document_t *doc);

/* Tables read together from one mapping: each group's values go to its own base; given[i] (when
 * not NULL) is set to 1 where the mapping holds the group's field i. */
typedef struct fg_field_group {
  const fg_field *fields;
  int n_fields;
  void *base;
  unsigned char *given;
} fg_field_group;
/* What to say about a key no group holds (the context's path is the mapping's): FG_OK leaves it to
 * the walker's "unknown key" error, which lists every group's keys; anything else is the error. */
typedef fg_status (*fg_unknown_key)(fg_schema_ctx *c, const char *key, void *arg);

/* Reads mapping `node` (at the context's path) against the groups, fills the defaults of the
 * fields it lacks, and reports the first mistake: not a mapping, an unknown or repeated key, a
 * value of the wrong type or out of range, a required key missing. */
fg_status fg_schema_read(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *node, const fg_field_group *groups,
                         int n_groups, fg_unknown_key unknown, void *arg);
/* One table, no hook. */
fg_status fg_schema_read_mapping(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *node, const fg_field *fields,
                                 int n_fields, void *base);
/* The value of field `f` alone (at the context's path), into base + f->offset. */
fg_status fg_schema_read_value(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *node, const fg_field *f,
                               void *base);
/* The value of `key` in mapping `map`, or NULL; `dotted` follows nested mappings ("a.b.c"). */
yaml_node_t *fg_schema_lookup(yaml_document_t *doc, yaml_node_t *map, const char *dotted);
/* `node` must be a list of min..max entries (max 0: no limit): its entry count, or an error. */
fg_status fg_schema_list(fg_schema_ctx *c, yaml_node_t *node, size_t min, size_t max, size_t *count);
yaml_node_t *fg_schema_list_item(yaml_document_t *doc, yaml_node_t *list, size_t i);

/* ---- values as text ---------------------------------------------------------------------- */

/* Field `f`'s value at base + f->offset as a resolved config.yaml writes it: "3", "0.1" (the
 * shortest text that reads back as the same double), "true", a choice's name, "[1, 0.5]",
 * "[noop_writeback, dup_avg]". */
void fg_schema_value_text(const fg_field *f, const void *base, char *buf, size_t cap);
/* The shortest text that reads back as exactly `v`. */
void fg_schema_real_text(double v, char *buf, size_t cap);
/* A string as a YAML scalar: plain when that is unambiguous, else double-quoted. */
void fg_schema_put_string(FILE *f, const char *s);
/* The name of `choices`' entry of `value`, or NULL. */
const char *fg_choice_name(const fg_choice *choices, int n, int value);
/* 1 and *out for "true", "yes", "on" (1) and "false", "no", "off" (0), any case; else 0. */
int fg_schema_parse_bool(const char *s, int *out);

#endif
