/* The dataset catalog: datasets by name with their default directory, normalisation and
 * augmentation, so the CLI and experiment configs say "fashion-mnist" rather than file paths.
 * Owns nothing. */
#ifndef FG_CATALOG_H
#define FG_CATALOG_H

#include "engine/data/dataset.h"

typedef struct fg_dataset_info {
  const char *name;         /* "fashion-mnist", "cifar10", "cifar100", "svhn", "stl10" */
  const char *default_dir;  /* NULL: the user must give a directory */
  const char *normalize;    /* fg_normalize_preset name */
  fg_augment train_aug;     /* augmentation of training batches */
  int c, h, w, classes;
} fg_dataset_info;

/* The entry for `name`, or NULL with FG_ERR_INVALID recorded (listing the known names). */
const fg_dataset_info *fg_dataset_info_find(const char *name);
/* "fashion-mnist, cifar10, cifar100, svhn, stl10" */
const char *fg_dataset_names(void);
/* Loads the train or test split of a catalogued dataset from `dir` (NULL: its default): the
 * Fashion-MNIST IDX files, the CIFAR binary files, SVHN's train_32x32.mat / test_32x32.mat,
 * STL-10's stl10_binary folder (train_X.bin, train_y.bin, test_X.bin, test_y.bin). */
fg_status fg_dataset_load_named(const char *name, const char *dir, int split_train, fg_ledger *ledger,
                                fg_dataset *ds);

#endif
