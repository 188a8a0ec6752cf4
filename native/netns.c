/* Makes a socket inside another network namespace: a socket keeps the namespace it was made in, so the
 * calling thread enters the namespace only for the socket() call and comes straight back. */
#define _GNU_SOURCE
#include "addon.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

int lightly_socket_in_netns(const char *path, int (*make)(void *arg), void *arg, const char **what) {
  if (!path) return make(arg);
  int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (own < 0) {
    *what = "open own namespace";
    return -1;
  }
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(own);
    *what = path;
    errno = err;
    return -1;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int err = errno;
    close(own);
    close(target);
    *what = "enter namespace";
    errno = err;
    return -1;
  }
  int fd = make(arg);
  int err = errno;
  *what = "socket";
  /* Staying in the other namespace would move every later socket of this thread there. */
  if (setns(own, CLONE_NEWNET) < 0) napi_fatal_error("lightly_socket_in_netns", NAPI_AUTO_LENGTH, "cannot return to the agent's network namespace", NAPI_AUTO_LENGTH);
  close(own);
  close(target);
  errno = err;
  return fd;
}
