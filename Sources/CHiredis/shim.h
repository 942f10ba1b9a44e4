#ifndef CACHEGATEWAY_CHIREDIS_SHIM_H
#define CACHEGATEWAY_CHIREDIS_SHIM_H
// hiredis 0.14 (Debian 12). Its async API imports without wrappers:
// redisAsyncCommandArgv takes argv/argvlen, so no variadic function is needed.
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
// Exported by libhiredis 0.14.1 (async.c) but not declared in its headers: parses what the
// reader buffer holds and runs the reply callbacks, the second half of redisAsyncHandleRead.
// HiredisContext fills the reader buffer itself (one read(2) per reply instead of 16 KiB ones).
void redisProcessCallbacks(redisAsyncContext *ac);
#endif
