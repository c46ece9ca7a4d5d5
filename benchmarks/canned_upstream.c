/* A canned upstream for the workers benchmark (issue 20): answers every POST with one of two
 * recorded bodies, so the upstream costs next to nothing and the gateway is what is measured.
 *
 *   gcc -O2 -o /tmp/canned benchmarks/canned_upstream.c
 *   /tmp/canned PORT JSON_BODY_FILE SSE_BODY_FILE
 *
 * HTTP/1.1 keep-alive, one thread, epoll. A request whose body contains `"stream":true` gets
 * the SSE body (text/event-stream), any other POST the JSON body; any GET gets 200 `{}`
 * (readiness probes). Bodies are sent with Content-Length in one write. Not a general
 * server: requests must carry Content-Length (no chunked uploads), which aiohttp does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXCONN 4096
#define BUFSZ 65536

static char *json_resp, *sse_resp, *get_resp;
static size_t json_len, sse_len, get_len;

typedef struct {
    char buf[BUFSZ];
    size_t len;
} conn_t;

static conn_t *conns[MAXCONN];

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *out = malloc(n + 1);
    if (fread(out, 1, n, f) != (size_t)n) { perror("read"); exit(1); }
    fclose(f);
    *len = n;
    return out;
}

static char *response(const char *ctype, const char *body, size_t blen, size_t *len) {
    char head[256];
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %zu\r\n\r\n",
                     ctype, blen);
    char *out = malloc(h + blen);
    memcpy(out, head, h);
    memcpy(out + h, body, blen);
    *len = h + blen;
    return out;
}

static void send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) continue; /* loopback: rare, retry */
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Answer every complete request in the buffer; keep an incomplete one. */
static void serve(int fd, conn_t *c) {
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) return;
        size_t head = (size_t)(end - c->buf) + 4, body = 0;
        for (char *p = c->buf; p < end; p++) {
            if ((p == c->buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
                body = strtoul(p + 15, NULL, 10);
                break;
            }
        }
        if (c->len < head + body) return;
        if (strncmp(c->buf, "GET", 3) == 0) {
            send_all(fd, get_resp, get_len);
        } else {
            int stream = memmem(c->buf + head, body, "\"stream\":true", 13) != NULL;
            if (stream) send_all(fd, sse_resp, sse_len);
            else send_all(fd, json_resp, json_len);
        }
        memmove(c->buf, c->buf + head + body, c->len - head - body);
        c->len -= head + body;
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s PORT JSON_BODY_FILE SSE_BODY_FILE\n", argv[0]);
        return 2;
    }
    size_t n;
    char *b = slurp(argv[2], &n);
    json_resp = response("application/json", b, n, &json_len);
    b = slurp(argv[3], &n);
    sse_resp = response("text/event-stream", b, n, &sse_len);
    get_resp = response("application/json", "{}", 2, &get_len);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 1024)) {
        perror("bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        int k = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < k; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int cfd;
                while ((cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (cfd >= MAXCONN) { close(cfd); continue; }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conns[cfd] = calloc(1, sizeof(conn_t));
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
                }
                continue;
            }
            conn_t *c = conns[fd];
            ssize_t r = read(fd, c->buf + c->len, BUFSZ - c->len);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
                free(c);
                conns[fd] = NULL;
                continue;
            }
            c->len += (size_t)r;
            serve(fd, c);
            if (c->len == BUFSZ) { /* a request larger than the buffer: drop it */
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
                free(c);
                conns[fd] = NULL;
            }
        }
    }
}
