/* @file shim.h — OpenSSL 3 for tcp_chat (docs/tls.md): the macros Swift cannot call, the
   safe defaults in one place, and a memory BIO shaped for a libuv loop. */
#ifndef TCP_CHAT_COPENSSL_SHIM_H
#define TCP_CHAT_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The safe defaults (docs/tls.md, "What is negotiated"): TLS 1.2 at least (1.3 preferred by
   OpenSSL), no renegotiation, no compression, AEAD suites with forward secrecy only, no
   session cache or tickets (a chat session is long; resumption would only cost memory), and
   buffers released while a session is idle. */
static inline int cssl_ctx_harden(SSL_CTX *ctx) {
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) return 0;
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE
                             | SSL_OP_NO_TICKET | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    if (!SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL")) return 0;
    if (!SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256")) return 0;
    return 1;
}

/* A node accepts any client certificate at the TLS layer and records the verification
   result: chat clients need none, and a peer link's HELLO is refused unless the result is
   X509_V_OK (the acceptor checks it then, see ClientHandler). */
static int cssl_verify_record_only(int ok, X509_STORE_CTX *ctx) { (void)ok; (void)ctx; return 1; }
static inline void cssl_ctx_verify_optional(SSL_CTX *ctx) { SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, cssl_verify_record_only); }
static inline void cssl_ctx_verify_required(SSL_CTX *ctx) { SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL); }

static inline long cssl_set_host_name(SSL *ssl, const char *name) { return SSL_set_tlsext_host_name(ssl, name); }

/* The last error on this thread's queue as text, or "" when empty; clears the queue. */
static inline void cssl_last_error(char *buf, size_t len) {
    unsigned long e = ERR_peek_last_error();
    if (e == 0) { if (len) buf[0] = 0; return; }
    ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

/* Seconds from now until the notAfter of the context's certificate; LONG_MIN when none. */
static inline long cssl_ctx_cert_seconds_left(SSL_CTX *ctx) {
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (!cert) return -2147483647L;
    int days = 0, secs = 0;
    if (!ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert))) return -2147483647L;
    return (long)days * 86400L + secs;
}

/* ---- The loop's BIO (the shape of Node.js's NodeBIO under TLSWrap) ----
   Input: the socket's bytes are lent to the BIO for one feed (no copy); OpenSSL reads them
   until it wants more. Output: what OpenSSL writes is appended to one malloc'd buffer that
   the runtime takes whole at flush time and hands to uv_write (freed in the write callback).
   An idle session holds neither. */
typedef struct {
    const unsigned char *in;
    size_t in_len;
    unsigned char *out;
    size_t out_len;
    size_t out_cap;
} cssl_io;

static int cssl_io_write(BIO *b, const char *data, int len) {
    cssl_io *io = (cssl_io *)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    if (io->out_len + (size_t)len > io->out_cap) {
        size_t cap = io->out_cap ? io->out_cap : 4096;
        while (cap < io->out_len + (size_t)len) cap *= 2;
        unsigned char *p = (unsigned char *)realloc(io->out, cap);
        if (!p) return -1;
        io->out = p;
        io->out_cap = cap;
    }
    memcpy(io->out + io->out_len, data, (size_t)len);
    io->out_len += (size_t)len;
    return len;
}

static int cssl_io_read(BIO *b, char *data, int len) {
    cssl_io *io = (cssl_io *)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (io->in_len == 0) { BIO_set_retry_read(b); return -1; }
    size_t n = (size_t)len < io->in_len ? (size_t)len : io->in_len;
    memcpy(data, io->in, n);
    io->in += n;
    io->in_len -= n;
    return (int)n;
}

static long cssl_io_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)num; (void)ptr;
    cssl_io *io = (cssl_io *)BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return (long)io->in_len;
    case BIO_CTRL_WPENDING: return (long)io->out_len;
    default: return 0;
    }
}

static int cssl_io_create(BIO *b) {
    cssl_io *io = (cssl_io *)calloc(1, sizeof(cssl_io));
    if (!io) return 0;
    BIO_set_data(b, io);
    BIO_set_init(b, 1);
    return 1;
}

static int cssl_io_destroy(BIO *b) {
    cssl_io *io = (cssl_io *)BIO_get_data(b);
    if (io) { free(io->out); free(io); }
    BIO_set_data(b, NULL);
    return 1;
}

static inline BIO_METHOD *cssl_io_method_new(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tcp_chat loop");
    BIO_meth_set_write(m, cssl_io_write);
    BIO_meth_set_read(m, cssl_io_read);
    BIO_meth_set_ctrl(m, cssl_io_ctrl);
    BIO_meth_set_create(m, cssl_io_create);
    BIO_meth_set_destroy(m, cssl_io_destroy);
    return m;
}

static inline cssl_io *cssl_io_of(BIO *b) { return (cssl_io *)BIO_get_data(b); }

/* Lends `len` bytes at `p` to the BIO until the next feed. */
static inline void cssl_io_feed(BIO *b, const void *p, size_t len) {
    cssl_io *io = cssl_io_of(b);
    io->in = (const unsigned char *)p;
    io->in_len = len;
}

/* Bytes OpenSSL read of the last feed; the rest is dropped (the runtime only stops early on close). */
static inline size_t cssl_io_unread(BIO *b) { return cssl_io_of(b)->in_len; }
static inline void cssl_io_forget_input(BIO *b) { cssl_io *io = cssl_io_of(b); io->in = NULL; io->in_len = 0; }

static inline size_t cssl_io_pending_out(BIO *b) { return cssl_io_of(b)->out_len; }

/* Takes the output buffer whole (the caller frees it with free()); the BIO starts afresh. */
static inline void *cssl_io_take_out(BIO *b, size_t *len) {
    cssl_io *io = cssl_io_of(b);
    void *p = io->out;
    *len = io->out_len;
    io->out = NULL;
    io->out_len = 0;
    io->out_cap = 0;
    return p;
}

/* Attaches one loop BIO to `ssl` for both directions. */
static inline BIO *cssl_attach_io(SSL *ssl, BIO_METHOD *m) {
    BIO *b = BIO_new(m);
    if (!b) return NULL;
    SSL_set_bio(ssl, b, b);
    return b;
}

#endif
