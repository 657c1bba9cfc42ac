/*
 * A libev loop (epoll on Linux) for libwebsockets to join as a foreign loop, so lws adds no signal
 * watchers of its own. libev's watchers are macros over structs, so they are wrapped here.
 */
#ifndef GENFLOW_EVENT_LOOP_H
#define GENFLOW_EVENT_LOOP_H

/* gf_ev_run runs the loop until gf_ev_break is called from inside it. */
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

#endif
