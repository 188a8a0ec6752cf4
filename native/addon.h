/* The few Linux system calls Node does not expose, one file each; this header joins them into one addon. */
#ifndef LIGHTLY_ADDON_H
#define LIGHTLY_ADDON_H
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

/* Each adds its functions to the addon's exports; returns NULL on success or a message. */
const char *lightly_register_tcp_md5(napi_env env, napi_value exports);
const char *lightly_register_netlink(napi_env env, napi_value exports);
const char *lightly_register_route_watch(napi_env env, napi_value exports);
const char *lightly_register_route_dump(napi_env env, napi_value exports);

/* In a function of `env` that returns a napi_value: an N-API call that fails throws, naming the part. */
#define LIGHTLY_CHECK(part, call)                                \
  do {                                                           \
    if ((call) != napi_ok) {                                     \
      napi_throw_error(env, NULL, part ": N-API failure");       \
      return NULL;                                               \
    }                                                            \
  } while (0)

/* netlink.c: a NETLINK_ROUTE socket, bound, whose reads give up after 10 s; -1 with errno set. */
int lightly_route_socket(void);

/* netlink.c: an async work's end, on the main thread: `deferred` resolves with a Buffer copy of the
 * bytes, or rejects with "what: strerror(err)" when the work failed or the copy cannot be made. */
void lightly_settle_with_bytes(napi_env env, napi_deferred deferred, napi_status status, int err, const char *what, const uint8_t *bytes, size_t length);

/* netns.c: make(arg)'s socket, made inside the network namespace at path (NULL: our own); on failure
 * -1 with errno set and *what naming the step that failed. */
int lightly_socket_in_netns(const char *path, int (*make)(void *arg), void *arg, const char **what);

#endif
