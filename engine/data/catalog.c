/* Dataset catalog entries. */
#include "engine/data/catalog.h"

#include <string.h>

static const fg_dataset_info catalog[] = {
    {"fashion-mnist", FG_FASHION_MNIST_DIR, "fashion-mnist", {0, 0}, 1, 28, 28, 10},
    {"cifar10", NULL, "cifar10", {4, 1}, 3, 32, 32, 10},
    {"cifar100", NULL, "cifar100", {4, 1}, 3, 32, 32, 100},
    /* HypeMeFed (spec hypemefed.md section 7): x / 255 then (x - 0.5) / 0.5, no augmentation. */
    {"svhn", NULL, "half", {0, 0}, 3, 32, 32, 10},
    {"stl10", NULL, "half", {0, 0}, 3, 96, 96, 10},
};

const char *fg_dataset_names(void) { return "fashion-mnist, cifar10, cifar100, svhn, stl10"; }

const fg_dataset_info *fg_dataset_info_find(const char *name) {
  for (size_t i = 0; i < sizeof catalog / sizeof catalog[0]; i++)
    if (name && strcmp(catalog[i].name, name) == 0) return &catalog[i];
  FG_FAIL(FG_ERR_INVALID, "unknown dataset '%s' (expected one of %s)", name ? name : "", fg_dataset_names());
  return NULL;
}

fg_status fg_dataset_load_named(const char *name, const char *dir, int split_train, fg_ledger *ledger,
                                fg_dataset *ds) {
  const fg_dataset_info *info = fg_dataset_info_find(name);
  if (!info) return fg_last_status();
  if (!dir) dir = info->default_dir;
  if (!dir)
    return FG_FAIL(FG_ERR_INVALID, "dataset %s: give the directory holding its binary files", name);
  if (strcmp(name, "fashion-mnist") == 0) return fg_dataset_load_fashion_mnist(dir, split_train, ledger, ds);
  if (strcmp(name, "svhn") == 0) return fg_dataset_load_svhn_dir(dir, split_train, ledger, ds);
  if (strcmp(name, "stl10") == 0) return fg_dataset_load_stl10_dir(dir, split_train, ledger, ds);
  return fg_dataset_load_cifar_dir(dir, info->classes, split_train, ledger, ds);
}
