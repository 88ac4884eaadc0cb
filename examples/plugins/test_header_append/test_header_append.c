/* Test plugin: appends its configured suffix to request header x-chain, so that a chain of
 * instances with different suffixes shows the order in which they ran ("" + "a" + "b" = "ab").
 * Configuration: the suffix, as raw text, a JSON string ("a") or {"suffix": "a"}.
 * Each plugin (root) context keeps its own suffix, in case a host runs several in one VM. */
#include "proxy_wasm.h"

static pw_ctx_map g_suffix_by_root; /* root id -> char* suffix */
static pw_ctx_map g_root_by_stream; /* stream id -> root id */

uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
  size_t len = 0;
  char* text = pw_get_plugin_config(config_size, &len);
  if (!text) return 0;
  pw_json doc, v;
  char* suffix = NULL;
  if (pw_json_parse(text, len, &doc) == 0) {
    if (pw_json_get(doc, "suffix", &v) == 0) {
      suffix = pw_json_string(v, NULL);
    } else {
      suffix = pw_json_string(doc, NULL);
    }
  }
  if (suffix) {
    free(text);
  } else {
    suffix = text; /* raw text */
  }
  free(pw_ctx_take(&g_suffix_by_root, root_id));
  if (pw_ctx_put(&g_suffix_by_root, root_id, suffix) != 0) {
    free(suffix);
    return 0;
  }
  return 1;
}

void proxy_on_context_create(uint32_t id, uint32_t parent_id) {
  if (parent_id != 0) pw_ctx_put(&g_root_by_stream, id, (void*)(uintptr_t)parent_id);
}

void proxy_on_delete(uint32_t id) {
  if (pw_ctx_take(&g_root_by_stream, id) == NULL) free(pw_ctx_take(&g_suffix_by_root, id));
}

uint32_t proxy_on_request_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  uint32_t root = (uint32_t)(uintptr_t)pw_ctx_get(&g_root_by_stream, id);
  const char* suffix = (const char*)pw_ctx_get(&g_suffix_by_root, root);
  if (!suffix && g_suffix_by_root.count == 1) {
    /* Unknown parent (no context_create seen): the only configured root is it. */
    for (size_t i = 0; i < g_suffix_by_root.cap; i++) {
      if (g_suffix_by_root.ids[i]) suffix = (const char*)g_suffix_by_root.values[i];
    }
  }
  if (!suffix) return PW_ACTION_CONTINUE;
  size_t len = 0;
  char* current = pw_get_request_header("x-chain", &len);
  pw_buf value = {0};
  if (current) pw_buf_append(&value, current, len);
  pw_buf_puts(&value, suffix);
  if (!value.failed) pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-chain", value.data);
  pw_buf_free(&value);
  free(current);
  return PW_ACTION_CONTINUE;
}
