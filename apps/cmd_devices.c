/* fedgap devices: the state of every backend (not compiled / compiled, no device / available). */
#include <stdio.h>

#include "apps/cli.h"
#include "engine/backend/backend.h"
#include "fedgap_config.h"

int fg_cmd_devices(int argc, char **argv) {
  fg_command cmd = {"devices", "List the compute backends and their state.", NULL, 0, NULL, 0};
  int help;
  int rc = fg_args_parse(&cmd, argc, argv, &help);
  if (rc != FG_EXIT_OK || help) return rc;
  rc = fg_cli_start(cmd.name, 0, fg_host_device());
  if (rc != FG_EXIT_OK) return rc;
  fg_cli_probe_cuda(0);
  printf("cpu: available: %s\n", fg_backend_registered(FG_DEV_CPU)->description);
  if (!FEDGAP_WITH_CUDA) {
    printf("cuda: not compiled (configure with -DFEDGAP_CUDA=ON and the CUDA toolkit)\n");
    return FG_EXIT_OK;
  }
  const fg_backend *c = fg_backend_registered(FG_DEV_CUDA);
  if (c && c->available)
    printf("cuda: available: %s (toolkit %s, architectures %s)\n", c->description,
           FEDGAP_CUDA_TOOLKIT_VERSION, FEDGAP_CUDA_ARCHITECTURES);
  else
    printf("cuda: compiled (toolkit %s, architectures %s), no usable device: %s\n",
           FEDGAP_CUDA_TOOLKIT_VERSION, FEDGAP_CUDA_ARCHITECTURES, c ? c->reason : "not registered");
  return FG_EXIT_OK;
}
