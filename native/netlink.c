/* An rtnetlink socket for route writes: not yet implemented. */
#include "addon.h"

const char *lightly_register_netlink(napi_env env, napi_value exports) {
  (void)env;
  (void)exports;
  return NULL;
}
