/* Request logging and request ids. On request headers it adds x-request-id when the client sent
 * none and logs method and path; on response headers it turns an upstream 500 into a 503 (so
 * clients retry); when the request is done it logs status and duration. No configuration. */
#include "proxy_wasm.h"

/* What one stream remembers between callbacks. */
typedef struct {
  uint64_t start_ns;
  char request_id[129]; /* the gateway accepts ids up to 128 bytes */
} stream_state;

static pw_ctx_map g_streams;

/* Writes a random UUID v4 (36 characters and a NUL) into `out`. */
static void new_request_id(char out[37]) {
  static const char hex[] = "0123456789abcdef";
  uint8_t b[16];
  if (pw_random(b, sizeof b) != 0) {
    /* No randomness: time and a counter still give ids unique within this instance. */
    static uint64_t counter;
    uint64_t t = pw_now_ns(), c = ++counter;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(t >> (8 * i));
    for (int i = 0; i < 8; i++) b[8 + i] = (uint8_t)(c >> (8 * i));
  }
  b[6] = (uint8_t)((b[6] & 0x0F) | 0x40);
  b[8] = (uint8_t)((b[8] & 0x3F) | 0x80);
  size_t o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = hex[b[i] >> 4];
    out[o++] = hex[b[i] & 15];
  }
  out[o] = '\0';
}

/* Reads a request attribute from its property, falling back to the pseudo-header. */
static char* request_attribute(const char* property, const char* header) {
  char* v = pw_get_property(property, NULL);
  return v ? v : pw_get_request_header(header, NULL);
}

uint32_t proxy_on_request_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  stream_state* s = (stream_state*)calloc(1, sizeof *s);
  if (!s) return PW_ACTION_CONTINUE;
  s->start_ns = pw_monotonic_ns();

  size_t len = 0;
  char* existing = pw_get_request_header("x-request-id", &len);
  if (existing && len > 0 && len < sizeof s->request_id) {
    memcpy(s->request_id, existing, len + 1);
  } else if (!existing || len == 0) {
    new_request_id(s->request_id);
    pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-request-id", s->request_id);
  } else {
    memcpy(s->request_id, existing, sizeof s->request_id - 1); /* an overlong id, cut for logs */
  }
  free(existing);

  char* method = request_attribute("request.method", ":method");
  char* path = request_attribute("request.path", ":path");
  pw_buf msg = {0};
  pw_buf_puts(&msg, "request ");
  pw_buf_puts(&msg, s->request_id);
  pw_buf_puts(&msg, " ");
  pw_buf_puts(&msg, method ? method : "-");
  pw_buf_puts(&msg, " ");
  pw_buf_puts(&msg, path ? path : "-");
  if (!msg.failed) pw_log(PW_LOG_INFO, msg.data);
  pw_buf_free(&msg);
  free(method);
  free(path);
  if (pw_ctx_put(&g_streams, id, s) != 0) free(s);
  return PW_ACTION_CONTINUE;
}

uint32_t proxy_on_response_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  size_t len = 0;
  char* status = pw_get_response_header(":status", &len);
  if (status && len == 3 && memcmp(status, "500", 3) == 0) {
    pw_set_header(PW_MAP_HTTP_RESPONSE_HEADERS, ":status", "503");
    stream_state* s = (stream_state*)pw_ctx_get(&g_streams, id);
    pw_buf msg = {0};
    pw_buf_puts(&msg, "request ");
    pw_buf_puts(&msg, s ? s->request_id : "-");
    pw_buf_puts(&msg, ": upstream answered 500, sent 503");
    if (!msg.failed) pw_log(PW_LOG_WARN, msg.data);
    pw_buf_free(&msg);
  }
  free(status);
  return PW_ACTION_CONTINUE;
}

void proxy_on_log(uint32_t id) {
  stream_state* s = (stream_state*)pw_ctx_get(&g_streams, id);
  if (!s) return; /* not an HTTP stream we saw, e.g. the plugin context */
  uint64_t elapsed_us = (pw_monotonic_ns() - s->start_ns) / 1000;
  char* status = pw_get_response_header(":status", NULL);
  uint64_t code = 0;
  pw_buf msg = {0};
  pw_buf_puts(&msg, "done ");
  pw_buf_puts(&msg, s->request_id);
  pw_buf_puts(&msg, " status=");
  if (status) {
    pw_buf_puts(&msg, status);
  } else if (pw_get_property_u64("response.code", &code) == 0) {
    pw_buf_u64(&msg, code);
  } else {
    pw_buf_puts(&msg, "-");
  }
  pw_buf_puts(&msg, " duration_ms=");
  pw_buf_u64(&msg, elapsed_us / 1000);
  pw_buf_puts(&msg, ".");
  char frac[4] = {(char)('0' + elapsed_us / 100 % 10), (char)('0' + elapsed_us / 10 % 10),
                  (char)('0' + elapsed_us % 10), 0};
  pw_buf_puts(&msg, frac);
  if (!msg.failed) pw_log(PW_LOG_INFO, msg.data);
  pw_buf_free(&msg);
  free(status);
}

void proxy_on_delete(uint32_t id) { free(pw_ctx_take(&g_streams, id)); }
