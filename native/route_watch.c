/* Tells JavaScript that kernel routes, addresses or links changed: an rtnetlink multicast socket whose
 * BPF filter drops, in the kernel, route messages of our own protocol (a full table of churn never
 * reaches userspace), read on the event loop by a libuv poll handle, one callback per readable burst
 * with counts only. Given our route writer's netlink port ids, it drops only the messages of our
 * protocol that our writer caused and passes the rest: someone else changed our routes (drift). A receive buffer overrun (ENOBUFS: notifications were lost) is reported, never
 * swallowed: the caller then reads everything again. */
#define _GNU_SOURCE
#include "addon.h"
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

/* Room for the bursts we do want (a link going down takes its routes with it) between two reads. */
#define DEFAULT_RCVBUF (4 * 1024 * 1024)
/* Datagrams read per readable callback: a storm of changes cannot hold the event loop; the poll
 * handle is level-triggered, so what is left is read on the next turn of the loop. */
#define MAX_READS_PER_BURST 4096
#define READ_SIZE 65536
/* Port ids a filter can name: a writer's socket or two (one being replaced); each costs one BPF jump. */
#define MAX_OWN_PORTS 16

struct watch {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int fd; /* -1 once closed */
  uint8_t protocol;
  bool handle_open;    /* until libuv's close callback */
  bool external_alive; /* until the JavaScript handle is collected */
  uint8_t buffer[READ_SIZE];
};

static void free_if_done(struct watch *w) {
  if (!w->handle_open && !w->external_alive) free(w);
}

static void on_handle_closed(uv_handle_t *handle) {
  struct watch *w = handle->data;
  w->handle_open = false;
  free_if_done(w);
}

static void env_cleanup(void *arg);

/* Stops reading and closes the socket; later calls do nothing. */
static void close_watch(struct watch *w, bool from_cleanup_hook) {
  if (w->fd < 0) return;
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, on_handle_closed);
  close(w->fd);
  w->fd = -1;
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->context);
  if (!from_cleanup_hook) napi_remove_env_cleanup_hook(w->env, env_cleanup, w);
}

/* The environment is going away (process exit, a worker ending): its loop must not keep our handle. */
static void env_cleanup(void *arg) {
  close_watch(arg, true);
}

/* The JavaScript handle was collected: nobody can close the watcher any more, so it closes now. */
static void finalize_external(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct watch *w = data;
  w->external_alive = false;
  close_watch(w, false);
  free_if_done(w);
}

/* Accepts everything but RTM_NEWROUTE/RTM_DELROUTE of `protocol`. Of those, with no port ids
 * (nports < 0: our writer is `ip`, a process per batch with a port id each) it drops all; with port
 * ids it drops those whose nlmsg_pid (the port of the socket that asked for the change) is one of
 * them, or 0 (the kernel's own clean-up after a link or address change, which passes as that
 * change: a link going down would otherwise bring a full table of deletions in), and device routes
 * (scope link: the CNI plugin's IPv4 pod routes, never ours to repair; IPv6 ones are told apart after
 * reading, see device_route); it passes the rest, someone
 * else's change of our routes. The kernel runs it on each notification (one message per skb).
 * BPF_ABS loads are big-endian while netlink fields are in host order: constants are compared in
 * the order the load produces (htons, htonl). Replaces the socket's filter if it has one. */
static int attach_filter(int fd, uint8_t protocol, const uint32_t *ports, int nports) {
  struct sock_filter code[11 + MAX_OWN_PORTS];
  int n = 0;
  const int total = nports < 0 ? 7 : 11 + nports, accept = total - 2, drop = total - 1;
#define TO(target) ((uint8_t)((target) - n - 1)) /* a jump from instruction n */
  code[n] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_H | BPF_ABS, offsetof(struct nlmsghdr, nlmsg_type)), n++;
  code[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htons(RTM_NEWROUTE), 1, 0), n++;
  code[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htons(RTM_DELROUTE), 0, TO(accept)), n++;
  code[n] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_B | BPF_ABS, NLMSG_LENGTH(0) + offsetof(struct rtmsg, rtm_protocol)), n++;
  code[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, protocol, nports < 0 ? TO(drop) : 0, TO(accept)), n++;
  if (nports >= 0) {
    code[n] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_B | BPF_ABS, NLMSG_LENGTH(0) + offsetof(struct rtmsg, rtm_scope)), n++;
    code[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, RT_SCOPE_LINK, TO(drop), 0), n++;
    code[n] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct nlmsghdr, nlmsg_pid)), n++;
    code[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, TO(drop), 0), n++;
    for (int i = 0; i < nports; i++) code[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htonl(ports[i]), TO(drop), 0), n++;
  }
#undef TO
  code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0xffffffff);
  code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0);
  struct sock_fprog program = {.len = (unsigned short)n, .filter = code};
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
}

struct open_args {
  uint8_t protocol;
  int rcvbuf;
  uint32_t ports[MAX_OWN_PORTS];
  int nports; /* -1: no port ids, every message of the protocol is dropped */
  const char *what;
};

static int open_watch_socket(void *arg) {
  struct open_args *a = arg;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (fd < 0) return -1;
  struct sockaddr_nl local = {
      .nl_family = AF_NETLINK,
      .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE,
  };
  int size = a->rcvbuf;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  /* The filter goes on before bind: no message of ours can slip in between. */
  if (attach_filter(fd, a->protocol, a->ports, a->nports) < 0) {
    a->what = "route watch: attach BPF filter";
  } else if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
    a->what = "route watch: bind";
  } else {
    return fd;
  }
  int err = errno;
  close(fd);
  errno = err;
  return -1;
}

struct burst {
  uint32_t routes, own_protocol_routes, addresses, links;
  bool overflowed;
  int error;
};

/* A unicast route with no next hop (no RTA_GATEWAY, RTA_MULTIPATH or RTA_VIA): a device route, the CNI
 * plugin's pod route. The filter drops IPv4 ones by their link scope, but the kernel notifies every
 * IPv6 route with universe scope, so a dual-stack pod's /128 gets here and is told apart by its
 * attributes (classic BPF's attribute search, SKF_AD_NLATTR, finds nothing in these notifications
 * on this kernel: tried). Without this every pod start would ask for a full comparison. */
static bool device_route(const struct nlmsghdr *h) {
  const struct rtmsg *r = NLMSG_DATA(h);
  if (r->rtm_type != RTN_UNICAST) return false;
  int left = (int)RTM_PAYLOAD(h);
  for (const struct rtattr *a = RTM_RTA(r); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
    if (a->rta_type == RTA_GATEWAY || a->rta_type == RTA_MULTIPATH || a->rta_type == RTA_VIA) return false;
  }
  return true;
}

static void count_messages(struct burst *b, uint8_t protocol, const uint8_t *data, ssize_t n) {
  int left = (int)n;
  for (const struct nlmsghdr *h = (const struct nlmsghdr *)data; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
    switch (h->nlmsg_type) {
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
      /* Only what the filter let through: someone else's change when the filter knows our ports. */
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)) || ((const struct rtmsg *)NLMSG_DATA(h))->rtm_protocol != protocol) b->routes++;
      else if (!device_route(h)) b->own_protocol_routes++;
      break;
    case RTM_NEWADDR:
    case RTM_DELADDR: b->addresses++; break;
    case RTM_NEWLINK:
    case RTM_DELLINK: b->links++; break;
    default: break;
    }
  }
}

static void set_number(napi_env env, napi_value object, const char *name, uint32_t value) {
  napi_value v;
  napi_create_uint32(env, value, &v);
  napi_set_named_property(env, object, name, v);
}

/* One call into JavaScript for the burst: { routes, ownProtocolRoutes, addresses, links, overflowed, error? }. */
static void deliver(struct watch *w, const struct burst *b) {
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value event, callback, global, flag, result;
  napi_create_object(env, &event);
  set_number(env, event, "routes", b->routes);
  set_number(env, event, "ownProtocolRoutes", b->own_protocol_routes);
  set_number(env, event, "addresses", b->addresses);
  set_number(env, event, "links", b->links);
  napi_get_boolean(env, b->overflowed, &flag);
  napi_set_named_property(env, event, "overflowed", flag);
  if (b->error) {
    napi_value text;
    char message[128];
    snprintf(message, sizeof message, "route watch: %s", strerror(b->error));
    napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
    napi_set_named_property(env, event, "error", text);
  }
  napi_get_reference_value(env, w->callback, &callback);
  napi_get_global(env, &global);
  /* make_callback, not call_function: the microtasks the listener queues run before we return. */
  if (napi_make_callback(env, w->context, global, callback, 1, &event, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  struct watch *w = handle->data;
  struct burst b = {0};
  for (int i = 0; i < MAX_READS_PER_BURST; i++) {
    struct sockaddr_nl from;
    socklen_t from_len = sizeof from;
    ssize_t n = recvfrom(w->fd, w->buffer, sizeof w->buffer, 0, (struct sockaddr *)&from, &from_len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      /* The kernel dropped notifications for want of buffer; reading on is fine. */
      if (errno == ENOBUFS) {
        b.overflowed = true;
        continue;
      }
      b.error = errno;
      break;
    }
    if (from.nl_pid != 0) continue; /* only the kernel speaks for the kernel */
    count_messages(&b, w->protocol, w->buffer, n);
  }
  /* libuv reports a socket error (here the overrun, pending as the socket's error) as UV_EBADF and
   * stops the handle; the read above took the error, so polling goes on. */
  if (status < 0 && !b.error && uv_poll_start(&w->poll, UV_READABLE, on_readable) != 0) b.error = EBADF;
  /* A socket that fails for another reason will not recover: stop, and let the caller decide. */
  if (b.error) uv_poll_stop(&w->poll);
  if (b.routes || b.own_protocol_routes || b.addresses || b.links || b.overflowed || b.error) deliver(w, &b);
}

#define CHECK(call) LIGHTLY_CHECK("route watch", call)

static bool optional_property(napi_env env, napi_value object, const char *name, napi_valuetype want, napi_value *value) {
  bool has = false;
  napi_valuetype type;
  if (napi_has_named_property(env, object, name, &has) != napi_ok || !has) return false;
  if (napi_get_named_property(env, object, name, value) != napi_ok) return false;
  return napi_typeof(env, *value, &type) == napi_ok && type == want;
}

/* Reads an array of port ids (u32) into ports; false with a JavaScript exception pending when it is not one. */
static bool read_ports(napi_env env, napi_value value, uint32_t *ports, int *nports) {
  bool is_array = false;
  uint32_t length;
  if (napi_is_array(env, value, &is_array) != napi_ok || !is_array || napi_get_array_length(env, value, &length) != napi_ok || length > MAX_OWN_PORTS) {
    napi_throw_range_error(env, NULL, "route watch: ownPorts must be an array of at most 16 port ids");
    return false;
  }
  for (uint32_t i = 0; i < length; i++) {
    napi_value element;
    if (napi_get_element(env, value, i, &element) != napi_ok || napi_get_value_uint32(env, element, &ports[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "route watch: a port id must be a number");
      return false;
    }
  }
  *nports = (int)length;
  return true;
}

/* routeWatchOpen(onEvent, { protocol, ownPorts?, netnsPath?, receiveBuffer? }): handle for routeWatchClose. */
static napi_value route_watch_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], value, handle, name;
  napi_valuetype type;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, NULL, "routeWatchOpen: the first argument must be a function");
    return NULL;
  }
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_object) {
    napi_throw_type_error(env, NULL, "routeWatchOpen: the second argument must be an options object");
    return NULL;
  }
  struct open_args args = {.rcvbuf = DEFAULT_RCVBUF, .nports = -1, .what = "route watch: socket"};
  int32_t number;
  if (!optional_property(env, argv[1], "protocol", napi_number, &value) || napi_get_value_int32(env, value, &number) != napi_ok || number < 0 || number > 255) {
    napi_throw_range_error(env, NULL, "routeWatchOpen: protocol must be a number from 0 to 255");
    return NULL;
  }
  args.protocol = (uint8_t)number;
  if (optional_property(env, argv[1], "ownPorts", napi_object, &value) && !read_ports(env, value, args.ports, &args.nports)) return NULL;
  if (optional_property(env, argv[1], "receiveBuffer", napi_number, &value)) {
    CHECK(napi_get_value_int32(env, value, &number));
    if (number > 0) args.rcvbuf = number;
  }
  char path[4096];
  bool in_netns = optional_property(env, argv[1], "netnsPath", napi_string, &value);
  if (in_netns) {
    size_t length;
    CHECK(napi_get_value_string_utf8(env, value, path, sizeof path, &length));
  }
  int fd = lightly_socket_in_netns(in_netns ? path : NULL, open_watch_socket, &args, &args.what);
  if (fd < 0) {
    char message[4400];
    snprintf(message, sizeof message, "%s: %s", args.what, strerror(errno));
    napi_throw_error(env, NULL, message);
    return NULL;
  }
  uv_loop_t *loop;
  struct watch *w = calloc(1, sizeof *w);
  if (!w || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &w->poll, fd) != 0) {
    free(w);
    close(fd);
    napi_throw_error(env, NULL, "route watch: cannot poll the socket");
    return NULL;
  }
  w->env = env;
  w->fd = fd;
  w->protocol = args.protocol;
  w->poll.data = w;
  w->handle_open = true;
  w->external_alive = true;
  CHECK(napi_create_reference(env, argv[0], 1, &w->callback));
  CHECK(napi_create_string_utf8(env, "lightly.routeWatch", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_external(env, w, finalize_external, NULL, &handle));
  CHECK(napi_async_init(env, handle, name, &w->context));
  CHECK(napi_add_env_cleanup_hook(env, env_cleanup, w));
  /* The watcher never keeps the process alive by itself: the agent's own timers decide that. */
  uv_unref((uv_handle_t *)&w->poll);
  if (uv_poll_start(&w->poll, UV_READABLE, on_readable) != 0) {
    close_watch(w, false);
    napi_throw_error(env, NULL, "route watch: cannot poll the socket");
    return NULL;
  }
  return handle;
}

/* routeWatchClose(handle): stops the watcher and closes its socket; closing again does nothing. */
static napi_value route_watch_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "routeWatchClose: not a route watch handle");
    return NULL;
  }
  close_watch(data, false);
  return NULL;
}

/* routeWatchSetOwnPorts(handle, ownPorts | null): the filter again with these port ids (our writer
 * reopened), or without any (null: every message of the protocol dropped). The socket keeps its
 * queue; what arrives from now on is filtered anew. */
static napi_value route_watch_set_own_ports(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_valuetype type = napi_undefined;
  void *data;
  uint32_t ports[MAX_OWN_PORTS];
  int nports = -1;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "routeWatchSetOwnPorts: not a route watch handle");
    return NULL;
  }
  struct watch *w = data;
  CHECK(napi_typeof(env, argv[1], &type));
  if (type != napi_null && type != napi_undefined && !read_ports(env, argv[1], ports, &nports)) return NULL;
  if (w->fd < 0) {
    napi_throw_error(env, NULL, "route watch: closed");
    return NULL;
  }
  if (attach_filter(w->fd, w->protocol, ports, nports) < 0) {
    char message[128];
    snprintf(message, sizeof message, "route watch: attach BPF filter: %s", strerror(errno));
    napi_throw_error(env, NULL, message);
    return NULL;
  }
  return NULL;
}

const char *lightly_register_route_watch(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"routeWatchOpen", NULL, route_watch_open, NULL, NULL, NULL, napi_default, NULL},
      {"routeWatchSetOwnPorts", NULL, route_watch_set_own_ports, NULL, NULL, NULL, napi_default, NULL},
      {"routeWatchClose", NULL, route_watch_close, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) != napi_ok) return "cannot register the route watch functions";
  return NULL;
}
