/*
 * The Linux and glibc parts that Swift's Glibc module leaves out: the epoll and eventfd headers,
 * and GNU extensions it hides (pthread_setname_np, accept4, the _np spawn actions).
 */
#ifndef GENFLOW_LINUX_H
#define GENFLOW_LINUX_H

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

/* Names the calling thread (pthread_setname_np, a GNU extension); Linux keeps at most 15 bytes
 * of `name`. Returns 0 or an errno value. */
int gf_set_current_thread_name(const char *name);

/* accept4 (a GNU extension) of an IPv4 connection, non-blocking, close-on-exec and TCP_NODELAY;
 * its peer's address in host byte order. Returns the descriptor or -1 (errno set). */
int gf_accept(int listening, uint32_t *address);

/* Starts `argv[0]` (an absolute path) without a shell: stdin from /dev/null, stdout and stderr to
 * `output_path`, working directory "/", and no other inherited descriptor (so a daemon it leaves
 * running cannot hold ours open). Returns the pid, or -errno. Uses glibc's _np spawn actions,
 * which Swift's Glibc module does not export. */
int gf_spawn(char *const argv[], const char *output_path);

#endif
