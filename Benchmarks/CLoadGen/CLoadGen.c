#define _GNU_SOURCE
#include "CLoadGen.h"
#include <errno.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

int lg_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int lg_epoll_add(int ep, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

int lg_epoll_modify(int ep, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static atomic_int have_pwait2 = 1;

int lg_epoll_wait(int ep, lg_event *events, int max, int64_t timeout_ns) {
    struct epoll_event raw[1024];
    if (max > 1024) max = 1024;
    int n;
    if (atomic_load_explicit(&have_pwait2, memory_order_relaxed)) {
        struct timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
        n = epoll_pwait2(ep, raw, max, timeout_ns < 0 ? NULL : &ts, NULL);
        if (n < 0 && errno == ENOSYS) {
            atomic_store(&have_pwait2, 0);
            return lg_epoll_wait(ep, events, max, timeout_ns);
        }
    } else {
        int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
        n = epoll_wait(ep, raw, max, ms);
    }
    for (int i = 0; i < n; i++) {
        events[i].data = raw[i].data.u64;
        events[i].events = raw[i].events;
    }
    return n;
}

int lg_socket_nonblocking(int family) {
    return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}
