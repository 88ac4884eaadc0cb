/* Sluice guest SDK for C: the proxy-wasm ABI v0.2.1 as seen from a plugin, plus small helpers.
 *
 * Header only. Include it in the plugin's .c files, define the proxy_on_* callbacks you need
 * (they are declared below with their export names, so a definition is exported by itself and a
 * wrong signature fails to compile), and build for wasm32-wasi as a reactor; see
 * examples/plugins/README.md for the exact command. The header also defines, as weak symbols,
 * the two exports every plugin needs: proxy_abi_version_0_2_1 and proxy_on_memory_allocate
 * (define PW_NO_DEFAULT_EXPORTS to provide your own; the helpers realloc and free what the host
 * returns, so a replacement allocator must hand out malloc'd memory).
 *
 * Memory that the host returns (header values, buffers, properties) is allocated in the guest
 * with malloc through proxy_on_memory_allocate; helpers hand it to the caller, who frees it.
 * Only pure wasi-libc functions are used (malloc, memcpy, ...), so a plugin imports nothing
 * from WASI except what it calls through pw_now_ns / pw_random / pw_write.
 */
#ifndef SLUICE_PROXY_WASM_H
#define SLUICE_PROXY_WASM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Attributes
 * ------------------------------------------------------------------------------------------- */

#if defined(__wasm__)
/* Declares a proxy-wasm host function (import module "env"). */
#define PW_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
/* Declares a WASI host function (import module "wasi_snapshot_preview1"). */
#define PW_WASI_IMPORT(name) \
  __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))
/* Exports a function under `name` (callbacks below already carry it). */
#define PW_EXPORT(name) __attribute__((export_name(#name)))
#else
/* A native build (the SDK's own unit tests, with a fake host): plain C declarations. */
#define PW_IMPORT(name)
#define PW_WASI_IMPORT(name)
#define PW_EXPORT(name)
#endif
/* Marks a helper that a plugin may leave unused without a warning. */
#define PW_HELPER static inline __attribute__((unused))

/* ---------------------------------------------------------------------------------------------
 * Types (values fixed by the spec)
 * ------------------------------------------------------------------------------------------- */

/* proxy_status_t: what every host function returns. */
typedef uint32_t pw_status_t;
enum {
  PW_STATUS_OK = 0,
  PW_STATUS_NOT_FOUND = 1,
  PW_STATUS_BAD_ARGUMENT = 2,
  PW_STATUS_SERIALIZATION_FAILURE = 3,
  PW_STATUS_PARSE_FAILURE = 4,
  PW_STATUS_INVALID_MEMORY_ACCESS = 6,
  PW_STATUS_EMPTY = 7,
  PW_STATUS_CAS_MISMATCH = 8,
  PW_STATUS_INTERNAL_FAILURE = 10,
  PW_STATUS_UNIMPLEMENTED = 12,
};

/* proxy_log_level_t. */
enum {
  PW_LOG_TRACE = 0,
  PW_LOG_DEBUG = 1,
  PW_LOG_INFO = 2,
  PW_LOG_WARN = 3,
  PW_LOG_ERROR = 4,
  PW_LOG_CRITICAL = 5,
};

/* proxy_action_t: what stream callbacks return. */
enum {
  PW_ACTION_CONTINUE = 0,
  PW_ACTION_PAUSE = 1,
};

/* proxy_buffer_type_t: buffer_id of the buffer functions. */
enum {
  PW_BUFFER_HTTP_REQUEST_BODY = 0,
  PW_BUFFER_HTTP_RESPONSE_BODY = 1,
  PW_BUFFER_DOWNSTREAM_DATA = 2,
  PW_BUFFER_UPSTREAM_DATA = 3,
  PW_BUFFER_HTTP_CALL_RESPONSE_BODY = 4,
  PW_BUFFER_GRPC_CALL_MESSAGE = 5,
  PW_BUFFER_VM_CONFIGURATION = 6,
  PW_BUFFER_PLUGIN_CONFIGURATION = 7,
  PW_BUFFER_FOREIGN_FUNCTION_ARGUMENTS = 8,
  PW_BUFFER_REDIS_CALL_RESPONSE = 9, /* Higress ABI: during proxy_on_redis_call_response */
};

/* proxy_map_type_t: map_id of the header map functions. */
enum {
  PW_MAP_HTTP_REQUEST_HEADERS = 0,
  PW_MAP_HTTP_REQUEST_TRAILERS = 1,
  PW_MAP_HTTP_RESPONSE_HEADERS = 2,
  PW_MAP_HTTP_RESPONSE_TRAILERS = 3,
  PW_MAP_GRPC_CALL_INITIAL_METADATA = 4,
  PW_MAP_GRPC_CALL_TRAILING_METADATA = 5,
  PW_MAP_HTTP_CALL_RESPONSE_HEADERS = 6,
  PW_MAP_HTTP_CALL_RESPONSE_TRAILERS = 7,
};

/* proxy_peer_type_t: who closed a TCP connection. */
enum {
  PW_PEER_UNKNOWN = 0,
  PW_PEER_LOCAL = 1,
  PW_PEER_REMOTE = 2,
};

/* proxy_stream_type_t: which stream continue/close act on. */
enum {
  PW_STREAM_HTTP_REQUEST = 0,
  PW_STREAM_HTTP_RESPONSE = 1,
  PW_STREAM_DOWNSTREAM = 2,
  PW_STREAM_UPSTREAM = 3,
};

/* proxy_metric_type_t. */
enum {
  PW_METRIC_COUNTER = 0,
  PW_METRIC_GAUGE = 1,
  PW_METRIC_HISTOGRAM = 2,
};

/* WASI clock ids and the fds the host logs (stdout at info, stderr at error). */
enum {
  PW_WASI_CLOCK_REALTIME = 0,
  PW_WASI_CLOCK_MONOTONIC = 1,
  PW_WASI_STDOUT = 1,
  PW_WASI_STDERR = 2,
};

/* grpc_status argument of proxy_send_local_response meaning "not a gRPC response". */
#define PW_NO_GRPC_STATUS ((uint32_t)-1)

/* ---------------------------------------------------------------------------------------------
 * Host functions (module "env"). Sizes are size_t = 32 bits; out-pointers receive results.
 * ------------------------------------------------------------------------------------------- */

/* Logs `size` bytes of `data` at `level`. */
PW_IMPORT(proxy_log) pw_status_t proxy_log(uint32_t level, const char* data, size_t size);
/* Reads the host's current log level, to skip building messages it would drop. */
PW_IMPORT(proxy_get_log_level) pw_status_t proxy_get_log_level(uint32_t* level);
/* Reads the current time in ns (deprecated in favor of WASI clock_time_get). */
PW_IMPORT(proxy_get_current_time_nanoseconds)
pw_status_t proxy_get_current_time_nanoseconds(uint64_t* ns);
/* Calls proxy_on_tick every `ms` milliseconds on the plugin context; 0 stops it. */
PW_IMPORT(proxy_set_tick_period_milliseconds)
pw_status_t proxy_set_tick_period_milliseconds(uint32_t ms);

/* Replaces `size` bytes at `start` of buffer `type` with `data` (start past the end appends). */
PW_IMPORT(proxy_set_buffer_bytes)
pw_status_t proxy_set_buffer_bytes(uint32_t type, size_t start, size_t size, const void* data,
                                   size_t data_size);
/* Copies up to `max_size` bytes from `start` of buffer `type` into a new guest allocation. */
PW_IMPORT(proxy_get_buffer_bytes)
pw_status_t proxy_get_buffer_bytes(uint32_t type, size_t start, size_t max_size, char** data,
                                   size_t* size);
/* Reads the size of buffer `type` (`flags` is unused by v0.2.1). */
PW_IMPORT(proxy_get_buffer_status)
pw_status_t proxy_get_buffer_status(uint32_t type, size_t* size, uint32_t* flags);

/* Reads the serialized size of all pairs of `map`. */
PW_IMPORT(proxy_get_header_map_size)
pw_status_t proxy_get_header_map_size(uint32_t map, size_t* size);
/* Copies all pairs of `map`, serialized, into a new guest allocation. */
PW_IMPORT(proxy_get_header_map_pairs)
pw_status_t proxy_get_header_map_pairs(uint32_t map, char** data, size_t* size);
/* Replaces all pairs of `map` with a serialized map. */
PW_IMPORT(proxy_set_header_map_pairs)
pw_status_t proxy_set_header_map_pairs(uint32_t map, const void* data, size_t size);
/* Copies the value of `key` in `map` into a new guest allocation; NOT_FOUND when absent. */
PW_IMPORT(proxy_get_header_map_value)
pw_status_t proxy_get_header_map_value(uint32_t map, const char* key, size_t key_size, char** value,
                                       size_t* value_size);
/* Adds `key: value` to `map`, keeping existing values of `key`. */
PW_IMPORT(proxy_add_header_map_value)
pw_status_t proxy_add_header_map_value(uint32_t map, const char* key, size_t key_size,
                                       const char* value, size_t value_size);
/* Sets `key: value` in `map`, replacing existing values of `key`. */
PW_IMPORT(proxy_replace_header_map_value)
pw_status_t proxy_replace_header_map_value(uint32_t map, const char* key, size_t key_size,
                                           const char* value, size_t value_size);
/* Removes every value of `key` from `map` (OK when it was absent). */
PW_IMPORT(proxy_remove_header_map_value)
pw_status_t proxy_remove_header_map_value(uint32_t map, const char* key, size_t key_size);

/* Resumes a stream paused by returning PW_ACTION_PAUSE. */
PW_IMPORT(proxy_continue_stream) pw_status_t proxy_continue_stream(uint32_t stream);
/* Closes or resets a stream. */
PW_IMPORT(proxy_close_stream) pw_status_t proxy_close_stream(uint32_t stream);
/* Reads the status code and message of the http/gRPC call being answered. */
PW_IMPORT(proxy_get_status)
pw_status_t proxy_get_status(uint32_t* code, char** message, size_t* message_size);

/* Answers the request with a response made here; the request goes no further upstream. */
PW_IMPORT(proxy_send_local_response)
pw_status_t proxy_send_local_response(uint32_t status_code, const char* details,
                                      size_t details_size, const void* body, size_t body_size,
                                      const void* headers, size_t headers_size,
                                      uint32_t grpc_status);

/* Starts an HTTP call to `upstream`; proxy_on_http_call_response gets its `*token`. */
PW_IMPORT(proxy_http_call)
pw_status_t proxy_http_call(const char* upstream, size_t upstream_size, const void* headers,
                            size_t headers_size, const void* body, size_t body_size,
                            const void* trailers, size_t trailers_size, uint32_t timeout_ms,
                            uint32_t* token);
/* Starts a unary gRPC call; answers arrive in proxy_on_grpc_* with `*token`. */
PW_IMPORT(proxy_grpc_call)
pw_status_t proxy_grpc_call(const char* upstream, size_t upstream_size, const char* service,
                            size_t service_size, const char* method, size_t method_size,
                            const void* metadata, size_t metadata_size, const void* message,
                            size_t message_size, uint32_t timeout_ms, uint32_t* token);
/* Opens a gRPC stream; send on it with proxy_grpc_send. */
PW_IMPORT(proxy_grpc_stream)
pw_status_t proxy_grpc_stream(const char* upstream, size_t upstream_size, const char* service,
                              size_t service_size, const char* method, size_t method_size,
                              const void* metadata, size_t metadata_size, uint32_t* token);
/* Sends a message on a gRPC stream. */
PW_IMPORT(proxy_grpc_send)
pw_status_t proxy_grpc_send(uint32_t token, const void* message, size_t message_size,
                            uint32_t end_stream);
/* Cancels a gRPC call or stream. */
PW_IMPORT(proxy_grpc_cancel) pw_status_t proxy_grpc_cancel(uint32_t token);
/* Closes a gRPC call or stream. */
PW_IMPORT(proxy_grpc_close) pw_status_t proxy_grpc_close(uint32_t token);

/* Reads shared data `key` (shared by all instances of the VM) and its compare-and-swap token. */
PW_IMPORT(proxy_get_shared_data)
pw_status_t proxy_get_shared_data(const char* key, size_t key_size, char** value,
                                  size_t* value_size, uint32_t* cas);
/* Writes shared data `key`; a non-zero `cas` must still match, else CAS_MISMATCH. */
PW_IMPORT(proxy_set_shared_data)
pw_status_t proxy_set_shared_data(const char* key, size_t key_size, const void* value,
                                  size_t value_size, uint32_t cas);

/* Creates (or opens) the shared queue `name` owned by this VM. */
PW_IMPORT(proxy_register_shared_queue)
pw_status_t proxy_register_shared_queue(const char* name, size_t name_size, uint32_t* queue_id);
/* Opens the existing shared queue `name` of VM `vm_id`. */
PW_IMPORT(proxy_resolve_shared_queue)
pw_status_t proxy_resolve_shared_queue(const char* vm_id, size_t vm_id_size, const char* name,
                                       size_t name_size, uint32_t* queue_id);
/* Appends an item to a shared queue. */
PW_IMPORT(proxy_enqueue_shared_queue)
pw_status_t proxy_enqueue_shared_queue(uint32_t queue_id, const void* value, size_t value_size);
/* Pops the front item of a shared queue; EMPTY when there is none. */
PW_IMPORT(proxy_dequeue_shared_queue)
pw_status_t proxy_dequeue_shared_queue(uint32_t queue_id, char** value, size_t* value_size);

/* Defines a metric of `type` named `name`. */
PW_IMPORT(proxy_define_metric)
pw_status_t proxy_define_metric(uint32_t type, const char* name, size_t name_size,
                                uint32_t* metric_id);
/* Adds `delta` to a metric (counters cannot go down). */
PW_IMPORT(proxy_increment_metric)
pw_status_t proxy_increment_metric(uint32_t metric_id, int64_t delta);
/* Sets a gauge, or records a histogram sample. */
PW_IMPORT(proxy_record_metric) pw_status_t proxy_record_metric(uint32_t metric_id, uint64_t value);
/* Reads a metric's value. */
PW_IMPORT(proxy_get_metric) pw_status_t proxy_get_metric(uint32_t metric_id, uint64_t* value);

/* Reads the property at `path` (segments separated by NUL, e.g. "request\0path"). */
PW_IMPORT(proxy_get_property)
pw_status_t proxy_get_property(const char* path, size_t path_size, char** value,
                               size_t* value_size);
/* Sets the property at `path`. */
PW_IMPORT(proxy_set_property)
pw_status_t proxy_set_property(const char* path, size_t path_size, const void* value,
                               size_t value_size);

/* Makes `context_id` the context later host calls act on (e.g. after an http call answer). */
PW_IMPORT(proxy_set_effective_context) pw_status_t proxy_set_effective_context(uint32_t context_id);
/* Lets the host finish a context for which proxy_on_done returned 0. */
PW_IMPORT(proxy_done) pw_status_t proxy_done(void);
/* Calls a function the host registered under `name`; results in a new guest allocation. */
PW_IMPORT(proxy_call_foreign_function)
pw_status_t proxy_call_foreign_function(const char* name, size_t name_size, const void* args,
                                        size_t args_size, char** results, size_t* results_size);

/* sluice's AI extension (not proxy-wasm): during sluice_on_upstream_filter, rejects candidate
 * `index` of the ai.candidates array as this plugin read it. `reason` is "rate_limited",
 * "insufficient_quota", "unhealthy" or "rejected" (anything else: PW_STATUS_BAD_ARGUMENT;
 * PW_STATUS_NOT_FOUND outside the filter). */
PW_IMPORT(sluice_reject_candidate)
pw_status_t sluice_reject_candidate(uint32_t index, const char* reason, size_t reason_size);
/* Higress's ABI extension (0.2.100): a plugin that uses these also exports
 * proxy_abi_version_0_2_100 (see below). */
/* Prepares Redis calls to `cluster` with `timeout_ms` for each call. Sluice has one Redis for
 * plugins (config wasm.redis): every cluster name means it, username and password are not used;
 * NOT_FOUND when no Redis is configured. */
PW_IMPORT(proxy_redis_init)
pw_status_t proxy_redis_init(const char* cluster, size_t cluster_size, const char* username,
                             size_t username_size, const char* password, size_t password_size,
                             uint32_t timeout_ms);
/* Sends a RESP-encoded command (an array of bulk strings, see pw_redis_query); the answer
 * arrives in proxy_on_redis_call_response with `*token`. Pause the stream meanwhile. */
PW_IMPORT(proxy_redis_call)
pw_status_t proxy_redis_call(const char* cluster, size_t cluster_size, const void* query,
                             size_t query_size, uint32_t* token);
/* The endpoints of the request's route as pairs (host:port, JSON with id, provider, url,
 * health_status "Healthy"/"Unhealthy", outstanding) serialized like a header map. */
PW_IMPORT(proxy_get_upstream_hosts)
pw_status_t proxy_get_upstream_hosts(char** hosts, size_t* hosts_size);
/* Sends the request to this endpoint (host:port or the gateway's endpoint id) when it is in the
 * route and available; otherwise the route's balancer picks as usual. */
PW_IMPORT(proxy_set_upstream_override_host)
pw_status_t proxy_set_upstream_override_host(const char* host, size_t host_size);

/* ---------------------------------------------------------------------------------------------
 * WASI functions a proxy-wasm host provides (the others are not available).
 * ------------------------------------------------------------------------------------------- */

/* One piece of a fd_write. */
typedef struct {
  const void* buf;
  size_t len;
} pw_ciovec;

/* Writes to stdout (logged at info) or stderr (logged at error); returns a WASI errno. */
PW_WASI_IMPORT(fd_write)
uint32_t pw_wasi_fd_write(uint32_t fd, const pw_ciovec* iovs, size_t iovs_len, size_t* written);
/* Reads clock `id` in ns; returns a WASI errno. */
PW_WASI_IMPORT(clock_time_get)
uint32_t pw_wasi_clock_time_get(uint32_t id, uint64_t precision, uint64_t* ns);
/* Fills `buf` with random bytes; returns a WASI errno. */
PW_WASI_IMPORT(random_get) uint32_t pw_wasi_random_get(void* buf, size_t len);

/* ---------------------------------------------------------------------------------------------
 * Callbacks. Define the ones you need with exactly these signatures; they export themselves.
 * Booleans are 0/1; stream callbacks return a PW_ACTION_*.
 * ------------------------------------------------------------------------------------------- */

/* Allocates guest memory for the host (malloc is exported too, for older hosts). */
PW_EXPORT(proxy_on_memory_allocate) void* proxy_on_memory_allocate(size_t size);
/* A context starts: a plugin (root) context when `parent_id` is 0, else a stream context. */
PW_EXPORT(proxy_on_context_create) void proxy_on_context_create(uint32_t id, uint32_t parent_id);
/* The VM starts; its configuration is buffer PW_BUFFER_VM_CONFIGURATION. Return 1 if fine. */
PW_EXPORT(proxy_on_vm_start) uint32_t proxy_on_vm_start(uint32_t root_id, size_t config_size);
/* The plugin starts; its configuration is buffer PW_BUFFER_PLUGIN_CONFIGURATION. Return 1 if ok. */
PW_EXPORT(proxy_on_configure) uint32_t proxy_on_configure(uint32_t root_id, size_t config_size);
/* Timer set with proxy_set_tick_period_milliseconds. */
PW_EXPORT(proxy_on_tick) void proxy_on_tick(uint32_t root_id);
/* The host is done with a context: return 1 to let it go, 0 to call proxy_done later. */
PW_EXPORT(proxy_on_done) uint32_t proxy_on_done(uint32_t id);
/* Last look at a finished context (request/response headers are still readable). */
PW_EXPORT(proxy_on_log) void proxy_on_log(uint32_t id);
/* The context is gone: drop its state. */
PW_EXPORT(proxy_on_delete) void proxy_on_delete(uint32_t id);

/* Request headers arrived (map PW_MAP_HTTP_REQUEST_HEADERS). */
PW_EXPORT(proxy_on_request_headers)
uint32_t proxy_on_request_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream);
/* A request body chunk arrived (buffer PW_BUFFER_HTTP_REQUEST_BODY, `body_size` bytes so far). */
PW_EXPORT(proxy_on_request_body)
uint32_t proxy_on_request_body(uint32_t id, size_t body_size, uint32_t end_of_stream);
/* Request trailers arrived. */
PW_EXPORT(proxy_on_request_trailers)
uint32_t proxy_on_request_trailers(uint32_t id, size_t num_trailers);
/* Response headers arrived (map PW_MAP_HTTP_RESPONSE_HEADERS, ":status" included). */
PW_EXPORT(proxy_on_response_headers)
uint32_t proxy_on_response_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream);
/* A response body chunk arrived (buffer PW_BUFFER_HTTP_RESPONSE_BODY). */
PW_EXPORT(proxy_on_response_body)
uint32_t proxy_on_response_body(uint32_t id, size_t body_size, uint32_t end_of_stream);
/* Response trailers arrived. */
PW_EXPORT(proxy_on_response_trailers)
uint32_t proxy_on_response_trailers(uint32_t id, size_t num_trailers);

/* A TCP connection opened. */
PW_EXPORT(proxy_on_new_connection) uint32_t proxy_on_new_connection(uint32_t id);
/* Data from the client (buffer PW_BUFFER_DOWNSTREAM_DATA). */
PW_EXPORT(proxy_on_downstream_data)
uint32_t proxy_on_downstream_data(uint32_t id, size_t data_size, uint32_t end_of_stream);
/* Data from the upstream (buffer PW_BUFFER_UPSTREAM_DATA). */
PW_EXPORT(proxy_on_upstream_data)
uint32_t proxy_on_upstream_data(uint32_t id, size_t data_size, uint32_t end_of_stream);
/* The client connection closed. */
PW_EXPORT(proxy_on_downstream_connection_close)
void proxy_on_downstream_connection_close(uint32_t id, uint32_t peer);
/* The upstream connection closed. */
PW_EXPORT(proxy_on_upstream_connection_close)
void proxy_on_upstream_connection_close(uint32_t id, uint32_t peer);

/* Answer to proxy_http_call `token` (num_headers 0 means it failed). */
PW_EXPORT(proxy_on_http_call_response)
void proxy_on_http_call_response(uint32_t root_id, uint32_t token, size_t num_headers,
                                 size_t body_size, size_t num_trailers);
/* gRPC initial metadata arrived (map PW_MAP_GRPC_CALL_INITIAL_METADATA). */
PW_EXPORT(proxy_on_grpc_receive_initial_metadata)
void proxy_on_grpc_receive_initial_metadata(uint32_t root_id, uint32_t token, size_t num_elements);
/* A gRPC message arrived (buffer PW_BUFFER_GRPC_CALL_MESSAGE). */
PW_EXPORT(proxy_on_grpc_receive)
void proxy_on_grpc_receive(uint32_t root_id, uint32_t token, size_t message_size);
/* gRPC trailing metadata arrived (map PW_MAP_GRPC_CALL_TRAILING_METADATA). */
PW_EXPORT(proxy_on_grpc_receive_trailing_metadata)
void proxy_on_grpc_receive_trailing_metadata(uint32_t root_id, uint32_t token, size_t num_elements);
/* A gRPC call or stream closed with `status_code`. */
PW_EXPORT(proxy_on_grpc_close)
void proxy_on_grpc_close(uint32_t root_id, uint32_t token, uint32_t status_code);
/* An item was enqueued on shared queue `queue_id`. */
PW_EXPORT(proxy_on_queue_ready) void proxy_on_queue_ready(uint32_t root_id, uint32_t queue_id);

/* sluice's AI extension: after routing, before balancing, with the candidates (workers of the
 * route) in the property ai.candidates, a JSON array of {"id","provider","url","healthy",
 * "outstanding","cache_match"}; reject some with sluice_reject_candidate. Return
 * PW_ACTION_CONTINUE (PW_ACTION_PAUSE after a proxy_http_call, resumed as usual). */
PW_EXPORT(sluice_on_upstream_filter)
uint32_t sluice_on_upstream_filter(uint32_t id, uint32_t num_candidates);
/* The host called foreign callback `function_id` (args: PW_BUFFER_FOREIGN_FUNCTION_ARGUMENTS). */
PW_EXPORT(proxy_on_foreign_function)
void proxy_on_foreign_function(uint32_t root_id, uint32_t function_id, size_t args_size);

/* Answer to proxy_redis_call `token`: `status` 0 means the RESP reply (`response_size` bytes)
 * is in buffer PW_BUFFER_REDIS_CALL_RESPONSE; anything else means Redis did not answer. */
PW_EXPORT(proxy_on_redis_call_response)
void proxy_on_redis_call_response(uint32_t root_id, uint32_t token, uint32_t status,
                                  size_t response_size);
/* Marker export for Higress's ABI 0.2.100; define it (empty) in a plugin that uses the
 * proxy_redis_* or upstream-host functions. */
PW_EXPORT(proxy_abi_version_0_2_100) void proxy_abi_version_0_2_100(void);

/* Marker export by which hosts recognise ABI v0.2.1; weak, never called. */
PW_EXPORT(proxy_abi_version_0_2_1) void proxy_abi_version_0_2_1(void);

#ifndef PW_NO_DEFAULT_EXPORTS
__attribute__((weak)) void proxy_abi_version_0_2_1(void) {}
__attribute__((weak)) void* proxy_on_memory_allocate(size_t size) { return malloc(size); }
#endif

/* ---------------------------------------------------------------------------------------------
 * Helpers: logging, time, randomness
 * ------------------------------------------------------------------------------------------- */

/* Logs a NUL-terminated message. */
PW_HELPER pw_status_t pw_log(uint32_t level, const char* msg) {
  return proxy_log(level, msg, strlen(msg));
}

/* Returns 1 when the host would keep a message at `level` (1 too if it cannot tell). */
PW_HELPER int pw_log_enabled(uint32_t level) {
  uint32_t host_level = 0;
  return proxy_get_log_level(&host_level) != PW_STATUS_OK || level >= host_level;
}

/* Current wall-clock time in ns (WASI clock; the host may freeze it for a callback). */
PW_HELPER uint64_t pw_now_ns(void) {
  uint64_t ns = 0;
  if (pw_wasi_clock_time_get(PW_WASI_CLOCK_REALTIME, 1, &ns) != 0) {
    proxy_get_current_time_nanoseconds(&ns);
  }
  return ns;
}

/* Monotonic time in ns, for durations; falls back to wall-clock time. */
PW_HELPER uint64_t pw_monotonic_ns(void) {
  uint64_t ns = 0;
  if (pw_wasi_clock_time_get(PW_WASI_CLOCK_MONOTONIC, 1, &ns) != 0) return pw_now_ns();
  return ns;
}

/* Fills `buf` with `len` random bytes; returns 0 on success. */
PW_HELPER int pw_random(void* buf, size_t len) {
  return pw_wasi_random_get(buf, len) == 0 ? 0 : -1;
}

/* Writes `len` bytes to stdout/stderr through WASI (the host logs them). */
PW_HELPER int pw_write(uint32_t fd, const void* data, size_t len) {
  pw_ciovec iov = {data, len};
  size_t written = 0;
  return pw_wasi_fd_write(fd, &iov, 1, &written) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers: a growable string, always NUL-terminated
 * ------------------------------------------------------------------------------------------- */

/* A string being built; zero-initialize it. `failed` is set when an allocation failed. */
typedef struct {
  char* data;
  size_t len;
  size_t cap;
  int failed;
} pw_buf;

/* Appends `n` bytes. */
PW_HELPER void pw_buf_append(pw_buf* b, const void* p, size_t n) {
  if (b->failed) return;
  if (n > SIZE_MAX / 2 - b->len) {
    b->failed = 1;
    return;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1) cap *= 2;
    char* data = (char*)realloc(b->data, cap);
    if (!data) {
      b->failed = 1;
      return;
    }
    b->data = data;
    b->cap = cap;
  }
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

/* Appends a NUL-terminated string. */
PW_HELPER void pw_buf_puts(pw_buf* b, const char* s) { pw_buf_append(b, s, strlen(s)); }

/* Appends an unsigned integer in decimal. */
PW_HELPER void pw_buf_u64(pw_buf* b, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  pw_buf_append(b, tmp + sizeof tmp - n, n);
}

/* Appends `n` bytes as a quoted JSON string, escaping what JSON requires. */
PW_HELPER void pw_buf_json_string(pw_buf* b, const char* s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  pw_buf_append(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      pw_buf_append(b, esc, 2);
    } else if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      pw_buf_append(b, esc, 6);
    } else {
      pw_buf_append(b, s + i, 1);
    }
  }
  pw_buf_append(b, "\"", 1);
}

/* Frees the string and zeroes the struct. */
PW_HELPER void pw_buf_free(pw_buf* b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

/* Turns a host-returned allocation into a NUL-terminated string (also when it is empty). */
PW_HELPER char* pw_terminate(char* data, size_t len) {
  char* s = (char*)realloc(data, len + 1);
  if (!s) {
    free(data);
    return NULL;
  }
  s[len] = '\0';
  return s;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers: headers
 * ------------------------------------------------------------------------------------------- */

/* Returns the value of header `name` in `map`, malloc'd and NUL-terminated; NULL when absent. */
PW_HELPER char* pw_get_header(uint32_t map, const char* name, size_t* len) {
  char* data = NULL;
  size_t size = 0;
  if (proxy_get_header_map_value(map, name, strlen(name), &data, &size) != PW_STATUS_OK) {
    return NULL;
  }
  if (len) *len = size;
  return pw_terminate(data, size);
}

/* Returns request header `name` (see pw_get_header). */
PW_HELPER char* pw_get_request_header(const char* name, size_t* len) {
  return pw_get_header(PW_MAP_HTTP_REQUEST_HEADERS, name, len);
}

/* Returns response header `name` (see pw_get_header). */
PW_HELPER char* pw_get_response_header(const char* name, size_t* len) {
  return pw_get_header(PW_MAP_HTTP_RESPONSE_HEADERS, name, len);
}

/* Sets header `name` to `value`, replacing any previous values. */
PW_HELPER pw_status_t pw_set_header(uint32_t map, const char* name, const char* value) {
  return proxy_replace_header_map_value(map, name, strlen(name), value, strlen(value));
}

/* Adds a `name: value` header next to any existing ones. */
PW_HELPER pw_status_t pw_add_header(uint32_t map, const char* name, const char* value) {
  return proxy_add_header_map_value(map, name, strlen(name), value, strlen(value));
}

/* Removes header `name`. */
PW_HELPER pw_status_t pw_remove_header(uint32_t map, const char* name) {
  return proxy_remove_header_map_value(map, name, strlen(name));
}

/* One header (or metadata) pair; the bytes are not necessarily NUL-terminated. */
typedef struct {
  const char* key;
  size_t key_len;
  const char* value;
  size_t value_len;
} pw_pair;

/* Makes a pair from two NUL-terminated strings. */
PW_HELPER pw_pair pw_pair_of(const char* key, const char* value) {
  pw_pair p = {key, strlen(key), value, strlen(value)};
  return p;
}

/* Writes a little-endian u32, the ABI's integer encoding. */
PW_HELPER void pw_put_u32le(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* Reads a little-endian u32. */
PW_HELPER uint32_t pw_get_u32le(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Serializes pairs as the spec's map: u32 count, u32 key/value lengths, then key\0value\0 each. */
PW_HELPER uint8_t* pw_pairs_serialize(const pw_pair* pairs, size_t n, size_t* out_len) {
  size_t size = 4 + n * 8;
  for (size_t i = 0; i < n; i++) size += pairs[i].key_len + pairs[i].value_len + 2;
  uint8_t* out = (uint8_t*)malloc(size);
  if (!out) return NULL;
  pw_put_u32le(out, (uint32_t)n);
  uint8_t* lens = out + 4;
  uint8_t* bytes = out + 4 + n * 8;
  for (size_t i = 0; i < n; i++) {
    pw_put_u32le(lens + i * 8, (uint32_t)pairs[i].key_len);
    pw_put_u32le(lens + i * 8 + 4, (uint32_t)pairs[i].value_len);
    memcpy(bytes, pairs[i].key, pairs[i].key_len);
    bytes += pairs[i].key_len;
    *bytes++ = '\0';
    memcpy(bytes, pairs[i].value, pairs[i].value_len);
    bytes += pairs[i].value_len;
    *bytes++ = '\0';
  }
  *out_len = size;
  return out;
}

/* Parses a serialized map into at most `max` pairs pointing into `data` (`out` may be NULL to
 * only validate). Returns the number of pairs in the map, or -1 when it is malformed. */
PW_HELPER long pw_pairs_parse(const uint8_t* data, size_t len, pw_pair* out, size_t max) {
  if (len == 0 || (len == 1 && data[0] == 0)) return 0;
  if (len < 4) return -1;
  size_t n = pw_get_u32le(data);
  if (n > (len - 4) / 8) return -1;
  size_t off = 4 + n * 8;
  for (size_t i = 0; i < n; i++) {
    size_t key_len = pw_get_u32le(data + 4 + i * 8);
    size_t value_len = pw_get_u32le(data + 8 + i * 8);
    if (key_len >= len - off || data[off + key_len] != 0) return -1;
    const char* key = (const char*)data + off;
    off += key_len + 1;
    if (value_len >= len - off || data[off + value_len] != 0) return -1;
    if (out && i < max) {
      pw_pair p = {key, key_len, (const char*)data + off, value_len};
      out[i] = p;
    }
    off += value_len + 1;
  }
  return (long)n;
}

/* All pairs of a header map, as fetched by pw_get_header_map. */
typedef struct {
  char* raw;
  pw_pair* pairs;
  size_t count;
} pw_header_map;

/* Fetches and parses every pair of `map`; free with pw_header_map_free. */
PW_HELPER pw_status_t pw_get_header_map(uint32_t map, pw_header_map* out) {
  memset(out, 0, sizeof *out);
  size_t size = 0;
  pw_status_t st = proxy_get_header_map_pairs(map, &out->raw, &size);
  if (st != PW_STATUS_OK) return st;
  long n = pw_pairs_parse((const uint8_t*)out->raw, size, NULL, 0);
  if (n < 0) {
    free(out->raw);
    out->raw = NULL;
    return PW_STATUS_PARSE_FAILURE;
  }
  if (n > 0) {
    out->pairs = (pw_pair*)malloc((size_t)n * sizeof(pw_pair));
    if (!out->pairs) {
      free(out->raw);
      out->raw = NULL;
      return PW_STATUS_INTERNAL_FAILURE;
    }
    pw_pairs_parse((const uint8_t*)out->raw, size, out->pairs, (size_t)n);
  }
  out->count = (size_t)n;
  return PW_STATUS_OK;
}

/* Frees what pw_get_header_map returned. */
PW_HELPER void pw_header_map_free(pw_header_map* m) {
  free(m->raw);
  free(m->pairs);
  memset(m, 0, sizeof *m);
}

/* Replaces every pair of `map` with `pairs`. */
PW_HELPER pw_status_t pw_set_header_map(uint32_t map, const pw_pair* pairs, size_t n) {
  size_t size = 0;
  uint8_t* data = pw_pairs_serialize(pairs, n, &size);
  if (!data) return PW_STATUS_INTERNAL_FAILURE;
  pw_status_t st = proxy_set_header_map_pairs(map, data, size);
  free(data);
  return st;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers: buffers and configuration
 * ------------------------------------------------------------------------------------------- */

/* Returns the whole of buffer `type`, malloc'd and NUL-terminated (pass its size, or 0 to ask
 * the host); an absent or empty buffer gives "". NULL only when the host refuses. */
PW_HELPER char* pw_get_buffer(uint32_t type, size_t size, size_t* len) {
  if (len) *len = 0;
  if (size == 0) {
    uint32_t flags = 0;
    if (proxy_get_buffer_status(type, &size, &flags) != PW_STATUS_OK) size = 0;
  }
  char* data = NULL;
  size_t got = 0;
  if (size > 0) {
    pw_status_t st = proxy_get_buffer_bytes(type, 0, size, &data, &got);
    if (st == PW_STATUS_NOT_FOUND) {
      got = 0;
    } else if (st != PW_STATUS_OK) {
      return NULL;
    }
  }
  if (len) *len = got;
  return pw_terminate(data, got);
}

/* Returns the plugin configuration; call from proxy_on_configure with its `config_size`. */
PW_HELPER char* pw_get_plugin_config(size_t config_size, size_t* len) {
  return pw_get_buffer(PW_BUFFER_PLUGIN_CONFIGURATION, config_size, len);
}

/* Returns the VM configuration; call from proxy_on_vm_start with its `config_size`. */
PW_HELPER char* pw_get_vm_config(size_t config_size, size_t* len) {
  return pw_get_buffer(PW_BUFFER_VM_CONFIGURATION, config_size, len);
}

/* ---------------------------------------------------------------------------------------------
 * Helpers: local responses
 * ------------------------------------------------------------------------------------------- */

/* Answers the request with `status`, `body` and `headers`; `details` names the reason in logs. */
PW_HELPER pw_status_t pw_send_response(uint32_t status, const char* details, const char* body,
                                       size_t body_len, const pw_pair* headers, size_t n) {
  size_t headers_size = 0;
  uint8_t* serialized = pw_pairs_serialize(headers, n, &headers_size);
  if (!serialized) return PW_STATUS_INTERNAL_FAILURE;
  pw_status_t st = proxy_send_local_response(status, details, strlen(details), body, body_len,
                                             serialized, headers_size, PW_NO_GRPC_STATUS);
  free(serialized);
  return st;
}

/* Answers with a JSON body and content-type: application/json, plus `extra` headers. */
PW_HELPER pw_status_t pw_send_json(uint32_t status, const char* json, const pw_pair* extra,
                                   size_t n) {
  pw_pair* headers = (pw_pair*)malloc((n + 1) * sizeof(pw_pair));
  if (!headers) return PW_STATUS_INTERNAL_FAILURE;
  headers[0] = pw_pair_of("content-type", "application/json");
  if (n) memcpy(headers + 1, extra, n * sizeof(pw_pair));
  pw_status_t st = pw_send_response(status, "wasm_plugin", json, strlen(json), headers, n + 1);
  free(headers);
  return st;
}

/* Answers with an OpenAI-style error {"error":{"message","type","code"}} (`code` may be NULL). */
PW_HELPER pw_status_t pw_send_error(uint32_t status, const char* message, const char* type,
                                    const char* code, const pw_pair* extra, size_t n) {
  pw_buf b = {NULL, 0, 0, 0};
  pw_buf_puts(&b, "{\"error\":{\"message\":");
  pw_buf_json_string(&b, message, strlen(message));
  pw_buf_puts(&b, ",\"type\":");
  pw_buf_json_string(&b, type, strlen(type));
  pw_buf_puts(&b, ",\"code\":");
  if (code) {
    pw_buf_json_string(&b, code, strlen(code));
  } else {
    pw_buf_puts(&b, "null");
  }
  pw_buf_puts(&b, "}}");
  pw_status_t st =
      b.failed ? (pw_status_t)PW_STATUS_INTERNAL_FAILURE : pw_send_json(status, b.data, extra, n);
  pw_buf_free(&b);
  return st;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers: properties
 * ------------------------------------------------------------------------------------------- */

/* Returns the property at a raw `path` (segments separated by NUL), malloc'd and
 * NUL-terminated; NULL when absent. */
PW_HELPER char* pw_get_property_raw(const char* path, size_t path_len, size_t* len) {
  char* data = NULL;
  size_t size = 0;
  if (proxy_get_property(path, path_len, &data, &size) != PW_STATUS_OK) return NULL;
  if (len) *len = size;
  return pw_terminate(data, size);
}

/* Returns the property at a dotted path: "request.path" reads "request\0path". */
PW_HELPER char* pw_get_property(const char* dotted, size_t* len) {
  size_t n = strlen(dotted);
  char* path = (char*)malloc(n + 1);
  if (!path) return NULL;
  for (size_t i = 0; i <= n; i++) path[i] = dotted[i] == '.' ? '\0' : dotted[i];
  char* value = pw_get_property_raw(path, n, len);
  free(path);
  return value;
}

/* Reads an integer property: 8 bytes little-endian (as Envoy encodes ints) or decimal text.
 * Returns 0 on success. */
PW_HELPER int pw_get_property_u64(const char* dotted, uint64_t* out) {
  size_t len = 0;
  char* v = pw_get_property(dotted, &len);
  if (!v) return -1;
  int rc = -1;
  uint64_t x = 0;
  size_t i = 0;
  while (i < len && v[i] >= '0' && v[i] <= '9' && x <= (UINT64_MAX - 9) / 10) {
    x = x * 10 + (uint64_t)(v[i++] - '0');
  }
  if (len > 0 && i == len) {
    rc = 0;
  } else if (len == 8) {
    x = 0;
    for (i = 0; i < 8; i++) x |= (uint64_t)(uint8_t)v[i] << (8 * i);
    rc = 0;
  }
  free(v);
  if (rc == 0) *out = x;
  return rc;
}

/* Sets the property at a dotted path. */
PW_HELPER pw_status_t pw_set_property(const char* dotted, const void* value, size_t len) {
  size_t n = strlen(dotted);
  char* path = (char*)malloc(n + 1);
  if (!path) return PW_STATUS_INTERNAL_FAILURE;
  for (size_t i = 0; i <= n; i++) path[i] = dotted[i] == '.' ? '\0' : dotted[i];
  pw_status_t st = proxy_set_property(path, n, value, len);
  free(path);
  return st;
}

/* Rejects candidate `index` of ai.candidates with `reason` (see sluice_reject_candidate). */
PW_HELPER pw_status_t pw_reject_candidate(uint32_t index, const char* reason) {
  return sluice_reject_candidate(index, reason, strlen(reason));
}

/* ---------------------------------------------------------------------------------------------
 * Helpers: shared data
 * ------------------------------------------------------------------------------------------- */

/* Reads shared `key` as a malloc'd NUL-terminated string with its CAS token. */
PW_HELPER pw_status_t pw_get_shared(const char* key, char** value, size_t* len, uint32_t* cas) {
  char* data = NULL;
  size_t size = 0;
  *value = NULL;
  pw_status_t st = proxy_get_shared_data(key, strlen(key), &data, &size, cas);
  if (st != PW_STATUS_OK) return st;
  *value = pw_terminate(data, size);
  if (!*value) return PW_STATUS_INTERNAL_FAILURE;
  if (len) *len = size;
  return PW_STATUS_OK;
}

/* Writes shared `key` (cas 0: unconditionally). */
PW_HELPER pw_status_t pw_set_shared(const char* key, const void* value, size_t len, uint32_t cas) {
  return proxy_set_shared_data(key, strlen(key), value, len, cas);
}

/* ---------------------------------------------------------------------------------------------
 * Helpers: per-context state (context id -> pointer, open addressing)
 * ------------------------------------------------------------------------------------------- */

/* A map from context id to a plugin-owned pointer; zero-initialize it. */
typedef struct {
  uint32_t* ids; /* 0 marks an empty slot: the host never uses context id 0 */
  void** values;
  size_t cap; /* a power of two */
  size_t count;
} pw_ctx_map;

/* Returns the slot holding `id`, or the empty slot where it would go (linear probing). */
PW_HELPER size_t pw_ctx_slot(const pw_ctx_map* m, uint32_t id) {
  size_t i = (size_t)(id * 2654435761u) & (m->cap - 1);
  while (m->ids[i] != 0 && m->ids[i] != id) i = (i + 1) & (m->cap - 1);
  return i;
}

/* Returns the pointer stored for `id`, or NULL. */
PW_HELPER void* pw_ctx_get(const pw_ctx_map* m, uint32_t id) {
  if (!m->cap || id == 0) return NULL;
  size_t i = pw_ctx_slot(m, id);
  return m->ids[i] == id ? m->values[i] : NULL;
}

/* Stores `value` for `id` (replacing any previous one); returns 0 on success. */
PW_HELPER int pw_ctx_put(pw_ctx_map* m, uint32_t id, void* value) {
  if (id == 0) return -1;
  if ((m->count + 1) * 4 > m->cap * 3) {
    pw_ctx_map bigger = {NULL, NULL, 0, 0};
    bigger.cap = m->cap ? m->cap * 2 : 16;
    bigger.ids = (uint32_t*)calloc(bigger.cap, sizeof(uint32_t));
    bigger.values = (void**)calloc(bigger.cap, sizeof(void*));
    if (!bigger.ids || !bigger.values) {
      free(bigger.ids);
      free(bigger.values);
      return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
      if (m->ids[i] == 0) continue;
      size_t j = pw_ctx_slot(&bigger, m->ids[i]);
      bigger.ids[j] = m->ids[i];
      bigger.values[j] = m->values[i];
      bigger.count++;
    }
    free(m->ids);
    free(m->values);
    *m = bigger;
  }
  size_t i = pw_ctx_slot(m, id);
  if (m->ids[i] == 0) m->count++;
  m->ids[i] = id;
  m->values[i] = value;
  return 0;
}

/* Removes `id` and returns its pointer (NULL if absent), for the caller to free. */
PW_HELPER void* pw_ctx_take(pw_ctx_map* m, uint32_t id) {
  if (!m->cap || id == 0) return NULL;
  size_t i = pw_ctx_slot(m, id);
  if (m->ids[i] != id) return NULL;
  void* value = m->values[i];
  m->ids[i] = 0;
  m->count--;
  /* Backward-shift deletion: re-place the entries of the probe run that follows. */
  for (size_t j = (i + 1) & (m->cap - 1); m->ids[j] != 0; j = (j + 1) & (m->cap - 1)) {
    uint32_t moved_id = m->ids[j];
    void* moved_value = m->values[j];
    m->ids[j] = 0;
    size_t k = pw_ctx_slot(m, moved_id);
    m->ids[k] = moved_id;
    m->values[k] = moved_value;
  }
  return value;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers: a small JSON reader for plugin configuration (no allocation except for strings)
 * ------------------------------------------------------------------------------------------- */

/* A JSON value: the bytes [p, end) of its text. */
typedef struct {
  const char* p;
  const char* end;
} pw_json;

/* Skips JSON whitespace. */
PW_HELPER const char* pw_json_ws(const char* p, const char* end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* Returns the end of the string literal starting at `p` (after its closing quote), or NULL. */
PW_HELPER const char* pw_json_skip_string(const char* p, const char* end) {
  if (p >= end || *p != '"') return NULL;
  for (p++; p < end; p++) {
    if (*p == '"') return p + 1;
    if ((unsigned char)*p < 0x20) return NULL;
    if (*p == '\\' && ++p == end) return NULL;
  }
  return NULL;
}

/* Returns the end of the JSON value starting at `p` (after whitespace), or NULL if malformed. */
PW_HELPER const char* pw_json_skip(const char* p, const char* end, int depth) {
  p = pw_json_ws(p, end);
  if (p >= end || depth > 64) return NULL;
  if (*p == '"') return pw_json_skip_string(p, end);
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = pw_json_ws(p + 1, end);
    if (p < end && *p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        p = pw_json_skip_string(pw_json_ws(p, end), end);
        if (!p) return NULL;
        p = pw_json_ws(p, end);
        if (p >= end || *p++ != ':') return NULL;
      }
      p = pw_json_skip(p, end, depth + 1);
      if (!p) return NULL;
      p = pw_json_ws(p, end);
      if (p >= end) return NULL;
      if (*p == close) return p + 1;
      if (*p++ != ',') return NULL;
    }
  }
  static const char* const literals[] = {"true", "false", "null"};
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(literals[i]);
    if ((size_t)(end - p) >= n && memcmp(p, literals[i], n) == 0) return p + n;
  }
  /* A number; its exact grammar is left to pw_json_int. */
  const char* start = p;
  while (p < end && (*p == '-' || *p == '+' || *p == '.' || *p == 'e' || *p == 'E' ||
                     (*p >= '0' && *p <= '9'))) {
    p++;
  }
  return p > start ? p : NULL;
}

/* Parses a whole document; returns 0 and its top value when it is well-formed. */
PW_HELPER int pw_json_parse(const char* text, size_t len, pw_json* out) {
  const char* end = text + len;
  const char* start = pw_json_ws(text, end);
  const char* after = pw_json_skip(start, end, 0);
  if (!after || pw_json_ws(after, end) != end) return -1;
  out->p = start;
  out->end = after;
  return 0;
}

/* Reads the 4 hex digits at `p` (bounded by `end`) into `*unit`; returns 0 on success. */
PW_HELPER int pw_json_hex4(const char* p, const char* end, uint32_t* unit) {
  if (end - p < 4) return -1;
  *unit = 0;
  for (int i = 0; i < 4; i++) {
    char h = p[i];
    uint32_t d;
    if (h >= '0' && h <= '9') {
      d = (uint32_t)(h - '0');
    } else if (h >= 'a' && h <= 'f') {
      d = (uint32_t)(h - 'a' + 10);
    } else if (h >= 'A' && h <= 'F') {
      d = (uint32_t)(h - 'A' + 10);
    } else {
      return -1;
    }
    *unit = *unit << 4 | d;
  }
  return 0;
}

/* Appends code point `cp` as UTF-8. */
PW_HELPER void pw_buf_utf8(pw_buf* b, uint32_t cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | cp >> 6);
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | cp >> 12);
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | cp >> 18);
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  pw_buf_append(b, u, n);
}

/* Decodes a JSON string value into a malloc'd NUL-terminated UTF-8 string; NULL if it is not a
 * valid string. */
PW_HELPER char* pw_json_string(pw_json v, size_t* len) {
  if (v.p >= v.end || *v.p != '"' || pw_json_skip_string(v.p, v.end) != v.end) return NULL;
  const char* end = v.end - 1; /* the closing quote */
  pw_buf b = {NULL, 0, 0, 0};
  pw_buf_append(&b, "", 0);
  for (const char* p = v.p + 1; p < end; p++) {
    if (*p != '\\') {
      pw_buf_append(&b, p, 1);
      continue;
    }
    char c = *++p;
    uint32_t cp = 0, low = 0;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        break;
      case 'b':
        c = '\b';
        break;
      case 'f':
        c = '\f';
        break;
      case 'n':
        c = '\n';
        break;
      case 'r':
        c = '\r';
        break;
      case 't':
        c = '\t';
        break;
      case 'u':
        if (pw_json_hex4(p + 1, end, &cp) != 0) goto bad;
        p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF) goto bad;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          /* A high surrogate must be followed by an escaped low one. */
          if (end - p < 7 || p[1] != '\\' || p[2] != 'u') goto bad;
          if (pw_json_hex4(p + 3, end, &low) != 0 || low < 0xDC00 || low > 0xDFFF) goto bad;
          p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        pw_buf_utf8(&b, cp);
        continue;
      default:
        goto bad;
    }
    pw_buf_append(&b, &c, 1);
  }
  if (b.failed) goto bad;
  if (len) *len = b.len;
  return b.data;
bad:
  pw_buf_free(&b);
  return NULL;
}

/* Finds `key` in object `obj`; returns 0 and its value, -1 when absent or `obj` is no object. */
PW_HELPER int pw_json_get(pw_json obj, const char* key, pw_json* value) {
  const char* p = pw_json_ws(obj.p, obj.end);
  if (p >= obj.end || *p != '{') return -1;
  p = pw_json_ws(p + 1, obj.end);
  size_t key_len = strlen(key);
  while (p < obj.end && *p == '"') {
    pw_json k = {p, pw_json_skip_string(p, obj.end)};
    if (!k.end) return -1;
    p = pw_json_ws(k.end, obj.end);
    if (p >= obj.end || *p++ != ':') return -1;
    pw_json v = {pw_json_ws(p, obj.end), pw_json_skip(p, obj.end, 1)};
    if (!v.end) return -1;
    size_t n = 0;
    char* name = pw_json_string(k, &n);
    int match = name && n == key_len && memcmp(name, key, n) == 0;
    free(name);
    if (match) {
      *value = v;
      return 0;
    }
    p = pw_json_ws(v.end, obj.end);
    if (p < obj.end && *p == ',') p = pw_json_ws(p + 1, obj.end);
  }
  return -1;
}

/* Reads an integral JSON number; returns 0 on success. */
PW_HELPER int pw_json_int(pw_json v, int64_t* out) {
  const char* p = v.p;
  int neg = p < v.end && *p == '-';
  if (neg) p++;
  if (p >= v.end) return -1;
  uint64_t x = 0;
  for (; p < v.end; p++) {
    if (*p < '0' || *p > '9' || x > (uint64_t)INT64_MAX / 10) return -1;
    x = x * 10 + (uint64_t)(*p - '0');
  }
  if (x > (uint64_t)INT64_MAX) return -1;
  *out = neg ? -(int64_t)x : (int64_t)x;
  return 0;
}

/* Steps through an array: start with `*it` = the array value; each call yields the next
 * element. Returns 1 with an element, 0 at the end, -1 when `*it` is not an array. */
PW_HELPER int pw_json_next(pw_json* it, pw_json* elem) {
  const char* p = pw_json_ws(it->p, it->end);
  if (p >= it->end || *p == ']') {
    it->p = it->end;
    return 0;
  }
  if (*p != '[' && *p != ',') return -1;
  int first = *p == '[';
  p = pw_json_ws(p + 1, it->end);
  if (first && p < it->end && *p == ']') {
    it->p = it->end;
    return 0;
  }
  const char* after = pw_json_skip(p, it->end, 1);
  if (!after) return -1;
  elem->p = p;
  elem->end = after;
  it->p = pw_json_ws(after, it->end);
  return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers: Redis commands and replies (Higress ABI)
 * ------------------------------------------------------------------------------------------- */

/* Appends `argc` arguments as a RESP command (an array of bulk strings) to `b`. */
PW_HELPER void pw_redis_query(pw_buf* b, const char* const* argv, size_t argc) {
  pw_buf_puts(b, "*");
  pw_buf_u64(b, argc);
  pw_buf_puts(b, "\r\n");
  for (size_t i = 0; i < argc; i++) {
    size_t n = strlen(argv[i]);
    pw_buf_puts(b, "$");
    pw_buf_u64(b, n);
    pw_buf_puts(b, "\r\n");
    pw_buf_append(b, argv[i], n);
    pw_buf_puts(b, "\r\n");
  }
}

/* Reads a RESP reply that carries a number: an integer (":42"), or a bulk string of digits
 * ("$2\r\n42"). Returns 0 with `*out` set, 1 for nil ("$-1"), -1 for anything else (an error
 * reply included). */
PW_HELPER int pw_redis_reply_int(const char* reply, size_t len, int64_t* out) {
  const char* end = reply + len;
  const char* p = reply;
  if (p >= end) return -1;
  if (*p == '$') {
    if (len >= 3 && p[1] == '-' && p[2] == '1') return 1;
    while (p < end && *p != '\n') p++;
    p++;
  } else if (*p == ':') {
    p++;
  } else {
    return -1;
  }
  int neg = p < end && *p == '-';
  if (neg) p++;
  if (p >= end || *p < '0' || *p > '9') return -1;
  uint64_t x = 0;
  for (; p < end && *p >= '0' && *p <= '9'; p++) {
    if (x > (uint64_t)INT64_MAX / 10) return -1;
    x = x * 10 + (uint64_t)(*p - '0');
  }
  if (p >= end || *p != '\r' || x > (uint64_t)INT64_MAX) return -1;
  *out = neg ? -(int64_t)x : (int64_t)x;
  return 0;
}

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_PROXY_WASM_H */
