#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace sluice::admin {

// One admin request as a handler sees it; the listener has already checked the token.
struct AdminRequest {
  std::string method;  // as sent, e.g. "GET"
  std::string path;    // as sent (not percent-decoded), without the query
  std::string query;   // the text after '?', empty when there is none
  std::string body;
};

struct AdminResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// Runs on the io_context thread that serves the admin listener (the gateway's control thread);
// an exception it throws becomes a 500 answer.
using AdminHandler = std::function<AdminResponse(const AdminRequest&)>;

// `{"error":{"message":...,"type":...}}` with `status`: the shape of every error the admin
// listener writes, for handlers to use too.
AdminResponse errorResponse(int status, std::string_view message,
                            std::string_view type = "invalid_request_error");

}  // namespace sluice::admin
