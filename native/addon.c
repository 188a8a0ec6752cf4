/* The addon's entry: registers each part. The BGP speaker stays pure TypeScript; only socket options and
 * the netlink sockets, which Node lacks, are native. */
#include "addon.h"

static napi_value init(napi_env env, napi_value exports) {
  const char *error = lightly_register_tcp_md5(env, exports);
  if (!error) error = lightly_register_netlink(env, exports);
  if (!error) error = lightly_register_route_watch(env, exports);
  if (!error) error = lightly_register_route_dump(env, exports);
  if (error) napi_throw_error(env, NULL, error);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
