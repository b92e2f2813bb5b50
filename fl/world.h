/* What every method of an experiment shares: the datasets, the clients' partition, their memory
 * budgets and label sets, and the base model. Built once, so that in a comparison every method
 * sees the same clients with the same data and budgets. Owns: all of it (fg_world_close).
 *
 * Data protocol (configs/README.md `data`):
 *   - data.pool: the training set `train` is the dataset's train split followed by its test split
 *     (fg_dataset_concat), the partition runs over that pool, and `test` is empty;
 *   - data.local_test F > 0: each client's share is split into a local test part of ceil(F x n_k)
 *     samples and a local train part by fg_partition_split_local (fl/partition.h: a shuffle keyed by
 *     the seed and the client), each stored ascending. A client left with no training sample is an
 *     FG_ERR_CONFIG error naming the config file and data.local_test.
 * `partition` holds what clients train on: the shares, or with a local split the local train
 * parts, so every method, budget check, label set and sample weight sees only training samples. */
#ifndef FG_FL_WORLD_H
#define FG_FL_WORLD_H

#include <stddef.h>

#include "engine/data/catalog.h"
#include "engine/nn/fit.h"
#include "engine/nn/models.h"
#include "engine/nn/plan.h"
#include "fl/config.h"
#include "fl/partition.h"

typedef struct fg_world {
  const fg_config *cfg;
  const fg_dataset_info *info;
  fg_ledger data_ledger;      /* datasets, partition, label sets, the local-training loader */
  fg_dataset train, test;
  fg_normalize norm;
  fg_augment aug;             /* training augmentation (none when the config turns it off) */
  fg_model_spec base;         /* the config's model on the dataset's input and classes */
  fg_partition partition;     /* each client's training indices into `train`, ascending: its whole
                                 share, or with data.local_test its local train part */
  fg_partition local_test;    /* with data.local_test: each client's local test indices into `train`,
                                 ascending; otherwise empty (n_clients 0) */
  size_t *budgets;            /* [clients]; 0: no cap */
  size_t full_peak;           /* the base model's planned peak of one local step */
  fg_region class_masks;      /* float [clients x classes]: 1 where the client holds the class */
  fg_loader loader;           /* host scratch of local training: one client's epoch order and a batch */
} fg_world;

fg_status fg_world_open(const fg_config *cfg, fg_world *w);
void fg_world_close(fg_world *w);

/* The trainer options of local training in round `round` (lr decayed). */
fg_trainer_options fg_world_local_options(const fg_world *w, int round);
/* Client k's training samples (its local train part when there is a local split) as a view of the
 * training set. */
fg_dataset_view fg_world_client_view(const fg_world *w, int client);
/* Client k's local test split as a view of the training set. FG_ERR_INVALID when the configuration
 * has no local split (data.local_test 0) or k is not a client. */
fg_status fg_world_client_test_view(const fg_world *w, int client, fg_dataset_view *view);
/* Client k's label set [classes] of 0/1: the classes of its training samples. */
const float *fg_world_class_mask(const fg_world *w, int client);

#endif
