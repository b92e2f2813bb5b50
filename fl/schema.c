/* Schemas (fl/schema.h): the error context with its key path and --set notes, and values as text.
 * The libyaml side (parsing, --set, the walker) is in fl/schema_yaml.c. */
#include "fl/schema.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- context and key path ------------------------------------------------------------------ */

fg_status fg_schema_init(fg_schema_ctx *c, const char *file, const char *const *set, int n_set) {
  memset(c, 0, sizeof *c);
  c->file = file;
  c->set = set;
  c->n_set = n_set;
  if (n_set > 0) {
    c->set_paths = calloc((size_t)n_set, sizeof *c->set_paths);
    if (!c->set_paths) return FG_FAIL(FG_ERR_OOM, "out of memory");
  }
  return FG_OK;
}

void fg_schema_release(fg_schema_ctx *c) {
  for (int i = 0; i < c->n_set && c->set_paths; i++) free(c->set_paths[i]);
  free(c->set_paths);
  c->set_paths = NULL;
}

/* Appends `text` (already formatted) to the path; the mark to pop back to. */
static size_t path_append(fg_schema_ctx *c, const char *text) {
  size_t old = c->path_len;
  int n = snprintf(c->path + old, sizeof c->path - old, "%s", text);
  if (n > 0) c->path_len = old + (size_t)n < sizeof c->path ? old + (size_t)n : sizeof c->path - 1;
  return old;
}

size_t fg_schema_push_key(fg_schema_ctx *c, const char *key) {
  size_t mark = c->path_len;
  if (mark) path_append(c, ".");
  path_append(c, key);
  return mark;
}

size_t fg_schema_push_index(fg_schema_ctx *c, size_t index) {
  char text[32];
  snprintf(text, sizeof text, "[%zu]", index);
  return path_append(c, text);
}

void fg_schema_pop(fg_schema_ctx *c, size_t mark) {
  c->path_len = mark;
  c->path[mark] = '\0';
}

/* ---- errors -------------------------------------------------------------------------------- */

/* 1 when `a` is `b` or a key below it ("a.x", "a[1]"). */
static int path_within(const char *a, const char *b) {
  size_t n = strlen(b);
  return n > 0 && strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '.' || a[n] == '[');
}

/* The override a value at `path` came from (the latest that set it, something holding it or
 * something below it), or NULL. */
static const char *set_origin(const fg_schema_ctx *c, const char *path) {
  for (int i = c->n_set - 1; i >= 0 && path && *path; i--)
    if (c->set_paths && c->set_paths[i] && (path_within(path, c->set_paths[i]) || path_within(c->set_paths[i], path)))
      return c->set[i];
  return NULL;
}

/* "file: shown: message (from --set ...)", the note for the value at `about`. */
static fg_status vfail_about(fg_schema_ctx *c, const char *shown, const char *about, const char *fmt, va_list ap) {
  char msg[640];
  vsnprintf(msg, sizeof msg, fmt, ap);
  const char *origin = set_origin(c, about);
  int has_path = shown && *shown;
  return FG_FAIL(FG_ERR_CONFIG, "%s: %s%s%s%s%s%s", c->file, has_path ? shown : "", has_path ? ": " : "", msg,
                 origin ? " (from --set " : "", origin ? origin : "", origin ? ")" : "");
}

static fg_status vfail(fg_schema_ctx *c, const char *path, const char *fmt, va_list ap) {
  return vfail_about(c, path, path, fmt, ap);
}

static fg_status fail_about(fg_schema_ctx *c, const char *about, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static fg_status fail_about(fg_schema_ctx *c, const char *about, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fg_status st = vfail_about(c, "", about, fmt, ap);
  va_end(ap);
  return st;
}

fg_status fg_schema_fail(fg_schema_ctx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fg_status st = vfail(c, c->path, fmt, ap);
  va_end(ap);
  return st;
}

fg_status fg_schema_fail_key(fg_schema_ctx *c, const char *key, const char *fmt, ...) {
  char path[sizeof c->path + 128];
  snprintf(path, sizeof path, "%s%s%s", c->path, c->path_len && key[0] && key[0] != '[' ? "." : "", key);
  va_list ap;
  va_start(ap, fmt);
  fg_status st = vfail(c, path, fmt, ap);
  va_end(ap);
  return st;
}

fg_status fg_schema_fail_at(fg_schema_ctx *c, const char *path, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fg_status st = vfail(c, path, fmt, ap);
  va_end(ap);
  return st;
}

fg_status fg_schema_fail_unknown(fg_schema_ctx *c, const char *key, const char *expected) {
  char where[sizeof c->path + 8], path[sizeof c->path + 128];
  if (c->path_len) snprintf(where, sizeof where, "in %s", c->path);
  else if (c->top) snprintf(where, sizeof where, "in %s", c->top);
  else snprintf(where, sizeof where, "at top level");
  snprintf(path, sizeof path, "%s%s%s", c->path, c->path_len ? "." : "", key);
  return fail_about(c, path, "unknown key '%.60s' %s (expected one of: %s)", key, where, expected);
}

/* ---- values as text ------------------------------------------------------------------------ */

void fg_schema_real_text(double v, char *buf, size_t cap) {
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(buf, cap, "%.*g", digits, v);
    if (strtod(buf, NULL) == v) return;
  }
}

int fg_schema_parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
  for (int i = 0; i < 3; i++) {
    if (strcasecmp(s, yes[i]) == 0) return *out = 1, 1;
    if (strcasecmp(s, no[i]) == 0) return *out = 0, 1;
  }
  return 0;
}

const char *fg_choice_name(const fg_choice *choices, int n, int value) {
  for (int i = 0; i < n; i++)
    if (choices[i].value == value) return choices[i].name;
  return NULL;
}

static int plain_safe(const char *s) {
  int b;
  if (!s[0] || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0 || fg_schema_parse_bool(s, &b)) return 0;
  if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9') ||
        s[0] == '_' || s[0] == '/' || s[0] == '.'))
    return 0;
  for (const char *p = s; *p; p++) {
    char ch = *p;
    int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
             ch == '-' || ch == '.' || ch == '/' || ch == '+';
    if (!ok) return 0;
  }
  return 1;
}

void fg_schema_put_string(FILE *f, const char *s) {
  if (plain_safe(s)) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\x%02x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

/* Appends to buf[cap] at *len, never past the end. */
static void append(char *buf, size_t cap, size_t *len, const char *text) {
  if (*len >= cap) return;
  int n = snprintf(buf + *len, cap - *len, "%s", text);
  if (n > 0) *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

static void list_text(const fg_field *f, const void *base, char *buf, size_t cap) {
  const char *at = (const char *)base + f->offset;
  int n = *(const int *)((const char *)base + f->count_offset);
  size_t len = 0;
  buf[0] = '\0';
  append(buf, cap, &len, "[");
  for (int i = 0; i < n; i++) {
    char item[40];
    if (f->type == FG_FIELD_REALS) fg_schema_real_text(((const double *)at)[i], item, sizeof item);
    else snprintf(item, sizeof item, "%d", ((const int *)at)[i]);
    append(buf, cap, &len, i ? ", " : "");
    append(buf, cap, &len, item);
  }
  append(buf, cap, &len, "]");
}

static void flags_text(const fg_field *f, int flags, char *buf, size_t cap) {
  size_t len = 0;
  int n = 0;
  buf[0] = '\0';
  append(buf, cap, &len, "[");
  for (int i = 0; i < f->n_choices; i++) {
    if (!(flags & f->choices[i].value)) continue;
    append(buf, cap, &len, n++ ? ", " : "");
    append(buf, cap, &len, f->choices[i].name);
  }
  append(buf, cap, &len, "]");
}

void fg_schema_value_text(const fg_field *f, const void *base, char *buf, size_t cap) {
  const void *at = (const char *)base + f->offset;
  switch (f->type) {
    case FG_FIELD_INT: snprintf(buf, cap, "%d", *(const int *)at); return;
    case FG_FIELD_UINT64: snprintf(buf, cap, "%llu", (unsigned long long)*(const uint64_t *)at); return;
    case FG_FIELD_REAL: fg_schema_real_text(*(const double *)at, buf, cap); return;
    case FG_FIELD_BOOL: snprintf(buf, cap, "%s", *(const int *)at ? "true" : "false"); return;
    case FG_FIELD_STRING: snprintf(buf, cap, "%s", *(char *const *)at ? *(char *const *)at : ""); return;
    case FG_FIELD_CHOICE: {
      const char *name = fg_choice_name(f->choices, f->n_choices, *(const int *)at);
      snprintf(buf, cap, "%s", name ? name : "?");
      return;
    }
    case FG_FIELD_FLAGS: flags_text(f, *(const int *)at, buf, cap); return;
    case FG_FIELD_REALS:
    case FG_FIELD_INTS: list_text(f, base, buf, cap); return;
    case FG_FIELD_MAPPING:
    case FG_FIELD_LATER: snprintf(buf, cap, "..."); return;
  }
}
