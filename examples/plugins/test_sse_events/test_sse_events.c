/* Test plugin for whole-event delivery of streamed answers and for proxy_on_log. On request
 * headers it sets the property sluice.sse_events to "true" (unless the request has the header
 * x-sse-raw), so that proxy_on_response_body gets one whole SSE event at a time. Each event is
 * checked (it must end with its blank line and hold no other; otherwise "sse_events: partial
 * event" is logged), an event whose data holds "tok1 " is dropped (the body set empty), and every
 * "tok" of the others becomes "TOK". In proxy_on_log it logs what the gateway tells it of the
 * finished request: "on_log id=<request.id> status=<response.code> in=<ai.usage.input_tokens>
 * out=<ai.usage.output_tokens> duration_ms=<ai.duration_ms> ttft_ms=<ai.ttft_ms>
 * error=<ai.error>" ("-" for an absent property). No configuration. */
#include "proxy_wasm.h"

uint32_t proxy_on_request_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  char* raw = pw_get_request_header("x-sse-raw", NULL);
  if (!raw) pw_set_property("sluice.sse_events", "true", 4);
  free(raw);
  return PW_ACTION_CONTINUE;
}

static int contains(const char* text, size_t len, const char* needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= len; i++) {
    if (memcmp(text + i, needle, n) == 0) return 1;
  }
  return 0;
}

uint32_t proxy_on_response_body(uint32_t id, size_t body_size, uint32_t end_of_stream) {
  if (body_size == 0) return PW_ACTION_CONTINUE;
  size_t len = 0;
  char* event = pw_get_buffer(PW_BUFFER_HTTP_RESPONSE_BODY, body_size, &len);
  if (!event) return PW_ACTION_CONTINUE;
  /* Whole: "...\n\n" at the end and no blank line before it. */
  int whole = len >= 2 && event[len - 1] == '\n' && event[len - 2] == '\n' &&
              !contains(event, len - 1, "\n\n");
  if (!whole) pw_log(PW_LOG_WARN, "sse_events: partial event");
  if (contains(event, len, "tok1 ")) {
    proxy_set_buffer_bytes(PW_BUFFER_HTTP_RESPONSE_BODY, 0, len, "", 0);
  } else {
    int changed = 0;
    for (size_t i = 0; i + 3 <= len; i++) {
      if (memcmp(event + i, "tok", 3) == 0) {
        memcpy(event + i, "TOK", 3);
        changed = 1;
      }
    }
    if (changed) proxy_set_buffer_bytes(PW_BUFFER_HTTP_RESPONSE_BODY, 0, len, event, len);
  }
  free(event);
  return PW_ACTION_CONTINUE;
}

static void append_property(pw_buf* out, const char* dotted) {
  size_t len = 0;
  char* value = pw_get_property(dotted, &len);
  if (value) {
    pw_buf_append(out, value, len);
  } else {
    pw_buf_puts(out, "-");
  }
  free(value);
}

void proxy_on_log(uint32_t id) {
  pw_buf line = {0};
  uint64_t status = 0;
  pw_buf_puts(&line, "on_log id=");
  append_property(&line, "request.id");
  pw_buf_puts(&line, " status=");
  if (pw_get_property_u64("response.code", &status) == 0) {
    pw_buf_u64(&line, status);
  } else {
    pw_buf_puts(&line, "-");
  }
  pw_buf_puts(&line, " in=");
  append_property(&line, "ai.usage.input_tokens");
  pw_buf_puts(&line, " out=");
  append_property(&line, "ai.usage.output_tokens");
  pw_buf_puts(&line, " duration_ms=");
  append_property(&line, "ai.duration_ms");
  pw_buf_puts(&line, " ttft_ms=");
  append_property(&line, "ai.ttft_ms");
  pw_buf_puts(&line, " error=");
  append_property(&line, "ai.error");
  if (!line.failed) pw_log(PW_LOG_INFO, line.data);
  pw_buf_free(&line);
}
