/* @file shim.h — the C side of tcp_chat: libuv, plus the few things Swift cannot spell. */
#ifndef TCP_CHAT_CUV_SHIM_H
#define TCP_CHAT_CUV_SHIM_H

#include <uv.h>
#include <sys/resource.h>
#include <signal.h>
#include <pthread.h>
#include <string.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* SIG_IGN is a macro cast of an integer to a function pointer: Swift cannot import it. */
static inline void cuv_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

/* A supervisor (or a test runner's thread) may start us with SIGINT/SIGTERM blocked; we
   stop cleanly on them, so make sure they can arrive. */
static inline void cuv_unblock_stop_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* Handles are cast between their "subclasses"; these keep the casts out of Swift. */
/* The soft limit on open files (RLIMIT_NOFILE): the node's connection budget derives from it. */
static inline long cuv_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000) return 1000000;
    return (long)rl.rlim_cur;
}

static inline uv_handle_t *cuv_handle(void *h) { return (uv_handle_t *)h; }
static inline uv_stream_t *cuv_stream(void *h) { return (uv_stream_t *)h; }

/* The port of an IPv4 or IPv6 socket address, in host order; -1 for other families. */
static inline int cuv_sockaddr_port(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return -1;
}

static inline void cuv_sockaddr_set_port(struct sockaddr *sa, int port) {
    if (sa->sa_family == AF_INET) ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
    else if (sa->sa_family == AF_INET6) ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

/* Text form of an address, "1.2.3.4:80" or "[::1]:80", into buf (at least 64 bytes). */
static inline int cuv_sockaddr_format(const struct sockaddr *sa, char *buf, size_t len) {
    char host[INET6_ADDRSTRLEN] = {0};
    int port = cuv_sockaddr_port(sa);
    if (sa->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)sa, host, sizeof host);
        return snprintf(buf, len, "%s:%d", host, port);
    }
    if (sa->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)sa, host, sizeof host);
        return snprintf(buf, len, "[%s]:%d", host, port);
    }
    return snprintf(buf, len, "?");
}

#endif
