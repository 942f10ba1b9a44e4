#ifndef CLOADGEN_H
#define CLOADGEN_H
// The few Linux calls the load generator needs that Glibc's Swift module does not import:
// epoll (and its packed `struct epoll_event`, which we never hand to Swift), and a socket
// created non-blocking and close-on-exec in one call.
#include <stdint.h>

/// One readiness event, unpacked: `data` is what was registered with the fd, `events` the
/// LG_EV_* bits that are ready.
typedef struct {
    uint64_t data;
    uint32_t events;
} lg_event;

enum {
    LG_EV_IN = 0x001,     // EPOLLIN
    LG_EV_OUT = 0x004,    // EPOLLOUT
    LG_EV_ERR = 0x008,    // EPOLLERR
    LG_EV_HUP = 0x010,    // EPOLLHUP
    LG_EV_RDHUP = 0x2000, // EPOLLRDHUP
};

/// `epoll_create1(EPOLL_CLOEXEC)`; -1 and errno on failure.
int lg_epoll_create(void);
/// `epoll_ctl(EPOLL_CTL_ADD)`, level-triggered; -1 and errno on failure.
int lg_epoll_add(int ep, int fd, uint32_t events, uint64_t data);
/// `epoll_ctl(EPOLL_CTL_MOD)`; -1 and errno on failure.
int lg_epoll_modify(int ep, int fd, uint32_t events, uint64_t data);
/// Waits for at most `max` (<= 1024) events, for at most `timeout_ns` nanoseconds (< 0: forever).
/// `epoll_pwait2` (nanosecond timeout) when the kernel has it, else `epoll_wait` with the
/// timeout rounded up to a millisecond. Returns the number of events, or -1 and errno (EINTR).
int lg_epoll_wait(int ep, lg_event *events, int max, int64_t timeout_ns);
/// `socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)`; -1 and errno on failure.
int lg_socket_nonblocking(int family);

#endif
