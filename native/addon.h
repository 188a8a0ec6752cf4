/* The few Linux system calls Node does not expose, one file each; this header joins them into one addon. */
#ifndef LIGHTLY_ADDON_H
#define LIGHTLY_ADDON_H
#include <node_api.h>

/* Each adds its functions to the addon's exports; returns NULL on success or a message. */
const char *lightly_register_tcp_md5(napi_env env, napi_value exports);
const char *lightly_register_netlink(napi_env env, napi_value exports);

#endif
