/* Comparing run folders (run_compare.h). */
#include "common/run_compare.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/test_util.h"
#include "engine/io/safetensors.h"

void fgt_same_tensors(const char *a, const char *b) {
  fg_st_file *fa, *fb;
  FGT_OK(fg_st_open(a, &fa));
  FGT_OK(fg_st_open(b, &fb));
  cr_assert_eq(fg_st_count(fa), fg_st_count(fb), "%s and %s hold different tensor counts", a, b);
  for (size_t i = 0; i < fg_st_count(fa); i++) {
    const fg_st_entry *ea = fg_st_entry_at(fa, i), *eb = fg_st_find(fb, ea->name);
    cr_assert_not_null(eb, "%s is missing from %s", ea->name, b);
    cr_assert_eq(ea->nbytes, eb->nbytes, "%s", ea->name);
    cr_assert_eq(memcmp(ea->data, eb->data, ea->nbytes), 0, "%s differs between %s and %s", ea->name, a, b);
  }
  const char *keys[] = {"round", "method", "partition", FG_ST_CRC_KEY};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
    const char *va = fg_st_metadata(fa, keys[k]), *vb = fg_st_metadata(fb, keys[k]);
    cr_assert((va == NULL) == (vb == NULL) && (!va || strcmp(va, vb) == 0), "metadata %s: %s in %s, %s in %s",
              keys[k], va ? va : "(none)", a, vb ? vb : "(none)", b);
  }
  fg_st_close(fa);
  fg_st_close(fb);
}

static const char *const VARYING[] = {"seconds", "elapsed", "transfer_seconds", "process_peak",
                                      "process_peak_bytes", "wall_seconds"};

static void drop_varying(cJSON *o) {
  for (size_t i = 0; i < sizeof VARYING / sizeof VARYING[0]; i++)
    cJSON_DeleteItemFromObjectCaseSensitive(o, VARYING[i]);
  cJSON *clients = cJSON_GetObjectItemCaseSensitive(o, "clients");
  for (cJSON *c = clients ? clients->child : NULL; c; c = c->next) drop_varying(c);
}

/* The JSON of one line / file with the varying fields removed, printed (malloc'd). */
static char *stable_text(const char *json, const char *what) {
  cJSON *o = cJSON_Parse(json);
  cr_assert_not_null(o, "%s is not JSON", what);
  drop_varying(o);
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return text;
}

static char *next_line(char **at) {
  char *p = *at;
  if (!p || !*p) return NULL;
  char *nl = strchr(p, '\n');
  if (nl) {
    *nl = '\0';
    *at = nl + 1;
  } else {
    *at = p + strlen(p);
  }
  return p;
}

/* The JSON texts a and b (named in messages) are equal once the varying fields are dropped. */
static void same_stable(const char *a, const char *b, const char *what, int record) {
  char *sa = stable_text(a, what), *sb = stable_text(b, what);
  cr_assert_str_eq(sa, sb, "%s, record %d, differs:\n%s\n%s", what, record, sa, sb);
  cJSON_free(sa);
  cJSON_free(sb);
}

static void same_file(const char *dir_a, const char *dir_b, const char *name, int by_line) {
  char *pa = fgt_join(dir_a, name), *pb = fgt_join(dir_b, name);
  char *ta = fgt_read_text(pa), *tb = fgt_read_text(pb);
  char *ca = ta, *cb = tb;
  for (int record = 1;; record++) {
    char *la = by_line ? next_line(&ca) : (record == 1 ? ta : NULL);
    char *lb = by_line ? next_line(&cb) : (record == 1 ? tb : NULL);
    if (!la || !lb) {
      cr_assert(!la && !lb, "%s and %s hold different numbers of records (%d and more)", pa, pb, record - 1);
      break;
    }
    same_stable(la, lb, pb, record);
  }
  free(ta);
  free(tb);
  free(pa);
  free(pb);
}

void fgt_same_run_records(const char *dir_a, const char *dir_b) {
  same_file(dir_a, dir_b, "metrics.jsonl", 1);
  same_file(dir_a, dir_b, "summary.json", 0);
}
