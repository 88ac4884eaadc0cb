/* Test plugin for the upstream candidate filter. Configuration: {"reject": ["<endpoint id>",
 * ...] or "*" for every candidate, "reason": "rejected"}. In sluice_on_upstream_filter it logs
 * "upstream_filter saw <ai.candidates>" and rejects the candidates named (with `reason`, which
 * is passed through unchecked so that tests can see the host refuse a bad one: a refused
 * rejection logs "upstream_filter: reject refused <status>"). With "trap": true it traps after
 * its rejections, so that tests see the failure policy undo them. */
#include "proxy_wasm.h"

static char* g_config;  /* the configuration text */
static size_t g_config_len;
static char* g_reason;
static int g_trap;

uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
  g_config = pw_get_plugin_config(config_size, &g_config_len);
  pw_json doc, v;
  if (!g_config || pw_json_parse(g_config, g_config_len, &doc) != 0) return 0;
  g_reason = pw_json_get(doc, "reason", &v) == 0 ? pw_json_string(v, NULL) : NULL;
  g_trap = pw_json_get(doc, "trap", &v) == 0 && v.end - v.p == 4 && memcmp(v.p, "true", 4) == 0;
  return 1;
}

/* Whether the configuration rejects `id`. */
static int rejects(const char* id) {
  pw_json doc, list, it, item;
  if (pw_json_parse(g_config, g_config_len, &doc) != 0 || pw_json_get(doc, "reject", &list) != 0) {
    return 0;
  }
  char* all = pw_json_string(list, NULL);
  if (all) {
    int every = strcmp(all, "*") == 0;
    free(all);
    return every;
  }
  it = list;
  while (pw_json_next(&it, &item) == 1) {
    char* name = pw_json_string(item, NULL);
    int match = name && strcmp(name, id) == 0;
    free(name);
    if (match) return 1;
  }
  return 0;
}

uint32_t sluice_on_upstream_filter(uint32_t id, uint32_t num_candidates) {
  size_t len = 0;
  char* text = pw_get_property("ai.candidates", &len);
  if (!text) {
    pw_log(PW_LOG_WARN, "upstream_filter: no ai.candidates");
    return PW_ACTION_CONTINUE;
  }
  pw_buf line = {0};
  pw_buf_puts(&line, "upstream_filter saw ");
  pw_buf_append(&line, text, len);
  if (!line.failed) pw_log(PW_LOG_INFO, line.data);
  pw_buf_free(&line);
  pw_json list, it, candidate, v;
  if (pw_json_parse(text, len, &list) == 0) {
    it = list;
    for (uint32_t index = 0; pw_json_next(&it, &candidate) == 1; index++) {
      char* name = pw_json_get(candidate, "id", &v) == 0 ? pw_json_string(v, NULL) : NULL;
      if (name && rejects(name)) {
        pw_status_t status = pw_reject_candidate(index, g_reason ? g_reason : "rejected");
        if (status != PW_STATUS_OK) {
          pw_buf refused = {0};
          pw_buf_puts(&refused, "upstream_filter: reject refused ");
          pw_buf_u64(&refused, status);
          if (!refused.failed) pw_log(PW_LOG_WARN, refused.data);
          pw_buf_free(&refused);
        }
      }
      free(name);
    }
  }
  free(text);
  if (g_trap) __builtin_trap();
  return PW_ACTION_CONTINUE;
}
