/* TCP MD5 signatures (RFC 2385) for BGP sessions: an unconnected TCP socket to hand to Node (so the key
 * is on it before its SYN), and TCP_MD5SIG set or cleared per peer address on a socket (ours, or the
 * listener's, for the peer's incoming SYNs). Node has neither. The key never leaves this file in an error. */
#include "addon.h"

#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef TCP_MD5SIG_EXT
#define TCP_MD5SIG_EXT 32
#endif
#ifndef TCP_MD5SIG_FLAG_IFINDEX
#define TCP_MD5SIG_FLAG_IFINDEX 0x2
#endif

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[160];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, err == EINVAL ? "EINVAL" : NULL, message);
  return NULL;
}

/* tcpSocket(family: 4 | 6): number. Non-blocking and close-on-exec, as libuv wants its sockets. */
static napi_value tcp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t family = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &family) != napi_ok || (family != 4 && family != 6)) {
    napi_throw_type_error(env, NULL, "tcpSocket(family): family must be 4 or 6");
    return NULL;
  }
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return throw_errno(env, "socket", errno);
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

/*
 * The peer's address in the socket's own family: an IPv6 socket (a listener on ::) sees IPv4 peers
 * as ::ffff:a.b.c.d, and the kernel looks their key up under that form. A zone (fe80::1%eth0) becomes
 * the key's interface index. Returns 0 or an errno.
 */
static int peer_sockaddr(int socket_family, const char *address, struct tcp_md5sig *sig, int *scoped) {
  struct addrinfo hints = {0}, *found = NULL;
  hints.ai_flags = AI_NUMERICHOST;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(address, NULL, &hints, &found) != 0 || !found) return EINVAL;
  int err = 0;
  *scoped = 0;
  if (found->ai_family == AF_INET && socket_family == AF_INET6) {
    struct sockaddr_in6 *mapped = (struct sockaddr_in6 *)&sig->tcpm_addr;
    mapped->sin6_family = AF_INET6;
    mapped->sin6_addr.s6_addr[10] = 0xff;
    mapped->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&mapped->sin6_addr.s6_addr[12], &((struct sockaddr_in *)found->ai_addr)->sin_addr, 4);
  } else if (found->ai_family == socket_family) {
    memcpy(&sig->tcpm_addr, found->ai_addr, found->ai_addrlen);
    if (found->ai_family == AF_INET6) {
      uint32_t scope = ((struct sockaddr_in6 *)found->ai_addr)->sin6_scope_id;
      if (scope) {
        sig->tcpm_flags |= TCP_MD5SIG_FLAG_IFINDEX;
        sig->__tcpm_pad = scope; /* tcpm_ifindex in the kernel's struct */
        *scoped = 1;
      }
    }
  } else {
    err = EAFNOSUPPORT; /* an IPv6 peer on an IPv4 socket */
  }
  freeaddrinfo(found);
  return err;
}

/* setTcpMd5Key(fd: number, address: string, key: string): void. An empty key removes the address's key. */
static napi_value set_tcp_md5_key(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd = -1;
  char address[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t address_len = 0, key_len = 0;
  struct tcp_md5sig sig;
  memset(&sig, 0, sizeof sig);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], address, sizeof address, &address_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "setTcpMd5Key(fd, address, key): fd a number, address and key strings");
    return NULL;
  }
  /* One byte more than the kernel takes, to tell a key that is too long from one that fits. */
  char key[TCP_MD5SIG_MAXKEYLEN + 2];
  if (napi_get_value_string_utf8(env, argv[2], key, sizeof key, &key_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "setTcpMd5Key: key must be a string");
    return NULL;
  }
  if (key_len > TCP_MD5SIG_MAXKEYLEN) {
    memset(key, 0, sizeof key);
    napi_throw_range_error(env, NULL, "TCP MD5 key longer than 80 bytes");
    return NULL;
  }
  struct sockaddr_storage own;
  socklen_t own_len = sizeof own;
  if (getsockname(fd, (struct sockaddr *)&own, &own_len) != 0) return throw_errno(env, "getsockname", errno);
  int scoped = 0;
  int err = peer_sockaddr(own.ss_family, address, &sig, &scoped);
  if (err) return throw_errno(env, "TCP MD5 peer address", err);
  sig.tcpm_keylen = (uint16_t)key_len;
  memcpy(sig.tcpm_key, key, key_len);
  memset(key, 0, sizeof key);
  int rc = setsockopt(fd, IPPROTO_TCP, scoped ? TCP_MD5SIG_EXT : TCP_MD5SIG, &sig, sizeof sig);
  err = errno;
  memset(&sig, 0, sizeof sig);
  /* Removing a key that is not there is what the caller wanted. */
  if (rc != 0 && !(key_len == 0 && err == ENOENT)) return throw_errno(env, "setsockopt TCP_MD5SIG", err);
  return NULL;
}

const char *lightly_register_tcp_md5(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"tcpSocket", NULL, tcp_socket, NULL, NULL, NULL, napi_default, NULL},
      {"setTcpMd5Key", NULL, set_tcp_md5_key, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) != napi_ok) return "cannot register the TCP MD5 functions";
  return NULL;
}
