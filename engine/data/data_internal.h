/* Declarations shared by the dataset loaders (internal to engine/data). */
#ifndef FG_DATA_INTERNAL_H
#define FG_DATA_INTERNAL_H

#include "engine/data/dataset.h"

/* What a named dataset's IDX files must hold: u8 images of c x h x w, labels < classes. */
typedef struct fg_idx_expect {
  int c, h, w;
  int classes;
} fg_idx_expect;

/* fg_dataset_load_idx with optional checks (expect NULL: none, classes = largest label + 1). */
fg_status fg_idx_load(const char *images_path, const char *labels_path, const fg_idx_expect *expect,
                      fg_ledger *ledger, fg_dataset *ds);

#endif
