/* upstream_filter: keeps requests away from upstream workers that are down or busy, with
 * sluice's upstream candidate filter. After routing, before balancing, sluice calls
 * sluice_on_upstream_filter with the route's workers in the property ai.candidates; this plugin
 * rejects those that are not healthy (reason "unhealthy") and those with more than
 * max_outstanding requests in flight (reason "rate_limited"). The balancer then picks among the
 * rest; when none is left the client gets a 503 that names each worker and its reason.
 *
 * Configuration: {"max_outstanding": N} (N >= 0). */
#include "proxy_wasm.h"

static int64_t g_max_outstanding = -1;

uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
  size_t len = 0;
  char* text = pw_get_plugin_config(config_size, &len);
  if (!text) return 0;
  pw_json doc, v;
  int64_t limit = -1;
  int ok = pw_json_parse(text, len, &doc) == 0 && pw_json_get(doc, "max_outstanding", &v) == 0 &&
           pw_json_int(v, &limit) == 0 && limit >= 0;
  free(text);
  if (!ok) {
    pw_log(PW_LOG_ERROR, "upstream_filter: \"max_outstanding\" must be an integer >= 0");
    return 0;
  }
  g_max_outstanding = limit;
  return 1;
}

/* Whether member `key` of `candidate` is the JSON literal true. */
static int is_true(pw_json candidate, const char* key) {
  pw_json v;
  return pw_json_get(candidate, key, &v) == 0 && v.end - v.p == 4 && memcmp(v.p, "true", 4) == 0;
}

uint32_t sluice_on_upstream_filter(uint32_t id, uint32_t num_candidates) {
  size_t len = 0;
  char* text = pw_get_property("ai.candidates", &len);
  if (!text) return PW_ACTION_CONTINUE;
  pw_json list, it, candidate, v;
  if (pw_json_parse(text, len, &list) == 0) {
    it = list;
    for (uint32_t index = 0; pw_json_next(&it, &candidate) == 1; index++) {
      int64_t outstanding = 0;
      if (!is_true(candidate, "healthy")) {
        pw_reject_candidate(index, "unhealthy");
      } else if (pw_json_get(candidate, "outstanding", &v) == 0 &&
                 pw_json_int(v, &outstanding) == 0 && outstanding > g_max_outstanding) {
        pw_reject_candidate(index, "rate_limited");
      }
    }
  }
  free(text);
  return PW_ACTION_CONTINUE;
}
