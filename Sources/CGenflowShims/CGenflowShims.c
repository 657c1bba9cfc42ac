#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <ev.h>
#include "CGenflowShims.h"

CURLcode gf_curl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
CURLcode gf_curl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
CURLcode gf_curl_easy_setopt_ptr(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
CURLcode gf_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
CURLcode gf_curl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}
CURLcode gf_curl_easy_setopt_write_function(CURL *handle, CURLoption option,
                                            size_t (*callback)(char *, size_t, size_t, void *)) {
    return curl_easy_setopt(handle, option, callback);
}
CURLcode gf_curl_easy_setopt_xferinfo_function(CURL *handle,
                                               int (*callback)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t)) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

CURLcode gf_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
CURLcode gf_curl_easy_getinfo_double(CURL *handle, CURLINFO info, double *value) {
    return curl_easy_getinfo(handle, info, value);
}
CURLcode gf_curl_easy_getinfo_ptr(CURL *handle, CURLINFO info, void **value) {
    return curl_easy_getinfo(handle, info, value);
}

CURLMcode gf_curl_multi_setopt_long(CURLM *handle, CURLMoption option, long value) {
    return curl_multi_setopt(handle, option, value);
}
CURLMcode gf_curl_multi_setopt_ptr(CURLM *handle, CURLMoption option, void *value) {
    return curl_multi_setopt(handle, option, value);
}
CURLMcode gf_curl_multi_setopt_socket_function(CURLM *handle,
                                               int (*callback)(CURL *, curl_socket_t, int, void *, void *)) {
    return curl_multi_setopt(handle, CURLMOPT_SOCKETFUNCTION, callback);
}
CURLMcode gf_curl_multi_setopt_timer_function(CURLM *handle, int (*callback)(CURLM *, long, void *)) {
    return curl_multi_setopt(handle, CURLMOPT_TIMERFUNCTION, callback);
}

int gf_set_current_thread_name(const char *name) {
    return pthread_setname_np(pthread_self(), name);
}

size_t gf_lws_pre(void) {
    return LWS_PRE;
}

extern char **environ;

int gf_spawn(char *const argv[], const char *output_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, output_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawn_file_actions_addchdir_np(&actions, "/");
    pid_t pid = 0;
    int result = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    return result == 0 ? (int)pid : -result;
}

void *gf_ev_loop_new(void) { return ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK); }
void gf_ev_run(void *loop) { ev_run((struct ev_loop *)loop, 0); }
void gf_ev_break(void *loop) { ev_break((struct ev_loop *)loop, EVBREAK_ALL); }
void gf_ev_loop_destroy(void *loop) { ev_loop_destroy((struct ev_loop *)loop); }

struct gf_timer { ev_timer watcher; gf_ev_fire fire; void *context; };
struct gf_readable { ev_io watcher; gf_ev_fire fire; void *context; };

static void gf_timer_fired(struct ev_loop *loop, ev_timer *watcher, int events) {
    struct gf_timer *timer = (struct gf_timer *)watcher;
    timer->fire(timer->context, -1);
}

static void gf_readable_fired(struct ev_loop *loop, ev_io *watcher, int events) {
    struct gf_readable *readable = (struct gf_readable *)watcher;
    readable->fire(readable->context, watcher->fd);
}

void *gf_ev_timer_start(void *loop, double seconds, gf_ev_fire fire, void *context) {
    struct gf_timer *timer = calloc(1, sizeof *timer);
    if (!timer) return NULL;
    timer->fire = fire;
    timer->context = context;
    ev_timer_init(&timer->watcher, gf_timer_fired, seconds, seconds);
    ev_timer_start((struct ev_loop *)loop, &timer->watcher);
    return timer;
}

void *gf_ev_readable_start(void *loop, int fd, gf_ev_fire fire, void *context) {
    struct gf_readable *readable = calloc(1, sizeof *readable);
    if (!readable) return NULL;
    readable->fire = fire;
    readable->context = context;
    ev_io_init(&readable->watcher, gf_readable_fired, fd, EV_READ);
    ev_io_start((struct ev_loop *)loop, &readable->watcher);
    return readable;
}

void gf_ev_timer_stop(void *loop, void *watcher) {
    ev_timer_stop((struct ev_loop *)loop, &((struct gf_timer *)watcher)->watcher);
    free(watcher);
}

void gf_ev_readable_stop(void *loop, void *watcher) {
    ev_io_stop((struct ev_loop *)loop, &((struct gf_readable *)watcher)->watcher);
    free(watcher);
}

int gf_accept(int listening, uint32_t *address) {
    struct sockaddr_in peer;
    socklen_t length = sizeof peer;
    int fd = accept4(listening, (struct sockaddr *)&peer, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return fd;
    *address = peer.sin_family == AF_INET ? ntohl(peer.sin_addr.s_addr) : 0;
    /* No Nagle, as lws's own accept sets (lws_plat_set_socket_options): a response's headers and
     * body, and each WebSocket message, are separate writes that must not wait for an ACK. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}
