/*
 * Typed shims for the parts of libcurl and libwebsockets that Swift cannot import:
 * variadic functions (curl_easy_setopt, curl_multi_setopt, curl_easy_getinfo) and
 * function-like or computed macros (LWS_PRE). One function per argument type, as
 * swift-corelibs-foundation's CFURLSessionInterface does. Also the Linux headers that
 * Swift's Glibc module leaves out (epoll, eventfd) and GNU extensions it hides.
 */
#ifndef GENFLOW_SHIMS_H
#define GENFLOW_SHIMS_H

#include <curl/curl.h>
#include <libwebsockets.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

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

/* Names the calling thread (pthread_setname_np, a GNU extension); Linux keeps at most 15 bytes
 * of `name`. Returns 0 or an errno value. */
int gf_set_current_thread_name(const char *name);

/* libwebsockets: the headroom lws_write needs before the payload. */
size_t gf_lws_pre(void);

/* A libev loop (epoll on Linux) for lws to join as a foreign loop, so lws adds no signal watchers
 * of its own. gf_ev_run runs it until gf_ev_break is called from inside it. */
void *gf_ev_loop_new(void);
void gf_ev_run(void *loop);
void gf_ev_break(void *loop);
void gf_ev_loop_destroy(void *loop);

/* Watchers on that loop, run on the thread that runs it. `fire` gets `context` and, for a
 * descriptor, the descriptor. A repeating timer fires every `seconds`; a descriptor watcher fires
 * while `fd` is readable. Stopping frees the watcher. */
typedef void (*gf_ev_fire)(void *context, int fd);
void *gf_ev_timer_start(void *loop, double seconds, gf_ev_fire fire, void *context);
void *gf_ev_readable_start(void *loop, int fd, gf_ev_fire fire, void *context);
void gf_ev_timer_stop(void *loop, void *watcher);
void gf_ev_readable_stop(void *loop, void *watcher);

/* accept4 (a GNU extension) of an IPv4 connection, non-blocking, close-on-exec and TCP_NODELAY;
 * its peer's address in host byte order. Returns the descriptor or -1 (errno set). */
int gf_accept(int listening, uint32_t *address);

/* Starts `argv[0]` (an absolute path) without a shell: stdin from /dev/null, stdout and stderr to
 * `output_path`, working directory "/", and no other inherited descriptor (so a daemon it leaves
 * running cannot hold ours open). Returns the pid, or -errno. Uses glibc's _np spawn actions,
 * which Swift's Glibc module does not export. */
int gf_spawn(char *const argv[], const char *output_path);

#endif
