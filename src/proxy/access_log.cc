#include "proxy/access_log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "common/json_writer.h"

namespace sluice::proxy {

AccessLog::AccessLog(const std::string& target) {
  if (target == "off") return;
  if (target == "stdout") {
    logger_ = std::make_shared<spdlog::logger>("access",
                                               std::make_shared<spdlog::sinks::stdout_sink_mt>());
  } else {
    logger_ = std::make_shared<spdlog::logger>(
        "access", std::make_shared<spdlog::sinks::basic_file_sink_mt>(target));
  }
  logger_->set_pattern("%v");
  logger_->flush_on(spdlog::level::info);
}

void AccessLog::write(const AccessRecord& record) {
  if (!logger_) return;
  thread_local std::string line;
  line.clear();
  JsonWriter json(line);
  const auto now = std::chrono::system_clock::now();
  json.beginObject();
  json.key("ts").value(std::chrono::duration<double>(now.time_since_epoch()).count());
  json.key("request_id").value(record.request_id);
  json.key("method").value(record.method);
  json.key("path").value(record.path);
  json.key("route").value(record.route);
  json.key("model").value(record.model);
  json.key("provider").value(record.provider);
  json.key("upstream").value(record.upstream);
  if (!record.key_id.empty()) json.key("key_id").value(record.key_id);
  if (record.input_tokens || record.output_tokens) {
    json.key("input_tokens").value(record.input_tokens);
    json.key("output_tokens").value(record.output_tokens);
    json.key("cached_tokens").value(record.cached_tokens);
    json.key("usage").value(record.usage_reported ? "reported" : "estimated");
  }
  json.key("retries").value(uint64_t{record.retries});
  json.key("peer").value(record.peer);
  json.key("status").value(record.status);
  json.key("stream").value(record.stream);
  json.key("bytes_in").value(record.bytes_in);
  json.key("bytes_out").value(record.bytes_out);
  json.key("duration_ms").value(record.duration_ms);
  json.key("ttfb_ms");
  if (record.ttfb_ms < 0) {
    json.null();
  } else {
    json.value(record.ttfb_ms);
  }
  if (!record.error.empty()) json.key("error").value(record.error);
  if (!record.plugin_actions.empty()) json.key("plugin_actions").value(record.plugin_actions);
  json.endObject();
  logger_->info(line);
}

}  // namespace sluice::proxy
