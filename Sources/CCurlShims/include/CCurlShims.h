/*
 * Typed shims for libcurl's variadic functions, which Swift cannot import: curl_easy_setopt,
 * curl_multi_setopt and curl_easy_getinfo, one function per argument type, as
 * swift-corelibs-foundation's CFURLSessionInterface does.
 */
#ifndef GENFLOW_CURL_SHIMS_H
#define GENFLOW_CURL_SHIMS_H

#include <curl/curl.h>

/* curl_easy_setopt, one per argument type. */
CURLcode gf_curl_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode gf_curl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode gf_curl_easy_setopt_ptr(CURL *handle, CURLoption option, void *value);
CURLcode gf_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode gf_curl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode gf_curl_easy_setopt_write_function(CURL *handle, CURLoption option,
                                            size_t (*callback)(char *, size_t, size_t, void *));
CURLcode gf_curl_easy_setopt_xferinfo_function(CURL *handle,
                                               int (*callback)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t));

/* curl_easy_getinfo, one per result type. */
CURLcode gf_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode gf_curl_easy_getinfo_double(CURL *handle, CURLINFO info, double *value);
CURLcode gf_curl_easy_getinfo_ptr(CURL *handle, CURLINFO info, void **value);

/* curl_multi_setopt, one per argument type. */
CURLMcode gf_curl_multi_setopt_long(CURLM *handle, CURLMoption option, long value);
CURLMcode gf_curl_multi_setopt_ptr(CURLM *handle, CURLMoption option, void *value);
CURLMcode gf_curl_multi_setopt_socket_function(CURLM *handle,
                                               int (*callback)(CURL *, curl_socket_t, int, void *, void *));
CURLMcode gf_curl_multi_setopt_timer_function(CURLM *handle, int (*callback)(CURLM *, long, void *));

#endif
