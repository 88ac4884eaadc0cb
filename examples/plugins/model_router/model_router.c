/* Model router: picks the model (or the route) of a request from a header or from a keyword in
 * the prompt.
 *
 * Configuration (at least one of "header" and "keywords"):
 *   {"header": "x-model-override",
 *    "keywords": [{"match": "#fast", "model": "small-model"},
 *                 {"match": "#local", "route": "local"}],
 *    "strip": true,          (default) remove the matched keyword from the prompt
 *    "set": "model"}         (default) or "upstream_model"
 *
 * A non-empty `header` on the request names the model; keywords are then not looked at.
 * Otherwise the first keyword (in configuration order) found in the text of the last "user"
 * message (string content or "text" parts; ASCII letters compared without case) applies. A
 * model is applied, by "set":
 *   "model"           the body's "model" is rewritten, and sluice routes the new name (mapping
 *                     and route included) as if the client had sent it;
 *   "upstream_model"  the ai.upstream_model property is set: same route, the upstream is asked
 *                     for that name, the client still sees its own.
 * A keyword's "route" sets the ai.route property: that route serves the request. */
#include "proxy_wasm.h"

#define MAX_KEYWORDS 64
#define MAX_NAME_BYTES 256
#define MAX_HEADER_NAME_BYTES 128

typedef struct {
  char* match;
  size_t match_len;
  uint32_t* next; /* KMP failure function of the lower-cased match */
  char* model;    /* NULL: not set */
  char* route;    /* NULL: not set */
} keyword;

static char* g_header;
static keyword* g_keywords;
static size_t g_num_keywords;
static int g_strip = 1;
static int g_set_upstream_model;

/* ---------------------------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------------------------- */

static void config_error(const char* why) {
  pw_buf msg = {0};
  pw_buf_puts(&msg, "model_router: ");
  pw_buf_puts(&msg, why);
  if (!msg.failed) pw_log(PW_LOG_ERROR, msg.data);
  pw_buf_free(&msg);
}

static void free_keywords(keyword* list, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(list[i].match);
    free(list[i].next);
    free(list[i].model);
    free(list[i].route);
  }
  free(list);
}

/* Reads the optional string `key` of `obj` (1..max bytes); 0 absent, 1 read, -1 invalid. */
static int read_name(pw_json obj, const char* key, size_t max, char** out, size_t* len) {
  pw_json value;
  size_t n = 0;
  *out = NULL;
  if (pw_json_get(obj, key, &value) != 0) return 0;
  char* s = pw_json_string(value, &n);
  if (!s || n == 0 || n > max || memchr(s, '\0', n)) {
    free(s);
    return -1;
  }
  *out = s;
  if (len) *len = n;
  return 1;
}

static int read_bool(pw_json obj, const char* key, int* out) {
  pw_json v;
  if (pw_json_get(obj, key, &v) != 0) return 0;
  size_t n = (size_t)(v.end - v.p);
  if (n == 4 && memcmp(v.p, "true", 4) == 0) {
    *out = 1;
  } else if (n == 5 && memcmp(v.p, "false", 5) == 0) {
    *out = 0;
  } else {
    return -1;
  }
  return 1;
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* Lower-cases the match and builds its KMP table, so that a search is linear in the text. */
static void prepare_match(keyword* k) {
  for (size_t i = 0; i < k->match_len; i++) k->match[i] = lower(k->match[i]);
  k->next[0] = 0;
  for (size_t i = 1, j = 0; i < k->match_len; i++) {
    while (j > 0 && k->match[i] != k->match[j]) j = k->next[j - 1];
    if (k->match[i] == k->match[j]) j++;
    k->next[i] = (uint32_t)j;
  }
}

/* Parses "keywords"; returns the count (0 is fine) or -1 with a logged reason. */
static long parse_keywords(pw_json doc, keyword** out) {
  pw_json list, elem;
  *out = NULL;
  if (pw_json_get(doc, "keywords", &list) != 0) return 0;
  if (*list.p != '[') {
    config_error("\"keywords\" must be a list of {\"match\", \"model\" or \"route\"}");
    return -1;
  }
  keyword* kws = (keyword*)calloc(MAX_KEYWORDS, sizeof(keyword));
  if (!kws) return -1;
  size_t n = 0;
  int rc;
  pw_json it = list;
  while ((rc = pw_json_next(&it, &elem)) == 1) {
    if (n == MAX_KEYWORDS) {
      config_error("\"keywords\" has more than 64 entries");
      free_keywords(kws, n);
      return -1;
    }
    keyword* k = &kws[n++];
    if (*elem.p != '{' || read_name(elem, "match", MAX_NAME_BYTES, &k->match, &k->match_len) != 1) {
      config_error("each keyword needs \"match\": a non-empty string of at most 256 bytes");
      free_keywords(kws, n);
      return -1;
    }
    k->next = (uint32_t*)malloc(k->match_len * sizeof(uint32_t));
    if (!k->next) {
      free_keywords(kws, n);
      return -1;
    }
    prepare_match(k);
    int has_model = read_name(elem, "model", MAX_NAME_BYTES, &k->model, NULL);
    int has_route = read_name(elem, "route", MAX_NAME_BYTES, &k->route, NULL);
    if (has_model < 0 || has_route < 0 || (has_model == 0 && has_route == 0)) {
      config_error("each keyword needs \"model\" or \"route\": a non-empty string");
      free_keywords(kws, n);
      return -1;
    }
  }
  if (rc < 0) {
    config_error("\"keywords\" is not a valid list");
    free_keywords(kws, n);
    return -1;
  }
  *out = kws;
  return (long)n;
}

uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
  size_t len = 0;
  char* text = pw_get_plugin_config(config_size, &len);
  if (!text) return 0;
  pw_json doc, set;
  char* header = NULL;
  keyword* kws = NULL;
  long n = -1;
  int strip = 1, upstream = 0;
  uint32_t ok = 0;
  if (pw_json_parse(text, len, &doc) != 0 || *doc.p != '{') {
    config_error(
        "configuration is not a JSON object; expected {\"header\": ..., \"keywords\": [...]}");
  } else if (read_name(doc, "header", MAX_HEADER_NAME_BYTES, &header, NULL) < 0) {
    config_error("\"header\" must be a header name");
  } else if ((n = parse_keywords(doc, &kws)) < 0) {
    /* logged */
  } else if (!header && n == 0) {
    config_error("nothing to route by: set \"header\" or a non-empty \"keywords\" list");
  } else if (read_bool(doc, "strip", &strip) < 0) {
    config_error("\"strip\" must be true or false");
  } else if (pw_json_get(doc, "set", &set) == 0 &&
             !(set.end - set.p == 7 && memcmp(set.p, "\"model\"", 7) == 0) &&
             !(upstream = set.end - set.p == 16 && memcmp(set.p, "\"upstream_model\"", 16) == 0)) {
    config_error("\"set\" must be \"model\" or \"upstream_model\"");
  } else {
    ok = 1;
  }
  free(text);
  if (!ok) {
    free(header);
    if (n > 0) free_keywords(kws, (size_t)n);
    return 0;
  }
  if (header) {
    for (char* c = header; *c; c++) {
      if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    }
  }
  free(g_header);
  free_keywords(g_keywords, g_num_keywords);
  g_header = header;
  g_keywords = kws;
  g_num_keywords = (size_t)n;
  g_strip = strip;
  g_set_upstream_model = upstream;
  return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Body edits: replace spans of the original body, applied in order
 * ------------------------------------------------------------------------------------------- */

typedef struct {
  size_t start, end; /* byte offsets in the body */
  pw_buf text;       /* what replaces them */
} edit;

#define MAX_EDITS 8

typedef struct {
  edit items[MAX_EDITS];
  size_t count;
} edits;

static edit* add_edit(edits* e, size_t start, size_t end) {
  if (e->count == MAX_EDITS) return NULL;
  edit* x = &e->items[e->count++];
  x->start = start;
  x->end = end;
  memset(&x->text, 0, sizeof x->text);
  return x;
}

static void free_edits(edits* e) {
  for (size_t i = 0; i < e->count; i++) pw_buf_free(&e->items[i].text);
  e->count = 0;
}

/* Builds the new body; NULL when the edits overlap or memory runs out. */
static char* apply_edits(const char* body, size_t len, edits* e, size_t* out_len) {
  for (size_t i = 1; i < e->count; i++) { /* insertion sort by start: a handful of items */
    for (size_t j = i; j > 0 && e->items[j].start < e->items[j - 1].start; j--) {
      edit t = e->items[j];
      e->items[j] = e->items[j - 1];
      e->items[j - 1] = t;
    }
  }
  pw_buf out = {0};
  size_t at = 0;
  for (size_t i = 0; i < e->count; i++) {
    const edit* x = &e->items[i];
    if (x->start < at || x->end > len || x->text.failed) {
      pw_buf_free(&out);
      return NULL;
    }
    pw_buf_append(&out, body + at, x->start - at);
    pw_buf_append(&out, x->text.data ? x->text.data : "", x->text.len);
    at = x->end;
  }
  pw_buf_append(&out, body + at, len - at);
  if (out.failed) {
    pw_buf_free(&out);
    return NULL;
  }
  *out_len = out.len;
  return out.data;
}

/* ---------------------------------------------------------------------------------------------
 * Keyword search in the last user message
 * ------------------------------------------------------------------------------------------- */

/* Offset of the first occurrence of the keyword in `text`, ASCII letters without case; -1 if
 * none. */
static long find_keyword(const keyword* k, const char* text, size_t len) {
  size_t j = 0;
  for (size_t i = 0; i < len; i++) {
    char c = lower(text[i]);
    while (j > 0 && c != k->match[j]) j = k->next[j - 1];
    if (c == k->match[j]) j++;
    if (j == k->match_len) return (long)(i + 1 - j);
  }
  return -1;
}

/* A string of the prompt that may hold a keyword: its JSON literal and its decoded text. */
typedef struct {
  pw_json literal;
  char* text;
  size_t len;
} candidate;

#define MAX_CANDIDATES 64

/* Collects the text strings of `content`: the string itself, or the "text" of its parts. */
static size_t collect_candidates(pw_json content, candidate* out) {
  size_t n = 0;
  if (*content.p == '"') {
    out[0].literal = content;
    out[0].text = pw_json_string(content, &out[0].len);
    return out[0].text ? 1 : 0;
  }
  pw_json it = content, part, text;
  while (n < MAX_CANDIDATES && pw_json_next(&it, &part) == 1) {
    if (*part.p != '{' || pw_json_get(part, "text", &text) != 0 || *text.p != '"') continue;
    out[n].literal = text;
    out[n].text = pw_json_string(text, &out[n].len);
    if (out[n].text) n++;
  }
  return n;
}

/* Finds the content of the last message whose role is "user"; 0 when there is none. */
static int last_user_content(pw_json doc, pw_json* content) {
  pw_json messages, message, role;
  int found = 0;
  if (pw_json_get(doc, "messages", &messages) != 0) return 0;
  pw_json it = messages;
  while (pw_json_next(&it, &message) == 1) {
    if (*message.p != '{' || pw_json_get(message, "role", &role) != 0) continue;
    size_t n = 0;
    char* name = pw_json_string(role, &n);
    int user = name && n == 4 && memcmp(name, "user", 4) == 0;
    free(name);
    if (user && pw_json_get(message, "content", content) == 0) found = 1;
  }
  return found;
}

/* The text with the keyword at `at` removed, and one space next to it so that no double space
 * is left behind ("#fast what" -> "what", "a #fast b" -> "a b"). */
static void strip_keyword(const candidate* c, size_t at, size_t len, pw_buf* out) {
  size_t start = at, end = at + len;
  if (end < c->len && c->text[end] == ' ') {
    end++;
  } else if (start > 0 && c->text[start - 1] == ' ') {
    start--;
  }
  pw_buf rest = {0};
  pw_buf_append(&rest, c->text, start);
  pw_buf_append(&rest, c->text + end, c->len - end);
  pw_buf_json_string(out, rest.data ? rest.data : "", rest.len);
  if (rest.failed) out->failed = 1;
  pw_buf_free(&rest);
}

/* ---------------------------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------------------------- */

static void log_choice(const char* what, const char* name) {
  pw_buf msg = {0};
  pw_buf_puts(&msg, "model_router: ");
  pw_buf_puts(&msg, what);
  pw_buf_puts(&msg, " ");
  pw_buf_puts(&msg, name);
  if (!msg.failed) pw_log(PW_LOG_DEBUG, msg.data);
  pw_buf_free(&msg);
}

/* Header values become JSON strings and properties: printable ASCII only. */
static int acceptable_model(const char* s, size_t len) {
  if (len == 0 || len > MAX_NAME_BYTES) return 0;
  for (size_t i = 0; i < len; i++) {
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f) return 0;
  }
  return 1;
}

uint32_t proxy_on_request_body(uint32_t id, size_t body_size, uint32_t end_of_stream) {
  if (!end_of_stream) return PW_ACTION_PAUSE;
  size_t len = 0;
  char* body = pw_get_buffer(PW_BUFFER_HTTP_REQUEST_BODY, body_size, &len);
  pw_json doc;
  if (!body || pw_json_parse(body, len, &doc) != 0 || *doc.p != '{') {
    free(body); /* sluice answers a malformed body itself */
    return PW_ACTION_CONTINUE;
  }

  const char* model = NULL;
  const char* route = NULL;
  char* header_value = NULL;
  edits e = {0};
  candidate cands[MAX_CANDIDATES];
  size_t num_cands = 0;

  size_t header_len = 0;
  if (g_header) header_value = pw_get_request_header(g_header, &header_len);
  if (header_value && header_len > 0) {
    if (acceptable_model(header_value, header_len)) model = header_value;
  } else if (g_num_keywords > 0) {
    pw_json content;
    if (last_user_content(doc, &content)) num_cands = collect_candidates(content, cands);
    for (size_t k = 0; k < g_num_keywords && !model && !route; k++) {
      const keyword* kw = &g_keywords[k];
      for (size_t c = 0; c < num_cands; c++) {
        long at = find_keyword(kw, cands[c].text, cands[c].len);
        if (at < 0) continue;
        model = kw->model;
        route = kw->route;
        if (g_strip) {
          edit* x = add_edit(&e, (size_t)(cands[c].literal.p - body),
                             (size_t)(cands[c].literal.end - body));
          if (x) strip_keyword(&cands[c], (size_t)at, kw->match_len, &x->text);
        }
        break;
      }
    }
  }

  if (route) {
    log_choice("route", route);
    pw_set_property("ai.route", route, strlen(route));
  }
  if (model && g_set_upstream_model) {
    log_choice("upstream model", model);
    pw_set_property("ai.upstream_model", model, strlen(model));
  } else if (model) {
    /* Every top-level "model" member, so that no parser reads an older duplicate. */
    log_choice("model", model);
    const char* p = pw_json_ws(doc.p + 1, doc.end);
    while (p < doc.end && *p == '"') {
      pw_json key = {p, pw_json_skip_string(p, doc.end)};
      if (!key.end) break;
      p = pw_json_ws(key.end, doc.end);
      if (p >= doc.end || *p++ != ':') break;
      pw_json value = {pw_json_ws(p, doc.end), pw_json_skip(p, doc.end, 1)};
      if (!value.end) break;
      size_t n = 0;
      char* name = pw_json_string(key, &n);
      if (name && n == 5 && memcmp(name, "model", 5) == 0) {
        edit* x = add_edit(&e, (size_t)(value.p - body), (size_t)(value.end - body));
        if (x) pw_buf_json_string(&x->text, model, strlen(model));
      }
      free(name);
      p = pw_json_ws(value.end, doc.end);
      if (p < doc.end && *p == ',') p = pw_json_ws(p + 1, doc.end);
    }
  }
  if (e.count > 0) {
    size_t new_len = 0;
    char* rewritten = apply_edits(body, len, &e, &new_len);
    if (rewritten) {
      proxy_set_buffer_bytes(PW_BUFFER_HTTP_REQUEST_BODY, 0, len, rewritten, new_len);
    } else {
      pw_log(PW_LOG_WARN, "model_router: could not rewrite the body; it goes unchanged");
    }
    free(rewritten);
  }
  free_edits(&e);
  for (size_t c = 0; c < num_cands; c++) free(cands[c].text);
  free(header_value);
  free(body);
  return PW_ACTION_CONTINUE;
}
