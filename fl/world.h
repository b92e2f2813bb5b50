/* What every method of an experiment shares: the datasets, the clients' partition, their memory
 * budgets and label sets, and the base model. Built once, so that in a comparison every method
 * sees the same clients with the same data and budgets. Owns: all of it (fg_world_close). */
#ifndef FG_FL_WORLD_H
#define FG_FL_WORLD_H

#include <stddef.h>

#include "engine/data/catalog.h"
#include "engine/nn/models.h"
#include "engine/nn/plan.h"
#include "fl/config.h"
#include "fl/partition.h"

typedef struct fg_world {
  const fg_config *cfg;
  const fg_dataset_info *info;
  fg_ledger data_ledger;      /* datasets, partition, label sets, epoch orders */
  fg_dataset train, test;
  fg_normalize norm;
  fg_augment aug;             /* training augmentation (none when the config turns it off) */
  fg_model_spec base;         /* the config's model on the dataset's input and classes */
  fg_partition partition;     /* each client's sample indices, ascending */
  size_t *budgets;            /* [clients]; 0: no cap */
  size_t full_peak;           /* the base model's planned peak of one local step */
  fg_region class_masks;      /* float [clients x classes]: 1 where the client holds the class */
  fg_region order;            /* uint32 scratch for one client's epoch order */
} fg_world;

fg_status fg_world_open(const fg_config *cfg, fg_world *w);
void fg_world_close(fg_world *w);

/* The trainer options of local training in round `round` (lr decayed). */
fg_trainer_options fg_world_local_options(const fg_world *w, int round);
/* Client k's samples as a view of the training set. */
fg_dataset_view fg_world_client_view(const fg_world *w, int client);
/* Client k's label set [classes] of 0/1. */
const float *fg_world_class_mask(const fg_world *w, int client);

#endif
