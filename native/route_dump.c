/* The main table's routes read by rtnetlink dumps on the thread pool, in one of two ways:
 * - all but one protocol's (for next-hop resolution): ours, a full table of them, are dropped here as
 *   they come, where `ip -json route show` would print a million rows of JSON for the agent to skip;
 *   the few left go back as fixed-size records;
 * - only that protocol's (the reconciler's comparison with the kernel): the kernel filters them
 *   (NETLINK_GET_STRICT_CHK), and each goes back as a compact record with its next hops, instead of
 *   `ip -json` printing and the agent parsing a million JSON rows.
 * routes/route-dump.ts decodes both. */
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
#define RECV_BUFFER (256 * 1024)
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

struct dump_work {
  napi_async_work work;
  napi_deferred deferred;
  char path[4096];
  int has_path;
  int protocol;
  /* 1: only `protocol`'s routes, with next hops; 0: all but `protocol`'s. */
  int only;
  /* The links our routes go through (a few for a full table, one a pod for pod routes), each once. */
  struct link_name {
    uint32_t index;
    char name[IFNAMSIZ];
  } *names;
  size_t name_count, name_capacity;
  uint8_t *out;
  size_t out_length, out_capacity;
  int err;
  const char *what;
};

static int open_dump_socket(void *unused) {
  (void)unused;
  int fd = lightly_route_socket();
  if (fd < 0) return -1;
  int one = 1;
  /* The kernel then dumps only what the request's header asks for (Linux 4.20+; older ones dump all,
   * and take_route filters the same way). */
  setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one);
  return fd;
}

static int keep_record(struct dump_work *w, const uint8_t *record, size_t length) {
  if (w->out_length + length > w->out_capacity) {
    size_t capacity = w->out_capacity ? w->out_capacity * 2 : 64 * RECORD;
    while (capacity < w->out_length + length) capacity *= 2;
    uint8_t *grown = realloc(w->out, capacity);
    if (!grown) return -1;
    w->out = grown;
    w->out_capacity = capacity;
  }
  memcpy(w->out + w->out_length, record, length);
  w->out_length += length;
  return 0;
}

/* The link's name in the socket's namespace (a netlink socket passes interface ioctls to its own);
 * 0 when it has none (gone since the route was read: the route reads back without its link). */
static int link_name(int fd, uint32_t index, char name[IFNAMSIZ]) {
  struct ifreq request;
  memset(&request, 0, sizeof request);
  request.ifr_ifindex = (int)index;
  if (ioctl(fd, SIOCGIFNAME, &request) != 0) return 0;
  memcpy(name, request.ifr_name, IFNAMSIZ);
  return 1;
}

/* Remembers a link's name for the trailer (only mode), each index once: the last one found is
 * looked at first, as a table's routes come through the same link one after another. */
static int note_link(struct dump_work *w, int fd, uint32_t index) {
  if (index == 0) return 0;
  if (w->name_count > 0 && w->names[w->name_count - 1].index == index) return 0;
  for (size_t i = 0; i < w->name_count; i++)
    if (w->names[i].index == index) return 0;
  char name[IFNAMSIZ];
  if (!link_name(fd, index, name)) return 0;
  if (w->name_count == w->name_capacity) {
    size_t capacity = w->name_capacity ? w->name_capacity * 2 : 16;
    struct link_name *grown = realloc(w->names, capacity * sizeof *grown);
    if (!grown) return -1;
    w->names = grown;
    w->name_capacity = capacity;
  }
  w->names[w->name_count].index = index;
  memcpy(w->names[w->name_count].name, name, IFNAMSIZ);
  w->name_count++;
  return 0;
}

/* Only mode: family, prefix length, type, a zero byte, the hop count (2, host order: RTA_MULTIPATH
 * holds up to 8,191 hops, and the netlink writer writes routes past 255), the destination (4 or 16
 * bytes), then per hop its link index (4), whether it has a gateway (1), 3 bytes of padding and the
 * gateway (4 or 16). */
#define OWN_HEAD 6

/* One hop of a record take_own_route is writing, after what is kept already. */
static int keep_hop(struct dump_work *w, int fd, uint32_t index, const void *gateway, size_t address) {
  uint8_t hop[8 + 16];
  memset(hop, 0, sizeof hop);
  memcpy(hop, &index, 4);
  hop[4] = gateway != NULL;
  if (gateway) memcpy(hop + 8, gateway, address);
  if (note_link(w, fd, index) < 0) return -1;
  return keep_record(w, hop, 8 + address);
}

static int take_own_route(struct dump_work *w, int fd, const struct rtmsg *r, const void *dst, uint32_t oif, const void *gateway, const struct rtattr *multipath) {
  size_t address = r->rtm_family == AF_INET ? 4 : 16;
  uint8_t head[OWN_HEAD + 16];
  memset(head, 0, sizeof head);
  head[0] = r->rtm_family == AF_INET ? 4 : 6;
  head[1] = r->rtm_dst_len;
  head[2] = r->rtm_type;
  if (dst) memcpy(head + OWN_HEAD, dst, address);
  size_t start = w->out_length;
  if (keep_record(w, head, OWN_HEAD + address) < 0) return -1;
  uint16_t hops = 0;
  if (multipath) {
    int left = (int)RTA_PAYLOAD(multipath);
    for (const struct rtnexthop *nh = RTA_DATA(multipath); left >= (int)sizeof *nh && nh->rtnh_len >= sizeof *nh && nh->rtnh_len <= left && hops < UINT16_MAX;
         left -= RTNH_ALIGN(nh->rtnh_len), nh = RTNH_NEXT(nh)) {
      const void *hop_gateway = NULL;
      int attrs = nh->rtnh_len - (int)sizeof *nh;
      for (const struct rtattr *a = RTNH_DATA(nh); RTA_OK(a, attrs); a = RTA_NEXT(a, attrs))
        if (a->rta_type == RTA_GATEWAY && RTA_PAYLOAD(a) >= address) hop_gateway = RTA_DATA(a);
      if (keep_hop(w, fd, (uint32_t)nh->rtnh_ifindex, hop_gateway, address) < 0) return -1;
      hops++;
    }
  } else if (oif || gateway) {
    if (keep_hop(w, fd, oif, gateway, address) < 0) return -1;
    hops = 1;
  }
  memcpy(w->out + start + 4, &hops, 2); /* w->out may have moved as the hops were kept */
  return 0;
}

/* One RTM_NEWROUTE of the dump: kept as a record when of the main table and of the protocol asked for
 * (only mode) or of any other (else). */
static int take_route(struct dump_work *w, int fd, int family, const struct nlmsghdr *h) {
  const struct rtmsg *r = NLMSG_DATA(h);
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof *r)) return 0;
  /* A cached exception (a PMTU or a redirect for one address): not a route, and `ip route show`
   * leaves it out. A dump not strictly checked (a kernel older than 4.20) hands them over, one under
   * a route of ours with protocol 0, so it would pass for a host route of someone else's that
   * resolves its address. */
  if (r->rtm_flags & RTM_F_CLONED) return 0;
  /* The family asked for only: a kernel without IPv6 answers the IPv6 request with every family's. */
  if (r->rtm_family != family || (r->rtm_protocol == w->protocol) != w->only) return 0;
  uint32_t table = r->rtm_table;
  uint32_t oif = 0;
  const void *dst = NULL, *gateway = NULL;
  const struct rtattr *multipath = NULL;
  size_t dst_length = r->rtm_family == AF_INET ? 4 : 16;
  int left = (int)RTM_PAYLOAD(h);
  for (const struct rtattr *a = RTM_RTA(r); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
    if (a->rta_type == RTA_TABLE && RTA_PAYLOAD(a) >= 4) memcpy(&table, RTA_DATA(a), 4);
    else if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= 4) memcpy(&oif, RTA_DATA(a), 4);
    else if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) >= dst_length) dst = RTA_DATA(a);
    else if (a->rta_type == RTA_GATEWAY && RTA_PAYLOAD(a) >= dst_length) gateway = RTA_DATA(a);
    else if (a->rta_type == RTA_MULTIPATH) multipath = a;
  }
  if (table != RT_TABLE_MAIN) return 0;
  if (w->only) return take_own_route(w, fd, r, dst, oif, gateway, multipath);
  uint8_t record[RECORD];
  memset(record, 0, sizeof record);
  record[0] = r->rtm_family == AF_INET ? 4 : 6;
  record[1] = r->rtm_dst_len;
  record[2] = r->rtm_type;
  record[3] = r->rtm_protocol;
  memcpy(record + 4, &r->rtm_flags, 4);
  if (oif && !multipath) link_name(fd, oif, (char *)record + 8);
  if (dst) memcpy(record + 24, dst, dst_length);
  return keep_record(w, record, RECORD);
}

static int send_request(struct dump_work *w, int fd, const void *request, size_t length) {
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(fd, request, length, 0, (struct sockaddr *)&kernel, sizeof kernel) >= 0) return 0;
  w->what = "route dump: send";
  return -1;
}

/* One read of the kernel's answer into `buffer`: its length, or -1 with errno set and w->what saying why. */
static ssize_t receive(struct dump_work *w, int fd, uint8_t *buffer) {
  for (;;) {
    ssize_t n = recv(fd, buffer, RECV_BUFFER, 0);
    if (n >= 0 || errno != EINTR) {
      if (n < 0) w->what = errno == EAGAIN ? "route dump: no answer from the kernel" : "route dump: recv";
      return n;
    }
  }
}

/* The kernel sizes a dump's messages by the largest read of the socket so far (up to 32 KB), a page
 * before the first: a route whose next hops do not fit a page (~235 IPv4 or ~130 IPv6 gateways)
 * then ends the dump there, quietly, with every route after it left out (Linux 6.x; `ip -json`
 * loses them the same way). One acknowledged no-op read with the full buffer first. */
static int size_dump_messages(struct dump_work *w, int fd, uint8_t *buffer) {
  struct nlmsghdr noop = {.nlmsg_len = NLMSG_LENGTH(0), .nlmsg_type = NLMSG_NOOP, .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK};
  if (send_request(w, fd, &noop, sizeof noop) < 0) return -1;
  return receive(w, fd, buffer) < 0 ? -1 : 0;
}

/* Dumps one family's routes; 1 when the kernel marked the dump interrupted (read it again). */
static int dump_family(struct dump_work *w, int fd, int family, uint8_t *buffer) {
  struct {
    struct nlmsghdr h;
    struct rtmsg r;
  } request = {
      .h = {.nlmsg_len = sizeof request, .nlmsg_type = RTM_GETROUTE, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = (uint32_t)family},
      /* Filters the kernel applies under NETLINK_GET_STRICT_CHK (and ignores without): the main table, and in only mode the protocol. */
      .r = {.rtm_family = (unsigned char)family, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = (unsigned char)(w->only ? w->protocol : 0)},
  };
  if (send_request(w, fd, &request, sizeof request) < 0) return -1;
  int interrupted = 0;
  for (;;) {
    ssize_t n = receive(w, fd, buffer);
    if (n < 0) return -1;
    int left = (int)n;
    for (const struct nlmsghdr *h = (const struct nlmsghdr *)buffer; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = 1;
      if (h->nlmsg_type == NLMSG_DONE) {
        /* The dump's end carries the error that cut it short, if any (as iproute2 checks). ENOENT:
         * the table asked for does not exist (a namespace with no IPv4 route at all), so no routes. */
        int error = 0;
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof error)) memcpy(&error, NLMSG_DATA(h), sizeof error);
        if (error < 0 && error != -ENOENT) {
          errno = -error;
          w->what = "route dump: cut short";
          return -1;
        }
        return interrupted;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(h);
        errno = e->error ? -e->error : EIO;
        w->what = "route dump";
        return -1;
      }
      if (h->nlmsg_type == RTM_NEWROUTE && take_route(w, fd, family, h) < 0) {
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
  if (size_dump_messages(w, fd, buffer) < 0) w->err = errno ? errno : EIO;
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
  /* Only mode: the links' names follow the records (index 4, name IFNAMSIZ each), then their count (4). */
  if (w->only && !w->err) {
    for (size_t i = 0; i < w->name_count && !w->err; i++) {
      uint8_t entry[4 + IFNAMSIZ];
      memcpy(entry, &w->names[i].index, 4);
      memcpy(entry + 4, w->names[i].name, IFNAMSIZ);
      if (keep_record(w, entry, sizeof entry) < 0) w->err = ENOMEM;
    }
    uint32_t count = (uint32_t)w->name_count;
    if (!w->err && keep_record(w, (const uint8_t *)&count, 4) < 0) w->err = ENOMEM;
    if (w->err) w->what = "route dump: records";
  }
}

static void dump_complete(napi_env env, napi_status status, void *data) {
  struct dump_work *w = data;
  lightly_settle_with_bytes(env, w->deferred, status, w->err, w->what ? w->what : "route dump", w->out, w->out_length);
  napi_delete_async_work(env, w->work);
  free(w->out);
  free(w->names);
  free(w);
}

/* routeDump(netnsPath: string | null, protocol: number, only?: boolean): Promise<Buffer> — all but
 * `protocol`'s routes, RECORD bytes each; with `only`, that protocol's, as take_own_route writes them. */
static napi_value route_dump(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], promise, name;
  napi_valuetype type = napi_undefined;
  int32_t protocol;
  bool only = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "routeDump: (netnsPath, protocol, only?)");
    return NULL;
  }
  CHECK(napi_typeof(env, argv[0], &type));
  CHECK(napi_get_value_int32(env, argv[1], &protocol));
  if (argc > 2) {
    napi_valuetype only_type;
    CHECK(napi_typeof(env, argv[2], &only_type));
    if (only_type == napi_boolean) CHECK(napi_get_value_bool(env, argv[2], &only));
  }
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
  w->protocol = protocol;
  w->only = only;
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
