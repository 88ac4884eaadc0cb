/* Test plugin for the ai.* properties. On request headers it reports what it reads
 * (request header x-ai-seen: model|stream|route|api_key_id) and re-routes when asked: request
 * header x-force-model sets ai.upstream_model, x-force-route sets ai.route. On response headers
 * it adds x-ai-upstream: provider|upstream_model|route|upstream. In proxy_on_log it logs the
 * usage ("ai usage in=N out=M cached=K"). */
#include "proxy_wasm.h"

/* Appends the property (or "-" when absent) to `out`. */
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

static void set_property(const char* raw_path, size_t path_len, const char* value, size_t len) {
  proxy_set_property(raw_path, path_len, value, len);
}

uint32_t proxy_on_request_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  pw_buf seen = {0};
  append_property(&seen, "ai.model");
  pw_buf_puts(&seen, "|");
  append_property(&seen, "ai.stream");
  pw_buf_puts(&seen, "|");
  append_property(&seen, "ai.route");
  pw_buf_puts(&seen, "|");
  append_property(&seen, "ai.api_key_id");
  if (!seen.failed) pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-ai-seen", seen.data);
  pw_buf_free(&seen);

  size_t len = 0;
  char* model = pw_get_request_header("x-force-model", &len);
  if (model) set_property("ai\0upstream_model", 17, model, len);
  free(model);
  char* route = pw_get_request_header("x-force-route", &len);
  if (route) set_property("ai\0route", 8, route, len);
  free(route);
  return PW_ACTION_CONTINUE;
}

uint32_t proxy_on_response_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  pw_buf seen = {0};
  append_property(&seen, "ai.provider");
  pw_buf_puts(&seen, "|");
  append_property(&seen, "ai.upstream_model");
  pw_buf_puts(&seen, "|");
  append_property(&seen, "ai.route");
  pw_buf_puts(&seen, "|");
  append_property(&seen, "ai.upstream");
  if (!seen.failed) pw_set_header(PW_MAP_HTTP_RESPONSE_HEADERS, "x-ai-upstream", seen.data);
  pw_buf_free(&seen);
  return PW_ACTION_CONTINUE;
}

void proxy_on_log(uint32_t id) {
  pw_buf line = {0};
  pw_buf_puts(&line, "ai usage in=");
  append_property(&line, "ai.usage.input_tokens");
  pw_buf_puts(&line, " out=");
  append_property(&line, "ai.usage.output_tokens");
  pw_buf_puts(&line, " cached=");
  append_property(&line, "ai.usage.cache_read_tokens");
  if (!line.failed) pw_log(PW_LOG_INFO, line.data);
  pw_buf_free(&line);
}
