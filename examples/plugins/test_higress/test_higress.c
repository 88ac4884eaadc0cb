/* Test plugin for the Higress ABI (0.2.100) beyond Redis: the start-up calls of Higress's Go SDK
 * and the upstream-host functions.
 *
 * proxy_on_configure makes the calls wasm-go makes when a plugin starts (properties plugin_name
 * and plugin_root_id, the foreign function set_global_max_requests_per_io_cycle) and fails
 * the configuration if the host refuses any of them.
 * On request headers it sets the property x_request_id (as wasm-go does), reads route_name and
 * cluster_name, and reports to the upstream in request headers:
 *   x-higress-route: route_name;  x-higress-start: "plugin_name|root_id|foreign-status";
 *   x-upstream-hosts: the host:port of every endpoint of the route, comma-separated, each with
 *   "=H" (Healthy) or "=U".
 * When the request has a header x-override-host, its value goes to
 * proxy_set_upstream_override_host; x-override-status reports that call's status.
 * When a Redis is configured for plugins, proxy_on_done (where Higress's Go SDK runs
 * OnHttpStreamDone) counts the finished request: INCR test_higress:done. */
#include "proxy_wasm.h"

static char g_start[256] = "-";
static int g_redis;

void proxy_abi_version_0_2_100(void) {}

uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
  char* name = pw_get_property("plugin_name", NULL);
  char* root = pw_get_property("plugin_root_id", NULL);
  uint8_t param[8] = {20, 0, 0, 0, 0, 0, 0, 0};
  char* result = NULL;
  size_t result_size = 0;
  const char fn[] = "set_global_max_requests_per_io_cycle";
  pw_status_t st =
      proxy_call_foreign_function(fn, sizeof fn - 1, param, sizeof param, &result, &result_size);
  int ok = name && root && st == PW_STATUS_OK;
  if (ok) {
    pw_buf b = {0};
    pw_buf_puts(&b, name);
    pw_buf_puts(&b, "|");
    pw_buf_puts(&b, root[0] ? root : "-");
    pw_buf_puts(&b, "|");
    pw_buf_u64(&b, st);
    if (!b.failed && b.len < sizeof g_start) memcpy(g_start, b.data, b.len + 1);
    pw_buf_free(&b);
  }
  free(name);
  free(root);
  free(result);
  g_redis = proxy_redis_init("redis", 5, "", 0, "", 0, 500) == PW_STATUS_OK;
  return ok ? 1 : 0;
}

uint32_t proxy_on_request_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  size_t len = 0;
  char* request_id = pw_get_request_header("x-request-id", &len);
  if (request_id) pw_set_property("x_request_id", request_id, len);
  free(request_id);

  char* route = pw_get_property("route_name", NULL);
  pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-higress-route", route ? route : "-");
  free(route);
  pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-higress-start", g_start);

  char* raw = NULL;
  size_t raw_size = 0;
  pw_buf hosts = {0};
  if (proxy_get_upstream_hosts(&raw, &raw_size) == PW_STATUS_OK && raw) {
    pw_pair pairs[32];
    long n = pw_pairs_parse((const uint8_t*)raw, raw_size, pairs, 32);
    for (long i = 0; i < n && i < 32; i++) {
      if (i > 0) pw_buf_puts(&hosts, ",");
      pw_buf_append(&hosts, pairs[i].key, pairs[i].key_len);
      int healthy = strstr(pairs[i].value, "\"health_status\":\"Healthy\"") != NULL;
      pw_buf_puts(&hosts, healthy ? "=H" : "=U");
    }
  }
  free(raw);
  if (!hosts.failed)
    pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-upstream-hosts", hosts.data ? hosts.data : "");
  pw_buf_free(&hosts);

  char* wanted = pw_get_request_header("x-override-host", &len);
  if (wanted) {
    pw_buf status = {0};
    pw_buf_u64(&status, proxy_set_upstream_override_host(wanted, len));
    if (!status.failed)
      pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-override-status", status.data);
    pw_buf_free(&status);
  }
  free(wanted);
  return PW_ACTION_CONTINUE;
}

uint32_t proxy_on_done(uint32_t id) {
  if (g_redis) {
    static const char query[] = "*2\r\n$4\r\nINCR\r\n$17\r\ntest_higress:done\r\n";
    uint32_t token = 0;
    proxy_redis_call("redis", 5, query, sizeof query - 1, &token);
  }
  return 1;
}
