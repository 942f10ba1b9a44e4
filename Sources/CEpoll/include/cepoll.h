#ifndef CACHEGATEWAY_CEPOLL_H
#define CACHEGATEWAY_CEPOLL_H
#include <stdint.h>

// epoll for the server's event loops. Glibc's Swift module does not export <sys/epoll.h>, and
// `struct epoll_event` is packed on x86_64, which Swift imports poorly: these functions take and
// return plain integers instead.

enum {
    CG_EPOLLIN = 0x001,
    CG_EPOLLOUT = 0x004,
    CG_EPOLLERR = 0x008,
    CG_EPOLLHUP = 0x010,
    CG_EPOLLRDHUP = 0x2000,
};

/// epoll_create1(EPOLL_CLOEXEC).
int cg_epoll_create(void);
/// epoll_ctl(EPOLL_CTL_ADD) with `events` and `token` as the event's data.
int cg_epoll_add(int epfd, int fd, uint32_t events, uint64_t token);
/// epoll_ctl(EPOLL_CTL_MOD).
int cg_epoll_modify(int epfd, int fd, uint32_t events, uint64_t token);
/// epoll_ctl(EPOLL_CTL_DEL).
int cg_epoll_remove(int epfd, int fd);
/// epoll_wait into parallel arrays of tokens and event masks; returns the count, or -1 with errno.
int cg_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms);

/// eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC).
int cg_eventfd_create(void);
/// Adds 1 to the eventfd's counter (makes it readable).
void cg_eventfd_signal(int fd);
/// Reads the counter back to 0.
void cg_eventfd_drain(int fd);
/// ioctl(FIONREAD): bytes ready to read on a socket (0 when it fails).
int cg_readable_bytes(int fd);

#endif
