/* TCP MD5 signatures (RFC 2385) on a socket: not yet implemented. */
#include "addon.h"

const char *lightly_register_tcp_md5(napi_env env, napi_value exports) {
  (void)env;
  (void)exports;
  return NULL;
}
