#include "proxy/api_error.h"

#include "common/json_writer.h"

namespace sluice::proxy {

std::string openAiErrorBody(const ApiError& error) {
  std::string body;
  body.reserve(96 + error.message.size());
  JsonWriter json(body);
  json.beginObject().key("error").beginObject();
  json.key("message").value(error.message);
  json.key("type").value(error.type);
  json.key("code");
  if (error.code.empty()) {
    json.null();
  } else {
    json.value(error.code);
  }
  json.endObject().endObject();
  return body;
}

}  // namespace sluice::proxy
