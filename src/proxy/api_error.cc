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

std::string anthropicErrorBody(const ApiError& error) {
  std::string_view type = "api_error";
  switch (error.status) {
    case 400:
    case 405:
    case 422:
      type = "invalid_request_error";
      break;
    case 401:
      type = "authentication_error";
      break;
    case 403:
      type = "permission_error";
      break;
    case 404:
      type = "not_found_error";
      break;
    case 413:
      type = "request_too_large";
      break;
    case 429:
      type = "rate_limit_error";
      break;
    case 529:
      type = "overloaded_error";
      break;
    default:
      break;
  }
  std::string body;
  JsonWriter json(body);
  json.beginObject().key("type").value("error").key("error").beginObject();
  json.key("type").value(type).key("message").value(error.message).endObject().endObject();
  return body;
}

}  // namespace sluice::proxy
