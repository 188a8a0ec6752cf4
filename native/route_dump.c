/* The main table's routes for next-hop resolution, read by rtnetlink dumps on the thread pool, with
 * one protocol's routes (ours, a full table of them) dropped here as they come: `ip -json route show`
 * would print every one of them, a million rows of JSON, for the agent to skip. What is left (a
 * host's few dozen connected, static and other routes) goes back as fixed-size records
 * (routes/route-dump.ts decodes them). */
#define _GNU_SOURCE
#include "addon.h"
#include <errno.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#define CHECK(call) LIGHTLY_CHECK("route dump", call)

/* A kept route: family, prefix length, type, protocol (1 byte each), rtm_flags (4, host order), the
 * link's name (IFNAMSIZ, NUL-padded; empty without a single output link), the destination (16). */
#define RECORD 40
/* A dump that the kernel marks as interrupted (the table changed meanwhile) is read again, this often at most. */
#define DUMP_TRIES 3
#define REPLY_TIMEOUT_S 10
#define RECV_BUFFER (256 * 1024)

struct dump_work {
  napi_async_work work;
  napi_deferred deferred;
  char path[4096];
  int has_path;
  int skip_protocol;
  uint8_t *out;
  size_t out_length, out_capacity;
  int err;
  const char *what;
};

static int open_dump_socket(void *unused) {
  (void)unused;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -1;
  struct timeval timeout = {.tv_sec = REPLY_TIMEOUT_S};
  struct sockaddr_nl local = {.nl_family = AF_NETLINK};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

static int keep_record(struct dump_work *w, const uint8_t record[RECORD]) {
  if (w->out_length + RECORD > w->out_capacity) {
    size_t capacity = w->out_capacity ? w->out_capacity * 2 : 64 * RECORD;
    uint8_t *grown = realloc(w->out, capacity);
    if (!grown) return -1;
    w->out = grown;
    w->out_capacity = capacity;
  }
  memcpy(w->out + w->out_length, record, RECORD);
  w->out_length += RECORD;
  return 0;
}

/* One RTM_NEWROUTE of the dump: kept as a record unless of the skipped protocol or another table. */
static int take_route(struct dump_work *w, int fd, const struct nlmsghdr *h) {
  const struct rtmsg *r = NLMSG_DATA(h);
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof *r)) return 0;
  /* A cached exception (a PMTU or a redirect for one address): not a route, and `ip route show`
   * leaves it out. A dump not strictly checked hands them over, one under a route of ours with
   * protocol 0, so it would pass for a host route of someone else's that resolves its address. */
  if (r->rtm_flags & RTM_F_CLONED) return 0;
  if (r->rtm_protocol == w->skip_protocol || (r->rtm_family != AF_INET && r->rtm_family != AF_INET6)) return 0;
  uint32_t table = r->rtm_table;
  uint32_t oif = 0;
  const void *dst = NULL;
  size_t dst_length = r->rtm_family == AF_INET ? 4 : 16;
  int multipath = 0;
  int left = (int)RTM_PAYLOAD(h);
  for (const struct rtattr *a = RTM_RTA(r); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
    if (a->rta_type == RTA_TABLE && RTA_PAYLOAD(a) >= 4) memcpy(&table, RTA_DATA(a), 4);
    else if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= 4) memcpy(&oif, RTA_DATA(a), 4);
    else if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) >= dst_length) dst = RTA_DATA(a);
    else if (a->rta_type == RTA_MULTIPATH) multipath = 1;
  }
  if (table != RT_TABLE_MAIN) return 0;
  uint8_t record[RECORD];
  memset(record, 0, sizeof record);
  record[0] = r->rtm_family == AF_INET ? 4 : 6;
  record[1] = r->rtm_dst_len;
  record[2] = r->rtm_type;
  record[3] = r->rtm_protocol;
  memcpy(record + 4, &r->rtm_flags, 4);
  if (oif && !multipath) {
    /* The name in the socket's namespace: a netlink socket passes interface ioctls to its own. */
    struct ifreq request;
    memset(&request, 0, sizeof request);
    request.ifr_ifindex = (int)oif;
    if (ioctl(fd, SIOCGIFNAME, &request) == 0) memcpy(record + 8, request.ifr_name, IFNAMSIZ);
  }
  if (dst) memcpy(record + 24, dst, dst_length);
  return keep_record(w, record);
}

/* Dumps one family's routes; 1 when the kernel marked the dump interrupted (read it again). */
static int dump_family(struct dump_work *w, int fd, int family, uint8_t *buffer) {
  struct {
    struct nlmsghdr h;
    struct rtmsg r;
  } request = {
      .h = {.nlmsg_len = sizeof request, .nlmsg_type = RTM_GETROUTE, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = (uint32_t)family},
      .r = {.rtm_family = (unsigned char)family},
  };
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(fd, &request, sizeof request, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
    w->what = "route dump: send";
    return -1;
  }
  int interrupted = 0;
  for (;;) {
    ssize_t n = recv(fd, buffer, RECV_BUFFER, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      w->what = errno == EAGAIN ? "route dump: no answer from the kernel" : "route dump: recv";
      return -1;
    }
    int left = (int)n;
    for (const struct nlmsghdr *h = (const struct nlmsghdr *)buffer; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = 1;
      if (h->nlmsg_type == NLMSG_DONE) return interrupted;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(h);
        errno = e->error ? -e->error : EIO;
        w->what = "route dump";
        return -1;
      }
      if (h->nlmsg_type == RTM_NEWROUTE && take_route(w, fd, h) < 0) {
        errno = ENOMEM;
        w->what = "route dump: records";
        return -1;
      }
    }
  }
}

static void dump_execute(napi_env env, void *data) {
  (void)env;
  struct dump_work *w = data;
  const char *what = "route dump: socket";
  int fd = lightly_socket_in_netns(w->has_path ? w->path : NULL, open_dump_socket, NULL, &what);
  if (fd < 0) {
    w->err = errno;
    w->what = what;
    return;
  }
  uint8_t *buffer = malloc(RECV_BUFFER);
  if (!buffer) {
    w->err = ENOMEM;
    w->what = "route dump: buffer";
    close(fd);
    return;
  }
  static const int families[] = {AF_INET, AF_INET6};
  for (size_t f = 0; f < 2 && !w->err; f++) {
    size_t start = w->out_length;
    for (int attempt = 1;; attempt++) {
      int result = dump_family(w, fd, families[f], buffer);
      if (result < 0) {
        w->err = errno ? errno : EIO;
        break;
      }
      if (result == 0) break;
      if (attempt == DUMP_TRIES) {
        w->err = EAGAIN;
        w->what = "route dump: the table kept changing during the dump";
        break;
      }
      w->out_length = start; /* read the family again, from its start */
    }
  }
  free(buffer);
  close(fd);
}

static void dump_complete(napi_env env, napi_status status, void *data) {
  struct dump_work *w = data;
  napi_value value;
  void *copy;
  if (status == napi_ok && w->err == 0 &&
      napi_create_buffer_copy(env, w->out_length, w->out ? (void *)w->out : (void *)"", &copy, &value) == napi_ok) {
    napi_resolve_deferred(env, w->deferred, value);
  } else {
    char message[4400];
    napi_value text;
    snprintf(message, sizeof message, "%s: %s", w->what ? w->what : "route dump", strerror(w->err ? w->err : EIO));
    napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
    napi_create_error(env, NULL, text, &value);
    napi_reject_deferred(env, w->deferred, value);
  }
  napi_delete_async_work(env, w->work);
  free(w->out);
  free(w);
}

/* routeDump(netnsPath: string | null, skipProtocol: number): Promise<Buffer> — RECORD bytes a route. */
static napi_value route_dump(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], promise, name;
  napi_valuetype type = napi_undefined;
  int32_t skip;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "routeDump: (netnsPath, skipProtocol)");
    return NULL;
  }
  CHECK(napi_typeof(env, argv[0], &type));
  CHECK(napi_get_value_int32(env, argv[1], &skip));
  struct dump_work *w = calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, NULL, "routeDump: out of memory");
    return NULL;
  }
  if (type == napi_string) {
    size_t length;
    if (napi_get_value_string_utf8(env, argv[0], w->path, sizeof w->path, &length) != napi_ok) {
      free(w);
      napi_throw_type_error(env, NULL, "routeDump: bad namespace path");
      return NULL;
    }
    w->has_path = 1;
  }
  w->skip_protocol = skip;
  CHECK(napi_create_promise(env, &w->deferred, &promise));
  CHECK(napi_create_string_utf8(env, "lightly.routeDump", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, dump_execute, dump_complete, w, &w->work));
  CHECK(napi_queue_async_work(env, w->work));
  return promise;
}

const char *lightly_register_route_dump(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "routeDump", NAPI_AUTO_LENGTH, route_dump, NULL, &fn) != napi_ok) return "route dump: cannot create a function";
  if (napi_set_named_property(env, exports, "routeDump", fn) != napi_ok) return "route dump: cannot export a function";
  return NULL;
}
