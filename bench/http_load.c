/*
 * Open-loop HTTP/1.1 load generator for bench/submit: requests on a fixed timetable over
 * keep-alive connections, one epoll loop on one thread, a timerfd for the timetable.
 *
 * Request i is due at start + i / rate whatever happened to the ones before it. A request that
 * finds every connection busy waits in a FIFO, and its latency is counted from when it was due,
 * not from when it went out (no coordinated omission). Each connection carries one request at a
 * time (no pipelining). Python's asyncio wakes up to a millisecond late (its epoll timeout is in
 * whole milliseconds), which is the size of what bench/submit measures, hence this program.
 *
 *   cc -O2 -o http_load bench/http_load.c
 *   http_load --port P [--host 127.0.0.1] [--rate 1000] [--seconds 10] [--warmup 1]
 *             [--connections 32] [--method GET] [--path /healthz] [--body JSON]
 *             [--tokens FILE] [--expect STATUS]
 *
 * FILE holds "user token" lines; request i carries token i mod count. Prints one JSON object
 * (the same fields as bench/http_load.py) and exits 0 when every measured request got STATUS.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    int busy;
    long index;           /* request in flight */
    double due, sent;
    char buf[1 << 16];
    size_t len;
} conn_t;

static const char *host = "127.0.0.1", *method = "GET", *path = "/healthz", *body = NULL, *tokens_file = NULL;
static int port = 0, nconn = 32, expect = 0;
static double rate = 1000, seconds = 10, warmup = 1;

static char **requests;   /* one prepared request per token */
static size_t *request_lens;
static int ntokens = 1;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, long n, double q) {
    if (n == 0) return 0;
    long i = (long)((q * n) + 0.999999999) - 1;
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    return v[i];
}

static void print_summary(const char *name, double *v, long n, int comma) {
    qsort(v, n, sizeof(double), cmp_double);
    printf("\"%s\": {\"n\": %ld, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p999\": %.3f, \"max\": %.3f}%s", name, n,
           pct(v, n, 0.5), pct(v, n, 0.9), pct(v, n, 0.99), pct(v, n, 0.999), n ? v[n - 1] : 0.0, comma ? ", " : "");
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void load_tokens(void) {
    char **tokens = NULL;
    int count = 0, cap = 0;
    if (tokens_file) {
        FILE *f = fopen(tokens_file, "r");
        if (!f) die(tokens_file);
        char line[4096];
        while (fgets(line, sizeof line, f)) {
            char user[512], token[3584];
            if (sscanf(line, "%511s %3583s", user, token) != 2) continue;
            if (count == cap) tokens = realloc(tokens, (cap = cap ? cap * 2 : 64) * sizeof *tokens);
            tokens[count++] = strdup(token);
        }
        fclose(f);
        if (count == 0) { fprintf(stderr, "http_load: no tokens in %s\n", tokens_file); exit(2); }
    }
    ntokens = count ? count : 1;
    requests = calloc(ntokens, sizeof *requests);
    request_lens = calloc(ntokens, sizeof *request_lens);
    for (int t = 0; t < ntokens; t++) {
        size_t cap_req = 8192 + (body ? strlen(body) : 0);
        char *r = malloc(cap_req);
        int n = snprintf(r, cap_req, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: genflow-bench\r\n", method, path, host, port);
        if (count) n += snprintf(r + n, cap_req - n, "Authorization: Bearer %s\r\n", tokens[t]);
        if (body) n += snprintf(r + n, cap_req - n, "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
        n += snprintf(r + n, cap_req - n, "\r\n%s", body ? body : "");
        requests[t] = r;
        request_lens[t] = (size_t)n;
    }
}

static int epfd;
static double start;  /* when request 0 is due (CLOCK_MONOTONIC seconds) */

static double due_time(long index) { return start + (double)index / rate; }

/* Puts request `index` on connection `c`, which is idle. */
static void send_request(conn_t *c, long index) {
    c->busy = 1;
    c->index = index;
    c->due = due_time(index);
    c->sent = now_s();
    size_t l = request_lens[index % ntokens];
    ssize_t w = write(c->fd, requests[index % ntokens], l);
    if (w != (ssize_t)l) { fprintf(stderr, "http_load: short write (%zd of %zu)\n", w, l); exit(2); }
}

static void open_conn(conn_t *c) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) { fprintf(stderr, "http_load: bad host %s\n", host); exit(2); }
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) die("socket");
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    c->busy = 0;
    c->len = 0;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "http_load: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--rate")) rate = atof(v);
        else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else if (!strcmp(a, "--warmup")) warmup = atof(v);
        else if (!strcmp(a, "--connections")) nconn = atoi(v);
        else if (!strcmp(a, "--method")) method = v;
        else if (!strcmp(a, "--path")) path = v;
        else if (!strcmp(a, "--body")) body = v;
        else if (!strcmp(a, "--tokens")) tokens_file = v;
        else if (!strcmp(a, "--expect")) expect = atoi(v);
        else { fprintf(stderr, "http_load: unknown option %s\n", a); return 2; }
        i++;
    }
    if (port <= 0 || rate <= 0 || nconn <= 0) { fprintf(stderr, "http_load: --port, --rate and --connections must be positive\n"); return 2; }
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  /* wake when the timer says, not 50 us later */
    load_tokens();

    long total = (long)(rate * (seconds + warmup) + 0.5), measured_from = (long)(rate * warmup + 0.5);
    long measured = total - measured_from;
    double *lat = calloc(measured + 1, sizeof(double)), *lag = calloc(measured + 1, sizeof(double));
    long nlat = 0, errors = 0, lost = 0, done = 0, next = 0;
    long statuses[600] = {0};
    int reported = 0;

    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    conn_t *conns = calloc(nconn, sizeof *conns);
    for (int i = 0; i < nconn; i++) open_conn(&conns[i]);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (tfd < 0) die("timerfd_create");
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);

    /* FIFO of due requests waiting for a connection. */
    long *backlog = calloc(total + 1, sizeof(long));
    long bhead = 0, btail = 0;

    double cpu0 = cpu_s();
    start = now_s() + 0.05;
    double measured_start = start + warmup;
    double last_due = start + (total - 1) / rate, sent_by = 0;
    int idle_count = nconn;

    /* A connection that is free takes the oldest waiting request, or becomes idle. */
#define RELEASE(c)                                            \
    do {                                                      \
        if (bhead < btail) send_request(c, backlog[bhead++]); \
        else idle_count++;                                    \
    } while (0)

    struct epoll_event events[256];
    while (done < total) {
        double t = now_s();
        /* Dispatch everything due. */
        while (next < total && due_time(next) <= t) {
            conn_t *c = NULL;
            if (idle_count > 0) {
                for (int i = 0; i < nconn; i++) if (!conns[i].busy && conns[i].fd >= 0) { c = &conns[i]; break; }
            }
            if (c) { idle_count--; send_request(c, next); } else backlog[btail++] = next;
            next++;
            if (next == total) sent_by = now_s();
        }
        if (next < total) {
            double d = due_time(next);
            struct itimerspec its = {0};
            its.it_value.tv_sec = (time_t)d;
            its.it_value.tv_nsec = (long)((d - (time_t)d) * 1e9);
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        if (next >= total && t > last_due + 60) {
            fprintf(stderr, "http_load: %ld requests unanswered 60 s after the last was due\n", total - done);
            errors += total - done;
            break;
        }
        int n = epoll_wait(epfd, events, 256, next < total ? -1 : 1000);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int e = 0; e < n; e++) {
            conn_t *c = events[e].data.ptr;
            if (!c) { uint64_t x; while (read(tfd, &x, sizeof x) > 0) {} continue; }
            ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len - 1);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) {
                /* Closed by the server: the request in flight failed; open a new connection. */
                int was_busy = c->busy;
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                open_conn(c);
                if (was_busy) { lost++; errors++; done++; RELEASE(c); }
                continue;
            }
            c->len += (size_t)r;
            c->buf[c->len] = 0;
            char *end = strstr(c->buf, "\r\n\r\n");
            if (!end || !c->busy) continue;
            size_t head = (size_t)(end - c->buf) + 4;
            long clen = 0;
            int closing = 0;
            for (char *line = strstr(c->buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
                if (!strncasecmp(line + 2, "content-length:", 15)) clen = atol(line + 17);
                if (!strncasecmp(line + 2, "connection: close", 17)) closing = 1;
            }
            if (c->len < head + (size_t)clen) continue;
            int status = atoi(c->buf + 9);
            double at = now_s();
            if (c->index >= measured_from) {
                lat[nlat] = (at - c->due) * 1e3;
                lag[nlat] = (c->sent - c->due) * 1e3;
                nlat++;
                if (status > 0 && status < 600) statuses[status]++;
                if (expect && status != expect) {
                    errors++;
                    if (reported++ < 3) fprintf(stderr, "http_load: request %ld answered %d: %.300s\n", c->index, status, c->buf + head);
                }
            }
            c->len = 0;  /* one request at a time: nothing else can be in the buffer */
            c->busy = 0;
            done++;
            if (closing) {
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                open_conn(c);
            }
            RELEASE(c);
        }
    }
    double end_t = now_s(), cpu = cpu_s() - cpu0;

    printf("{\"requests\": %ld, \"answered\": %ld, \"errors\": %ld, \"statuses\": {", measured, nlat, errors + (measured - nlat));
    int first = 1;
    for (int s = 0; s < 600; s++)
        if (statuses[s]) { printf("%s\"%d\": %ld", first ? "" : ", ", s, statuses[s]); first = 0; }
    printf("}, \"lost_connections\": %ld, \"rate_target\": %.1f, \"seconds\": %.1f, \"warmup\": %.1f, \"connections\": %d, ",
           lost, rate, seconds, warmup, nconn);
    printf("\"rate_achieved\": %.1f, \"schedule_overrun_ms\": %.3f, ", nlat / (end_t - measured_start), (sent_by - last_due) * 1e3);
    print_summary("latency_ms", lat, nlat, 1);
    print_summary("send_lag_ms", lag, nlat, 1);
    printf("\"client_cpu_s\": %.2f, \"client_cpu_pct\": %.1f, \"client\": \"c-epoll\"}\n", cpu, 100 * cpu / (end_t - start));
    return errors == 0 && nlat == measured ? 0 : 1;
}
