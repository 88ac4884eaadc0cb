/* GitHub Models as a plugin: shapes an OpenAI-style request for https://models.github.ai.
 * The path becomes GitHub's inference path (/inference/chat/completions, /inference/embeddings,
 * or /orgs/<org>/inference/... to bill an organization), the upstream is authenticated with
 * "authorization: Bearer <token>", and a model named without its publisher ("gpt-4o") is asked
 * for as "<model_prefix><model>" ("openai/gpt-4o") through the ai.upstream_model property, so the
 * client keeps seeing the name it sent (the model is read from the body, or from ai.upstream_model
 * when an earlier plugin set it).
 *
 * Configuration: {"token": "github_pat_...", "model_prefix": "openai/", "org": "my-org",
 * "api_version": "2022-11-28"}; only "token" is required. The route's provider should be a
 * `generic` one on https://models.github.ai without api_tokens: sluice sends credential
 * headers that a plugin set only to providers that have no tokens of their own. */
#include "proxy_wasm.h"

/* GitHub logins are at most 39 characters; model names are short too. */
#define MAX_ORG_BYTES 39
#define MAX_MODEL_BYTES 256
#define MAX_PATH_BYTES 2048

static char* g_authorization; /* "Bearer <token>" */
static char* g_model_prefix;  /* "" or ends with '/' */
static char* g_base;          /* "/inference" or "/orgs/<org>/inference" */
static char* g_api_version;   /* x-github-api-version; "" sends none */

static void config_error(const char* why) {
  pw_buf msg = {0};
  pw_buf_puts(&msg, "github_models: ");
  pw_buf_puts(&msg, why);
  pw_buf_puts(&msg,
              "; expected {\"token\": \"...\", \"model_prefix\": \"openai/\", \"org\": \"...\"}");
  if (!msg.failed) pw_log(PW_LOG_ERROR, msg.data);
  pw_buf_free(&msg);
}

/* Reads optional string `key` of `doc` into *out (NULL when absent); 0 when well-formed. */
static int optional_string(pw_json doc, const char* key, char** out, size_t* len) {
  pw_json value;
  *out = NULL;
  if (pw_json_get(doc, key, &value) != 0) return 0;
  *out = pw_json_string(value, len);
  return *out ? 0 : -1;
}

static int printable_token(const char* s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) return 0;
  }
  return len > 0;
}

static int valid_org(const char* s, size_t len) {
  if (len == 0 || len > MAX_ORG_BYTES) return 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) {
      return 0;
    }
  }
  return 1;
}

uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
  size_t len = 0;
  char* text = pw_get_plugin_config(config_size, &len);
  if (!text) return 0;
  pw_json doc;
  char *token = NULL, *prefix = NULL, *org = NULL, *version = NULL;
  size_t token_len = 0, prefix_len = 0, org_len = 0, version_len = 0;
  pw_buf auth = {0}, base = {0}, model_prefix = {0};
  uint32_t ok = 0;
  if (pw_json_parse(text, len, &doc) != 0 || *doc.p != '{') {
    config_error("configuration is not a JSON object");
  } else if (optional_string(doc, "token", &token, &token_len) != 0 || !token) {
    config_error("\"token\" is missing or not a string");
  } else if (!printable_token(token, token_len)) {
    config_error("\"token\" must be non-empty, without spaces or control characters");
  } else if (optional_string(doc, "model_prefix", &prefix, &prefix_len) != 0 ||
             (prefix && (prefix_len > 64 || memchr(prefix, '"', prefix_len)))) {
    config_error("\"model_prefix\" must be a short string such as \"openai/\"");
  } else if (optional_string(doc, "org", &org, &org_len) != 0 ||
             (org && !valid_org(org, org_len))) {
    config_error("\"org\" must be a GitHub organization login (letters, digits, '-')");
  } else if (optional_string(doc, "api_version", &version, &version_len) != 0 ||
             (version && version_len > 0 && !printable_token(version, version_len))) {
    config_error("\"api_version\" must be a date such as \"2022-11-28\"");
  } else {
    pw_buf_puts(&auth, "Bearer ");
    pw_buf_append(&auth, token, token_len);
    if (org) {
      pw_buf_puts(&base, "/orgs/");
      pw_buf_append(&base, org, org_len);
    }
    pw_buf_puts(&base, "/inference");
    pw_buf_append(&model_prefix, "", 0);
    if (prefix && prefix_len > 0) {
      pw_buf_append(&model_prefix, prefix, prefix_len);
      /* "openai" and "openai/" mean the same publisher. */
      if (prefix[prefix_len - 1] != '/') pw_buf_puts(&model_prefix, "/");
    }
    ok = !auth.failed && !base.failed && !model_prefix.failed;
  }
  if (ok) {
    free(g_authorization);
    free(g_base);
    free(g_model_prefix);
    free(g_api_version);
    g_authorization = auth.data;
    g_base = base.data;
    g_model_prefix = model_prefix.data;
    g_api_version = version ? version : strdup("2022-11-28");
    version = NULL;
    ok = g_api_version != NULL;
  } else {
    pw_buf_free(&auth);
    pw_buf_free(&base);
    pw_buf_free(&model_prefix);
  }
  free(text);
  free(token);
  free(prefix);
  free(org);
  free(version);
  return ok;
}

/* The GitHub path for a client path, query kept; NULL when GitHub has no such endpoint. */
static char* github_path(const char* path, size_t len) {
  static const char* const kEndpoints[] = {"/chat/completions", "/embeddings"};
  size_t path_len = 0;
  while (path_len < len && path[path_len] != '?') path_len++;
  const char* p = path;
  size_t n = path_len;
  if (n >= 3 && memcmp(p, "/v1", 3) == 0) {
    p += 3;
    n -= 3;
  }
  for (size_t i = 0; i < sizeof kEndpoints / sizeof kEndpoints[0]; i++) {
    if (n != strlen(kEndpoints[i]) || memcmp(p, kEndpoints[i], n) != 0) continue;
    pw_buf out = {0};
    pw_buf_puts(&out, g_base);
    pw_buf_append(&out, p, n);
    pw_buf_append(&out, path + path_len, len - path_len);
    if (out.failed) {
      pw_buf_free(&out);
      return NULL;
    }
    return out.data;
  }
  return NULL;
}

uint32_t proxy_on_request_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  if (!g_authorization) return PW_ACTION_CONTINUE;
  size_t len = 0;
  char* path = pw_get_request_header(":path", &len);
  if (path && len <= MAX_PATH_BYTES) {
    char* shaped = github_path(path, len);
    if (shaped) {
      pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, ":path", shaped);
    } else {
      /* Other endpoints go out as they came: GitHub answers them itself (404). */
      pw_log(PW_LOG_DEBUG, "github_models: no GitHub Models path for this endpoint");
    }
    free(shaped);
  }
  free(path);

  pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, "authorization", g_authorization);
  if (g_api_version[0])
    pw_set_header(PW_MAP_HTTP_REQUEST_HEADERS, "x-github-api-version", g_api_version);

  return PW_ACTION_CONTINUE;
}

/* GitHub names models "<publisher>/<name>"; a bare name gets the configured publisher. This runs
 * on the body, after every plugin's header callback, so that it prefixes the model an earlier
 * plugin chose (in the body, or in ai.upstream_model) rather than the one the client sent. */
uint32_t proxy_on_request_body(uint32_t id, size_t body_size, uint32_t end_of_stream) {
  if (!g_model_prefix || !g_model_prefix[0] || !end_of_stream) return PW_ACTION_CONTINUE;
  size_t len = 0;
  char* model = pw_get_property("ai.upstream_model", &len);
  if (!model) {
    size_t body_len = 0;
    char* body = pw_get_buffer(PW_BUFFER_HTTP_REQUEST_BODY, body_size, &body_len);
    pw_json doc, value;
    if (body && pw_json_parse(body, body_len, &doc) == 0 &&
        pw_json_get(doc, "model", &value) == 0) {
      model = pw_json_string(value, &len);
    }
    free(body);
  }
  if (model && len > 0 && len <= MAX_MODEL_BYTES && !memchr(model, '/', len)) {
    pw_buf upstream = {0};
    pw_buf_puts(&upstream, g_model_prefix);
    pw_buf_append(&upstream, model, len);
    if (!upstream.failed) pw_set_property("ai.upstream_model", upstream.data, upstream.len);
    pw_buf_free(&upstream);
  }
  free(model);
  return PW_ACTION_CONTINUE;
}
