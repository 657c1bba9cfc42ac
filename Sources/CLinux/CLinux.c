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
#include "CLinux.h"

int gf_set_current_thread_name(const char *name) {
    return pthread_setname_np(pthread_self(), name);
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
