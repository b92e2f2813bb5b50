/* Test helpers for FL methods: a method's configuration built from overrides of its options, and
 * one local round at every level of a method. */
#ifndef FGT_METHOD_UTIL_H
#define FGT_METHOD_UTIL_H

#include "fl/method_config.h"

/* Method `name` for model `arch` with the NULL-terminated overrides "option=value" (at most 16) of
 * its options, the others at their defaults (fg_method_config_with); fails the test otherwise.
 * Free with fg_method_config_free. */
fg_method_config fgt_method_config(const char *name, const char *arch, ...);

/* One local round at every level of method `name` (default options) on the model `model` (the
 * inside of a YAML flow mapping, e.g. "arch: cnn, width: 4"), over 4 IID clients of a small
 * generated Fashion-MNIST-format set, in the distillation's rounds (round 1 of 2): each level's
 * sub-model is extracted from a freshly initialised global model, trained by the client code
 * (fl/client.h) uncapped and aggregated back with weight 1. Asserts that every level trains with
 * a finite positive loss and moves its sub-model, that the aggregate is finite, and that every
 * trainable global tensor moved (each is held by some level). Returns the number of levels. */
int fgt_train_every_level_once(const char *name, const char *model);

#endif
