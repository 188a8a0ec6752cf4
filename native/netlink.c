/* An rtnetlink socket for route writes: opened (optionally inside a named network namespace), fed
 * buffers of messages the caller encoded (routes/netlink-codec.ts), answered with the kernel's error
 * replies as raw bytes for the caller to decode. The kernel work runs on libuv's thread pool, so the
 * event loop never waits for it. One socket serves one send at a time: the caller queues them. */
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

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif

/* Error replies are kept until their piece is acknowledged: enough buffer for a piece of refusals. */
#define RCVBUF (4 * 1024 * 1024)
/* No kernel answer for this long means something is wrong: the send fails instead of hanging. */
#define REPLY_TIMEOUT_S 10

#define CHECK(call) LIGHTLY_CHECK("netlink", call)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[4400];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, message);
  return NULL;
}

int lightly_route_socket(void) {
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

static int open_route_socket(void *unused) {
  (void)unused;
  int fd = lightly_route_socket();
  if (fd < 0) return -1;
  int one = 1, size = RCVBUF;
  /* CAP_ACK: an error reply carries only the header of the refused message, not all of it. */
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  return fd;
}

/* netlinkOpen(netnsPath?: string): number — the socket's fd, in that namespace if given (netns.c). */
static napi_value netlink_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  napi_valuetype type = napi_undefined;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc > 0) CHECK(napi_typeof(env, argv[0], &type));
  char path[4096];
  if (type == napi_string) {
    size_t length;
    CHECK(napi_get_value_string_utf8(env, argv[0], path, sizeof path, &length));
  }
  const char *what = "netlink: socket";
  int fd = lightly_socket_in_netns(type == napi_string ? path : NULL, open_route_socket, NULL, &what);
  if (fd < 0) return throw_errno(env, what, errno);
  CHECK(napi_create_int32(env, fd, &result));
  return result;
}

static napi_value netlink_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  close(fd);
  return NULL;
}

/* netlinkPortId(fd): number — the socket's netlink port id, which the kernel assigned at bind (nl_pid
 * 0) and puts in nlmsg_pid of the notifications of the changes this socket asks for. */
static napi_value netlink_port_id(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  int32_t fd;
  struct sockaddr_nl local;
  socklen_t length = sizeof local;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  if (getsockname(fd, (struct sockaddr *)&local, &length) < 0) return throw_errno(env, "netlink: getsockname", errno);
  CHECK(napi_create_uint32(env, local.nl_pid, &result));
  return result;
}

/* netlinkIfIndex(fd, name): number — the link's index in the socket's namespace, 0 if none. A
 * netlink socket passes interface ioctls on to the device layer of its own namespace. */
static napi_value netlink_ifindex(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  int32_t fd;
  struct ifreq request;
  size_t length;
  memset(&request, 0, sizeof request);
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_string_utf8(env, argv[1], request.ifr_name, IFNAMSIZ, &length));
  int index = ioctl(fd, SIOCGIFINDEX, &request) < 0 ? 0 : request.ifr_ifindex;
  CHECK(napi_create_int32(env, index, &result));
  return result;
}

struct send_work {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref buffer_ref;
  int fd;
  const uint8_t *data;
  size_t length;
  /* Error replies (nlmsgerr with a non-zero error), concatenated as the kernel sent them. */
  uint8_t *errors;
  size_t errors_length, errors_capacity;
  int err;
  const char *what;
};

static int keep_error(struct send_work *w, const struct nlmsghdr *h) {
  if (w->errors_length + h->nlmsg_len > w->errors_capacity) {
    size_t capacity = w->errors_capacity ? w->errors_capacity * 2 : 65536;
    while (capacity < w->errors_length + h->nlmsg_len) capacity *= 2;
    uint8_t *grown = realloc(w->errors, capacity);
    if (!grown) return -1;
    w->errors = grown;
    w->errors_capacity = capacity;
  }
  memcpy(w->errors + w->errors_length, h, h->nlmsg_len);
  w->errors_length += h->nlmsg_len;
  return 0;
}

/* Reads replies until the one to `seq` (the piece's acknowledged last message) has come. */
static int await_ack(struct send_work *w, uint32_t seq, uint8_t *reply, size_t size) {
  for (;;) {
    ssize_t n = recv(w->fd, reply, size, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      w->what = errno == EAGAIN ? "netlink: no answer from the kernel" : "netlink: recv";
      return -1;
    }
    int left = (int)n; /* signed, as NLMSG_OK and NLMSG_NEXT expect: never wraps past the end */
    for (struct nlmsghdr *h = (struct nlmsghdr *)reply; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type != NLMSG_ERROR) continue;
      const struct nlmsgerr *e = NLMSG_DATA(h);
      if (e->error != 0 && keep_error(w, h) < 0) {
        errno = ENOMEM;
        w->what = "netlink: error replies";
        return -1;
      }
      if (h->nlmsg_seq == seq) return 0;
    }
  }
}

/* Sends the buffer in pieces, each ending with a message that asks for an acknowledgement
 * (NLM_F_ACK), and waits for that before the next: the error replies of one piece always fit
 * the receive buffer, so none is lost. */
static void send_execute(napi_env env, void *data) {
  (void)env;
  struct send_work *w = data;
  size_t size = 65536;
  uint8_t *reply = malloc(size);
  if (!reply) {
    w->err = ENOMEM;
    w->what = "netlink: reply buffer";
    return;
  }
  size_t start = 0, at = 0;
  while (at < w->length) {
    const struct nlmsghdr *h = (const struct nlmsghdr *)(w->data + at);
    if (w->length - at < sizeof *h || h->nlmsg_len < sizeof *h || h->nlmsg_len > w->length - at) {
      w->err = EINVAL;
      w->what = "netlink: a message's length runs past the buffer";
      break;
    }
    at += NLMSG_ALIGN(h->nlmsg_len);
    if (at > w->length) at = w->length;
    if (!(h->nlmsg_flags & NLM_F_ACK) && at < w->length) continue;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t sent;
    do sent = sendto(w->fd, w->data + start, at - start, 0, (struct sockaddr *)&kernel, sizeof kernel);
    while (sent < 0 && errno == EINTR);
    if (sent < 0) {
      w->err = errno;
      w->what = "netlink: send";
      break;
    }
    if (!(h->nlmsg_flags & NLM_F_ACK)) {
      w->err = EINVAL;
      w->what = "netlink: the last message must ask for an acknowledgement";
      break;
    }
    if (await_ack(w, h->nlmsg_seq, reply, size) < 0) {
      w->err = errno;
      break;
    }
    start = at;
  }
  free(reply);
}

void lightly_settle_with_bytes(napi_env env, napi_deferred deferred, napi_status status, int err, const char *what, const uint8_t *bytes, size_t length) {
  napi_value value;
  void *copy;
  if (status == napi_ok && err == 0 && napi_create_buffer_copy(env, length, bytes ? (const void *)bytes : (const void *)"", &copy, &value) == napi_ok) {
    napi_resolve_deferred(env, deferred, value);
    return;
  }
  if (status == napi_ok && err == 0) err = ENOMEM; /* the bytes could not be handed over */
  char message[4400];
  napi_value text;
  snprintf(message, sizeof message, "%s: %s", what, strerror(err ? err : EIO));
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, NULL, text, &value);
  napi_reject_deferred(env, deferred, value);
}

static void send_complete(napi_env env, napi_status status, void *data) {
  struct send_work *w = data;
  /* Replies that cannot be handed over fail the send: the caller compares with the kernel again. */
  lightly_settle_with_bytes(env, w->deferred, status, w->err, w->what ? w->what : "netlink", w->errors, w->errors_length);
  napi_delete_reference(env, w->buffer_ref);
  napi_delete_async_work(env, w->work);
  free(w->errors);
  free(w);
}

/* netlinkSend(fd, messages: Buffer): Promise<Buffer> — resolves with the error replies. */
static napi_value netlink_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], promise, name;
  int32_t fd;
  void *data;
  size_t length;
  bool is_buffer;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_is_buffer(env, argv[1], &is_buffer));
  if (!is_buffer) {
    napi_throw_type_error(env, NULL, "netlinkSend: messages must be a Buffer");
    return NULL;
  }
  CHECK(napi_get_buffer_info(env, argv[1], &data, &length));
  struct send_work *w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, "netlinkSend", ENOMEM);
  w->fd = fd;
  w->data = data;
  w->length = length;
  CHECK(napi_create_reference(env, argv[1], 1, &w->buffer_ref));
  CHECK(napi_create_promise(env, &w->deferred, &promise));
  CHECK(napi_create_string_utf8(env, "lightly.netlinkSend", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, send_execute, send_complete, w, &w->work));
  CHECK(napi_queue_async_work(env, w->work));
  return promise;
}

const char *lightly_register_netlink(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {
      {"netlinkOpen", netlink_open},
      {"netlinkClose", netlink_close},
      {"netlinkIfIndex", netlink_ifindex},
      {"netlinkPortId", netlink_port_id},
      {"netlinkSend", netlink_send},
  };
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn) != napi_ok) return "netlink: cannot create a function";
    if (napi_set_named_property(env, exports, functions[i].name, fn) != napi_ok) return "netlink: cannot export a function";
  }
  return NULL;
}
