/* The start-up check of a spread run and its end. */
#include "fl/spread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fl/config.h"
#include "fl/job.h"

enum { CONFIG_TEXT_CAP = 1 << 20, VERDICT_CAP = 4 + 512 };

int fg_spread_active(const fg_transport *t) { return t && t->size > 1; }

/* Line `line` (1-based) of text into out (without its newline, cut to fit). */
static void copy_line(const char *text, int line, char *out, size_t cap) {
  for (int l = 1; l < line && text; l++) {
    text = strchr(text, '\n');
    if (text) text++;
  }
  size_t n = text ? strcspn(text, "\n") : 0;
  if (n >= cap) n = cap - 1;
  memcpy(out, text ? text : "", n);
  out[n] = '\0';
}

/* The first line (1-based) where a and b differ; 0 when they are equal. */
static int first_difference(const char *a, const char *b) {
  int line = 1;
  for (size_t i = 0;; i++) {
    if (a[i] != b[i]) return line;
    if (a[i] == '\0') return 0;
    line += a[i] == '\n';
  }
}

/* Phase 1: rank 0's configuration to every process, which notes where its own differs. */
static fg_status compare_config(const fg_transport *t, const fg_identity *mine, fg_identity_record *r) {
  char *root = malloc(CONFIG_TEXT_CAP);
  if (!root) return FG_FAIL(FG_ERR_OOM, "out of memory for the configuration check");
  size_t len = 0;
  if (t->rank == 0) {
    const char *text = mine->config_text ? mine->config_text : "";
    len = strlen(text) + 1;
    if (len > CONFIG_TEXT_CAP) len = CONFIG_TEXT_CAP;
    memcpy(root, text, len);
    root[len - 1] = '\0';
  }
  fg_status s = t->broadcast(t->ctx, root, &len, CONFIG_TEXT_CAP);
  if (s == FG_OK && (len == 0 || root[len - 1] != '\0'))
    s = FG_FAIL(FG_ERR_FORMAT, "the configuration rank 0 sent is not a text");
  if (s == FG_OK && mine->config_text) {
    r->diff_line = first_difference(mine->config_text, root);
    if (r->diff_line) {
      copy_line(mine->config_text, r->diff_line, r->diff_mine, sizeof r->diff_mine);
      copy_line(root, r->diff_line, r->diff_root, sizeof r->diff_root);
    }
  }
  free(root);
  return s;
}

/* How rank k's record differs from rank 0's, into msg; FG_OK when it does not. */
static fg_status judge(int k, const fg_identity_record *r, const fg_identity_record *root, char *msg, size_t cap) {
  if (r->status != FG_OK) {
    snprintf(msg, cap, "rank %d (%s): %s", k, r->host, r->error);
    return r->status;
  }
  if (k == 0) return FG_OK;
  if (r->phase == 1 && strcmp(r->revision, root->revision) != 0) {
    snprintf(msg, cap, "rank %d (%s) runs fedgap %s and rank 0 runs %s: run the same build everywhere", k, r->host,
             r->revision, root->revision);
    return FG_ERR_CONFIG;
  }
  if (r->phase == 1 && strcmp(r->kernels, root->kernels) != 0) {
    snprintf(msg, cap, "rank %d (%s) computes with %s and rank 0 with %s: the results would differ (set "
             "OPENBLAS_CORETYPE to one core type on every node)", k, r->host, r->kernels, root->kernels);
    return FG_ERR_CONFIG;
  }
  if (r->phase == 1 && (r->config_hash != root->config_hash || r->diff_line)) {
    snprintf(msg, cap, "rank %d (%s) has another configuration than rank 0: line %d '%s' where rank 0 has '%s'", k,
             r->host, r->diff_line, r->diff_mine, r->diff_root);
    return FG_ERR_CONFIG;
  }
  if (r->phase == 2 && (r->partition_hash != root->partition_hash || r->local_test_hash != root->local_test_hash)) {
    snprintf(msg, cap, "rank %d (%s) has another partition than rank 0 (hash %016llx, rank 0 %016llx): give every "
             "process the same dataset files", k, r->host, (unsigned long long)r->partition_hash,
             (unsigned long long)root->partition_hash);
    return FG_ERR_CONFIG;
  }
  return FG_OK;
}

/* Rank 0: the verdict over every process's record in all [size x FG_IDENTITY_BYTES]. */
static fg_status verdict(const fg_transport *t, const unsigned char *all, char *msg, size_t cap) {
  fg_identity_record root, r;
  FG_TRY(fg_identity_decode(all, &root));
  for (int k = 0; k < t->size; k++) {
    fg_status s = fg_identity_decode(all + (size_t)k * FG_IDENTITY_BYTES, &r);
    if (s != FG_OK) {
      snprintf(msg, cap, "rank %d: %s", k, fg_last_error());
      return s;
    }
    s = judge(k, &r, &root, msg, cap);
    if (s != FG_OK) return s;
  }
  return FG_OK;
}

fg_status fg_spread_agree(const fg_transport *t, const fg_identity *mine) {
  if (!fg_spread_active(t))
    return mine->status == FG_OK ? FG_OK : FG_FAIL(mine->status, "%s", mine->error ? mine->error : "failed");
  fg_identity_record r;
  memset(&r, 0, sizeof r);
  r.phase = mine->phase;
  r.status = mine->status;
  snprintf(r.error, sizeof r.error, "%s", mine->status != FG_OK && mine->error ? mine->error : "");
  r.config_hash = fg_text_hash(mine->config_text);
  r.partition_hash = mine->partition_hash;
  r.local_test_hash = mine->local_test_hash;
  snprintf(r.revision, sizeof r.revision, "%s", mine->revision ? mine->revision : "");
  snprintf(r.kernels, sizeof r.kernels, "%s", mine->kernels ? mine->kernels : "");
  if (gethostname(r.host, sizeof r.host) != 0) snprintf(r.host, sizeof r.host, "?");
  r.host[sizeof r.host - 1] = '\0';
  if (mine->phase == 1) FG_TRY(compare_config(t, mine, &r));
  unsigned char one[FG_IDENTITY_BYTES], *all = NULL;
  FG_TRY(fg_identity_encode(&r, one));
  if (t->rank == 0 && !(all = malloc((size_t)t->size * FG_IDENTITY_BYTES)))
    return FG_FAIL(FG_ERR_OOM, "out of memory for the start-up check");
  fg_status s = t->gather(t->ctx, one, sizeof one, all);
  /* The verdict: 4 bytes of status (little-endian), then the message. */
  unsigned char v[VERDICT_CAP];
  size_t len = 0;
  if (s == FG_OK && t->rank == 0) {
    char msg[VERDICT_CAP - 4] = "";
    fg_status judged = verdict(t, all, msg, sizeof msg);
    for (int i = 0; i < 4; i++) v[i] = (unsigned char)((unsigned)judged >> (8 * i));
    len = 4 + strlen(msg) + 1;
    memcpy(v + 4, msg, len - 4);
  }
  free(all);
  if (s == FG_OK) s = t->broadcast(t->ctx, v, &len, sizeof v);
  if (s != FG_OK) return s;
  if (len < 5 || v[len - 1] != '\0') return FG_FAIL(FG_ERR_FORMAT, "the start-up verdict rank 0 sent is malformed");
  unsigned code = (unsigned)v[0] | (unsigned)v[1] << 8 | (unsigned)v[2] << 16 | (unsigned)v[3] << 24;
  if (code >= FG_STATUS_COUNT) return FG_FAIL(FG_ERR_FORMAT, "the start-up verdict rank 0 sent is malformed");
  return code == FG_OK ? FG_OK : FG_FAIL((fg_status)code, "%s", (const char *)v + 4);
}

fg_status fg_spread_end(const fg_transport *t, fg_status status) {
  if (!fg_spread_active(t) || t->rank != 0) return FG_OK;
  fg_wire_header h;
  memset(&h, 0, sizeof h);
  h.kind = FG_WIRE_RUN_END;
  h.status = status;
  unsigned char buf[64];
  size_t len = 0;
  FG_TRY(fg_wire_header_encode(&h, NULL, buf, sizeof buf, &len));
  return t->broadcast(t->ctx, buf, &len, sizeof buf);
}
