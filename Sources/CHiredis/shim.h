#ifndef CACHEGATEWAY_CHIREDIS_SHIM_H
#define CACHEGATEWAY_CHIREDIS_SHIM_H
// hiredis 0.14 (Debian 12). Its async API imports without wrappers:
// redisAsyncCommandArgv takes argv/argvlen, so no variadic function is needed.
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#endif
