{
  "targets": [
    {
      "target_name": "lightly_native",
      "sources": ["addon.c", "tcp_md5.c", "netlink.c", "netns.c", "route_watch.c", "route_dump.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
    }
  ]
}
