/* Model weights as safetensors files: every parameter and buffer of a graph under its
 * models.md name, F32, written atomically; loading checks that the file holds exactly the
 * graph's tensors with the graph's shapes. Owns nothing. */
#ifndef FG_WEIGHTS_H
#define FG_WEIGHTS_H

#include "engine/nn/graph.h"

/* Writes state [state_numel] to `path`; meta: n_meta key/value pairs (metadata strings). */
fg_status fg_weights_save(const fg_graph *g, const float *state, const char *path,
                          const char *const *meta_keys, const char *const *meta_values, int n_meta);
/* Reads `path` into state [state_numel]. FG_ERR_FORMAT names a missing, extra or mis-shaped
 * tensor and the file. */
fg_status fg_weights_load(const fg_graph *g, const char *path, float *state);
/* fg_weights_load from a file already opened (and validated) by fg_st_open. */
struct fg_st_file;
fg_status fg_weights_read(const fg_graph *g, const struct fg_st_file *f, float *state);

#endif
