/* Test helpers for FL methods (method_util.h). */
#include "common/method_util.h"

#include <stdarg.h>

#include "common/test_util.h"

fg_method_config fgt_method_config(const char *name, const char *arch, ...) {
  const char *set[16];
  int n = 0;
  va_list ap;
  va_start(ap, arch);
  for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *)) {
    cr_assert_lt(n, 16, "too many overrides");
    set[n++] = s;
  }
  va_end(ap);
  fg_method_config mc;
  FGT_OK(fg_method_config_with(name, arch, set, n, &mc));
  return mc;
}
