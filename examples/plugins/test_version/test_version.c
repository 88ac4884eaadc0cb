/* Test plugin for hot swap: its configuration is a version tag. It notes the tag in the
 * request headers (x-plugin-version, seen by the upstream) and, on the response, answers
 * x-plugin-version: <tag seen by this request's request phase>/<tag now>. A request that ran
 * its two phases on two different module versions would show either two different tags or
 * "none" (its context unknown to the instance of the response phase). */
#include "proxy_wasm.h"

static char* g_tag;                 /* this instance's configured tag */
static pw_ctx_map g_tag_by_stream;  /* stream id -> the tag its request phase saw */

uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
  size_t len = 0;
  char* text = pw_get_plugin_config(config_size, &len);
  if (!text || len == 0 || len > 64) {
    free(text);
    return 0;
  }
  free(g_tag);
  g_tag = text;
  return 1;
}

uint32_t proxy_on_request_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-plugin-version", g_tag);
  pw_ctx_put(&g_tag_by_stream, id, g_tag);
  return PW_ACTION_CONTINUE;
}

uint32_t proxy_on_response_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  const char* seen = (const char*)pw_ctx_get(&g_tag_by_stream, id);
  pw_buf value = {0};
  pw_buf_puts(&value, seen ? seen : "none");
  pw_buf_puts(&value, "/");
  pw_buf_puts(&value, g_tag);
  if (!value.failed) pw_set_header(PW_MAP_HTTP_RESPONSE_HEADERS, "x-plugin-version", value.data);
  pw_buf_free(&value);
  return PW_ACTION_CONTINUE;
}

void proxy_on_delete(uint32_t id) { pw_ctx_take(&g_tag_by_stream, id); }
