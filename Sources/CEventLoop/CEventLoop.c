#include <stdlib.h>
#include <ev.h>
#include "CEventLoop.h"

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
