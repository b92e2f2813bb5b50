/* Test helpers for FL methods: a method's configuration built from overrides of its options. */
#ifndef FGT_METHOD_UTIL_H
#define FGT_METHOD_UTIL_H

#include "fl/method_config.h"

/* Method `name` for model `arch` with the NULL-terminated overrides "option=value" (at most 16) of
 * its options, the others at their defaults (fg_method_config_with); fails the test otherwise.
 * Free with fg_method_config_free. */
fg_method_config fgt_method_config(const char *name, const char *arch, ...);

#endif
