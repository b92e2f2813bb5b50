/* safetensors export and import of a graph's state. */
#include "engine/nn/weights.h"

#include "engine/io/safetensors.h"

fg_status fg_weights_save(const fg_graph *g, const float *state, const char *path,
                          const char *const *meta_keys, const char *const *meta_values, int n_meta) {
  fg_st_writer w;
  fg_st_writer_init(&w);
  fg_status s = FG_OK;
  for (int i = 0; i < fg_graph_param_count(g) && s == FG_OK; i++) {
    const fg_param *p = fg_graph_param(g, i);
    s = fg_st_writer_add(&w, p->name, FG_ST_F32, p->ndim, p->shape, state + p->offset);
  }
  for (int k = 0; k < n_meta && s == FG_OK; k++) s = fg_st_writer_set_metadata(&w, meta_keys[k], meta_values[k]);
  if (s == FG_OK) s = fg_st_writer_write(&w, path);
  fg_st_writer_free(&w);
  return s;
}

fg_status fg_weights_load(const fg_graph *g, const char *path, float *state) {
  fg_st_file *f = NULL;
  FG_TRY(fg_st_open(path, &f));
  fg_status s = fg_weights_read(g, f, state);
  fg_st_close(f);
  return s;
}

fg_status fg_weights_read(const fg_graph *g, const fg_st_file *f, float *state) {
  const char *path = fg_st_path(f);
  fg_status s = FG_OK;
  for (int i = 0; i < fg_graph_param_count(g) && s == FG_OK; i++) {
    const fg_param *p = fg_graph_param(g, i);
    s = fg_st_read_f32(f, p->name, p->ndim, p->shape, state + p->offset);
  }
  for (size_t i = 0; i < fg_st_count(f) && s == FG_OK; i++) {
    const fg_st_entry *e = fg_st_entry_at(f, i);
    if (fg_graph_find_param(g, e->name) < 0)
      s = FG_FAIL(FG_ERR_FORMAT, "%s: tensor '%s' is not part of this model (wrong --model or --width?)",
                  path, e->name);
  }
  return s;
}
