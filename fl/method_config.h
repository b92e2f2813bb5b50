/* A method's configuration: its name, its weighting and its own options.
 *
 * Each method declares its options once, in its own file, as a table (fg_method_ops.options in
 * fl/method.h; field types in fl/schema.h) and a struct holding their values. This module walks
 * that table for everything else: it reads a `method` entry of an experiment file (types,
 * ranges, defaults, an option of another method named as such, then the method's own rules
 * across options), builds a configuration from --set style overrides (`fedgap memplan`), and
 * writes an entry back as the resolved config.yaml holds it. The registry (fl/method.h) is the
 * only list of methods.
 *
 * Owns: the options struct a configuration points to (fg_method_config_free). */
#ifndef FG_FL_METHOD_CONFIG_H
#define FG_FL_METHOD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "engine/base/status.h"
#include "fl/schema.h"
#include "fl/spec.h"

enum { FG_MAX_LEVELS = 8 }; /* levels of a method, and entries of a method's list option */

typedef struct fg_method_config {
  const char *name;       /* the method's name in the registry (static) */
  char *label;            /* the entry's own label (heap, owned), or NULL: the name. A comparison's
                             run folder and table row of the entry (fg_method_label) */
  fg_weighting weighting; /* every method's option; its default is the method's (fg_method_ops) */
  int sampling;           /* every method's option: its fg_sampling_kind, or -1 (the default): the
                             experiment's sampling.kind */
  void *options;          /* the method's own options: the struct its file defines, every field
                             filled (given or default); NULL for a method without options */
} fg_method_config;

/* Reads the method entry `node` (at the context's key path, e.g. "methods[2]") for model `arch`
 * into *out: `name` first (one of the registry's), then every other key against the method's
 * table; a key another method takes is "method X does not take 'k' (it takes: ...)". On failure
 * FG_ERR_CONFIG naming the file and key path, and *out is empty. */
fg_status fg_method_config_read(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *node, const char *arch,
                                fg_method_config *out);
/* The configuration of method `name` for model `arch` with n_set overrides "option=value" of its
 * options (e.g. "output_module=bn_relu", "rates=[1, 0.5]"), checked exactly as the same keys in a
 * config file's method entry, defaults filled as for an entry naming only the method. Messages
 * read "method NAME: key: ... (from --set option=value)". FG_ERR_CONFIG for an unknown method or
 * architecture, an option the method does not take, a bad value, or an override of `name`. Free
 * with fg_method_config_free. */
fg_status fg_method_config_with(const char *name, const char *arch, const char *const *set, int n_set,
                                fg_method_config *out);
/* fg_method_config_with without overrides: every option at its default. */
fg_status fg_method_config_default(const char *name, const char *arch, fg_method_config *out);
void fg_method_config_free(fg_method_config *m);
/* The entry's label, or its method's name when it has none. */
const char *fg_method_label(const fg_method_config *m);

/* Writes the entry's keys (name, weighting, the options in table order) as the resolved
 * config.yaml holds them; `first` starts the first line ("  " or "  - "), `indent` the others.
 * An option the entry's other options leave unused, and a list left to the method (no entries),
 * is a comment. FG_ERR_INVALID for a configuration that names no known method. */
fg_status fg_method_config_write(FILE *f, const fg_method_config *m, const char *first, const char *indent);
/* Option `key` (weighting included) as text, as the resolved config.yaml writes it ("0.5",
 * "[1, 0.5]", "sequential", "true"); FG_ERR_CONFIG when the method has no such option. */
fg_status fg_method_option_text(const fg_method_config *m, const char *key, char *buf, size_t cap);
/* "samples" or "count". */
const char *fg_weighting_name(fg_weighting w);

#endif
