#ifndef CACHEGATEWAY_CCURL_SHIM_H
#define CACHEGATEWAY_CCURL_SHIM_H
#include <curl/curl.h>

// libcurl's setopt/getinfo functions are variadic, and Swift does not import variadic C.
// Each wrapper below fixes the type of the third argument; the option decides which one
// libcurl reads (long, pointer, off_t or a function pointer), so pick the matching wrapper.

/// curl_easy_setopt with a `long` argument (CURLOPT_NOSIGNAL, CURLOPT_TIMEOUT_MS, ...).
static inline CURLcode cg_easy_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
/// curl_easy_setopt with a pointer argument (CURLOPT_URL, CURLOPT_PRIVATE, CURLOPT_HTTPHEADER, ...).
static inline CURLcode cg_easy_setopt_ptr(CURL *h, CURLoption o, const void *v) { return curl_easy_setopt(h, o, v); }
/// curl_easy_setopt with a `curl_off_t` argument (CURLOPT_POSTFIELDSIZE_LARGE, ...).
static inline CURLcode cg_easy_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
/// CURLOPT_WRITEFUNCTION / CURLOPT_HEADERFUNCTION / CURLOPT_READFUNCTION share one signature.
static inline CURLcode cg_easy_setopt_datafn(CURL *h, CURLoption o, size_t (*f)(char *, size_t, size_t, void *)) { return curl_easy_setopt(h, o, f); }
/// CURLOPT_OPENSOCKETFUNCTION.
static inline CURLcode cg_easy_setopt_opensocketfn(CURL *h, curl_opensocket_callback f) { return curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, f); }
/// CURLOPT_CLOSESOCKETFUNCTION.
static inline CURLcode cg_easy_setopt_closesocketfn(CURL *h, curl_closesocket_callback f) { return curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, f); }

/// curl_easy_getinfo for a `long` result (CURLINFO_RESPONSE_CODE, ...).
static inline CURLcode cg_easy_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
/// curl_easy_getinfo for a pointer result (CURLINFO_PRIVATE, ...).
static inline CURLcode cg_easy_getinfo_ptr(CURL *h, CURLINFO i, void **v) { return curl_easy_getinfo(h, i, v); }
/// curl_easy_getinfo for a `curl_off_t` result (CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, ...).
static inline CURLcode cg_easy_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v) { return curl_easy_getinfo(h, i, v); }

/// curl_multi_setopt with a `long` argument (CURLMOPT_MAX_HOST_CONNECTIONS, ...).
static inline CURLMcode cg_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }
/// curl_multi_setopt with a pointer argument (CURLMOPT_SOCKETDATA, CURLMOPT_TIMERDATA).
static inline CURLMcode cg_multi_setopt_ptr(CURLM *m, CURLMoption o, void *v) { return curl_multi_setopt(m, o, v); }
/// CURLMOPT_SOCKETFUNCTION.
static inline CURLMcode cg_multi_setopt_socketfn(CURLM *m, curl_socket_callback f) { return curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, f); }
/// CURLMOPT_TIMERFUNCTION.
static inline CURLMcode cg_multi_setopt_timerfn(CURLM *m, curl_multi_timer_callback f) { return curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, f); }

#endif
