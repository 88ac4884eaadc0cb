/* Test plugin: an HTTP call-out that holds the request until its answer arrives.
 * On request headers it calls GET /v1/models on the upstream named in its configuration (a
 * provider id: raw text, a JSON string or {"upstream": "..."}) and pauses the request. When the
 * answer arrives it adds the request headers x-call-status (the answer's :status) and
 * x-call-body-bytes (the size of the body it read), then resumes the request. A call that got no
 * answer (no headers: unknown upstream, connection refused, timeout) is answered with a local
 * 502 instead. Tests read both headers on the mock's GET /mock/last. */
#include "proxy_wasm.h"

static char* g_upstream;
static pw_ctx_map g_stream_by_token; /* call token + 1 -> stream context id */

uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
  size_t len = 0;
  char* text = pw_get_plugin_config(config_size, &len);
  if (!text) return 0;
  pw_json doc, v;
  char* upstream = NULL;
  if (pw_json_parse(text, len, &doc) == 0) {
    upstream =
        pw_json_get(doc, "upstream", &v) == 0 ? pw_json_string(v, NULL) : pw_json_string(doc, NULL);
  }
  if (upstream) {
    free(text);
  } else {
    upstream = text; /* raw text */
  }
  if (upstream[0] == '\0') {
    pw_log(PW_LOG_ERROR, "test_http_call: configuration must name an upstream");
    free(upstream);
    return 0;
  }
  free(g_upstream);
  g_upstream = upstream;
  return 1;
}

uint32_t proxy_on_request_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  pw_pair headers[] = {
      pw_pair_of(":method", "GET"),
      pw_pair_of(":path", "/v1/models"),
      pw_pair_of(":authority", "x"),
  };
  size_t size = 0;
  uint8_t* serialized = pw_pairs_serialize(headers, 3, &size);
  if (!serialized) return PW_ACTION_CONTINUE;
  uint32_t token = 0;
  pw_status_t st = proxy_http_call(g_upstream, strlen(g_upstream), serialized, size, NULL, 0, NULL,
                                   0, 5000, &token);
  free(serialized);
  if (st != PW_STATUS_OK) {
    pw_send_error(500, "test_http_call: proxy_http_call was refused", "plugin_error",
                  "http_call_refused", NULL, 0);
    return PW_ACTION_PAUSE;
  }
  /* The map's ids must be non-zero: key the call by token + 1. */
  pw_ctx_put(&g_stream_by_token, token + 1, (void*)(uintptr_t)id);
  return PW_ACTION_PAUSE;
}

void proxy_on_http_call_response(uint32_t root_id, uint32_t token, size_t num_headers,
                                 size_t body_size, size_t num_trailers) {
  uint32_t stream = (uint32_t)(uintptr_t)pw_ctx_take(&g_stream_by_token, token + 1);
  if (stream != 0) proxy_set_effective_context(stream);
  if (num_headers == 0) {
    pw_send_error(502, "test_http_call: the http call got no answer", "upstream_error",
                  "http_call_failed", NULL, 0);
    return;
  }
  char* status = pw_get_header(PW_MAP_HTTP_CALL_RESPONSE_HEADERS, ":status", NULL);
  size_t got = 0;
  char* body = pw_get_buffer(PW_BUFFER_HTTP_CALL_RESPONSE_BODY, body_size, &got);
  pw_buf bytes = {0};
  pw_buf_u64(&bytes, got);
  pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-call-status", status ? status : "none");
  if (!bytes.failed) pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-call-body-bytes", bytes.data);
  pw_buf_free(&bytes);
  free(body);
  free(status);
  proxy_continue_stream(PW_STREAM_HTTP_REQUEST);
}
