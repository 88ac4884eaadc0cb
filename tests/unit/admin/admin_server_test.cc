#include "admin/admin_server.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>

#include "raw_http_client.h"

namespace sluice::admin {
namespace {

using testing::RawHttpClient;
using testing::RawResponse;

constexpr std::string_view kToken = "s3cret-admin-token";

std::string get(std::string_view target, std::string_view token = kToken) {
  std::string request = "GET " + std::string(target) + " HTTP/1.1\r\nHost: admin\r\n";
  if (!token.empty()) request += "Authorization: Bearer " + std::string(token) + "\r\n";
  return request + "\r\n";
}

std::string post(std::string_view target, std::string_view body) {
  return "POST " + std::string(target) + " HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " +
         std::string(kToken) + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         std::string(body);
}

// The error object of a JSON error body, with the status checked.
nlohmann::json errorOf(const RawResponse& response, int status) {
  EXPECT_EQ(response.status, status) << response.body;
  EXPECT_EQ(response.header("content-type"), "application/json");
  const auto json = nlohmann::json::parse(response.body);
  EXPECT_TRUE(json["error"]["message"].is_string()) << response.body;
  EXPECT_TRUE(json["error"]["type"].is_string()) << response.body;
  return json["error"];
}

// An admin server on a free port, its io_context run by a thread of its own.
class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Echoes what the handler was given, so that tests check it from the answer.
    auto echo = [](const AdminRequest& request) {
      nlohmann::json seen = {{"method", request.method},
                             {"path", request.path},
                             {"query", request.query},
                             {"body", request.body}};
      return AdminResponse{200, seen.dump()};
    };
    server_.handle("GET", "/workers", echo);
    server_.handle("POST", "/workers", echo);
    server_.handle("DELETE", "/workers/", echo);
    server_.handle("POST", "/wasm", echo);
    server_.handle("GET", "/health", [](const AdminRequest&) {
      return AdminResponse{200, "ok", "text/plain"};
    });
    server_.handle("GET", "/boom", [](const AdminRequest&) -> AdminResponse {
      throw std::runtime_error("handler failed");
    });
    server_.handle("DELETE", "/empty", [](const AdminRequest&) {
      return AdminResponse{204, "dropped", "text/plain"};
    });
    server_.handle("GET", "/bad-status", [](const AdminRequest&) {
      AdminResponse response;
      response.status = 42;
      return response;
    });
    auto listening = server_.listen("127.0.0.1", 0);
    ASSERT_TRUE(listening) << listening.error();
    ASSERT_NE(server_.boundPort(), 0);
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  RawResponse exchange(const std::string& request) {
    RawHttpClient client(server_.boundPort());
    client.send(request);
    return client.read();
  }

  boost::asio::io_context io_;
  AdminServer server_{io_, kToken};
  std::thread thread_;
};

TEST_F(AdminServerTest, MissingTokenIs401WithBearerChallenge) {
  const auto response = exchange(get("/health", ""));
  const auto error = errorOf(response, 401);
  EXPECT_EQ(error["type"], "authentication_error");
  EXPECT_EQ(response.header("www-authenticate"), "Bearer");
}

TEST_F(AdminServerTest, WrongTokenIs401) {
  const auto response = exchange(get("/health", "not-the-token"));
  EXPECT_EQ(errorOf(response, 401)["type"], "authentication_error");
  EXPECT_EQ(response.header("www-authenticate"), "Bearer");
  EXPECT_EQ(response.body.find(kToken), std::string::npos);
}

TEST_F(AdminServerTest, PrefixOrExtensionOfTheTokenIs401) {
  const std::string token(kToken);
  for (const std::string& almost :
       {token.substr(0, token.size() - 1), token.substr(0, 1), token + "x", token + token}) {
    EXPECT_EQ(exchange(get("/health", almost)).status, 401) << almost;
  }
}

TEST_F(AdminServerTest, OtherSchemeIs401) {
  const std::string request =
      "GET /health HTTP/1.1\r\nAuthorization: Basic " + std::string(kToken) + "\r\n\r\n";
  EXPECT_EQ(exchange(request).status, 401);
}

TEST_F(AdminServerTest, RightTokenReachesTheHandler) {
  const auto response = exchange(get("/health"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "ok");
  EXPECT_EQ(response.header("content-type"), "text/plain");
}

TEST_F(AdminServerTest, SchemeIsCaseInsensitive) {
  const std::string request =
      "GET /health HTTP/1.1\r\nAuthorization: bearer   " + std::string(kToken) + "\r\n\r\n";
  EXPECT_EQ(exchange(request).status, 200);
}

TEST_F(AdminServerTest, HandlerGetsMethodPathQueryAndBody) {
  const auto response = exchange(post("/wasm/plugin-a?dry_run=1&x=%20", R"({"url":"http://w"})"));
  ASSERT_EQ(response.status, 200) << response.body;
  const auto seen = nlohmann::json::parse(response.body);
  EXPECT_EQ(seen["method"], "POST");
  EXPECT_EQ(seen["path"], "/wasm/plugin-a");
  EXPECT_EQ(seen["query"], "dry_run=1&x=%20");
  EXPECT_EQ(seen["body"], R"({"url":"http://w"})");
}

TEST_F(AdminServerTest, LongestPrefixWins) {
  // "/workers/" (DELETE only) is longer than "/workers": GET there is a 405, not the GET handler.
  const std::string del =
      "DELETE /workers/w1 HTTP/1.1\r\nAuthorization: Bearer " + std::string(kToken) + "\r\n\r\n";
  const auto deleted = exchange(del);
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(nlohmann::json::parse(deleted.body)["method"], "DELETE");
  EXPECT_EQ(exchange(get("/workers/w1")).status, 405);
  EXPECT_EQ(exchange(get("/workers")).status, 200);
}

TEST_F(AdminServerTest, UnknownPathIs404) {
  const auto error = errorOf(exchange(get("/nothing-here")), 404);
  EXPECT_NE(error["message"].get<std::string>().find("/nothing-here"), std::string::npos);
  // A prefix matches whole segments only.
  errorOf(exchange(get("/healthz")), 404);
}

TEST_F(AdminServerTest, WrongMethodOnAKnownPathIs405WithAllow) {
  const auto response = exchange(get("/wasm/abc"));
  errorOf(response, 405);
  EXPECT_EQ(response.header("allow"), "POST");
  const std::string put = "PUT /workers HTTP/1.1\r\nAuthorization: Bearer " + std::string(kToken) +
                          "\r\nContent-Length: 0\r\n\r\n";
  EXPECT_EQ(exchange(put).header("allow"), "GET, POST");
}

TEST_F(AdminServerTest, UnknownPathsNeedTheTokenToo) {
  EXPECT_EQ(exchange(get("/nothing-here", "wrong")).status, 401);
}

TEST_F(AdminServerTest, BodyOverOneMebibyteIs413AndCloses) {
  RawHttpClient client(server_.boundPort());
  client.send("POST /wasm HTTP/1.1\r\nAuthorization: Bearer " + std::string(kToken) +
              "\r\nContent-Length: " + std::to_string((1 << 20) + 1) + "\r\n\r\n");
  const auto response = client.read();
  errorOf(response, 413);
  EXPECT_EQ(response.header("connection"), "close");
  EXPECT_TRUE(client.closedByServer());
}

TEST_F(AdminServerTest, BodyOfExactlyOneMebibyteIsAccepted) {
  const auto response = exchange(post("/wasm", std::string(1 << 20, 'a')));
  EXPECT_EQ(response.status, 200);
}

TEST_F(AdminServerTest, ChunkedBodyOverOneMebibyteIs413) {
  RawHttpClient client(server_.boundPort());
  client.send("POST /wasm HTTP/1.1\r\nAuthorization: Bearer " + std::string(kToken) +
              "\r\nTransfer-Encoding: chunked\r\n\r\n");
  const std::string chunk(64 << 10, 'a');
  char size_line[16];
  std::snprintf(size_line, sizeof(size_line), "%zx\r\n", chunk.size());
  for (int i = 0; i < 17; ++i) client.send(size_line + chunk + "\r\n");
  errorOf(client.read(), 413);
}

TEST_F(AdminServerTest, HeadersOver16KiBAre431) {
  RawHttpClient client(server_.boundPort());
  client.send("GET /health HTTP/1.1\r\nAuthorization: Bearer " + std::string(kToken) +
              "\r\nX-Filler: " + std::string(17 << 10, 'f') + "\r\n\r\n");
  errorOf(client.read(), 431);
  EXPECT_TRUE(client.closedByServer());
}

TEST_F(AdminServerTest, MalformedRequestIs400AndCloses) {
  RawHttpClient client(server_.boundPort());
  client.send("THIS IS NOT HTTP\r\n\r\n");
  errorOf(client.read(), 400);
  EXPECT_TRUE(client.closedByServer());
}

TEST_F(AdminServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  RawHttpClient client(server_.boundPort());
  client.send(get("/health"));
  EXPECT_EQ(client.read().status, 200);
  client.send(post("/workers", "second"));
  const auto second = client.read();
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(nlohmann::json::parse(second.body)["body"], "second");
  // A refused request does not end the connection either.
  client.send(get("/health", "wrong"));
  EXPECT_EQ(client.read().status, 401);
  client.send(get("/health"));
  EXPECT_EQ(client.read().status, 200);
}

TEST_F(AdminServerTest, PipelinedRequestsAreAnsweredInOrder) {
  RawHttpClient client(server_.boundPort());
  client.send(get("/health") + post("/workers", "p2"));
  EXPECT_EQ(client.read().body, "ok");
  EXPECT_EQ(nlohmann::json::parse(client.read().body)["body"], "p2");
}

TEST_F(AdminServerTest, ConnectionCloseIsHonoured) {
  RawHttpClient client(server_.boundPort());
  client.send("GET /health HTTP/1.1\r\nConnection: close\r\nAuthorization: Bearer " +
              std::string(kToken) + "\r\n\r\n");
  EXPECT_EQ(client.read().status, 200);
  EXPECT_TRUE(client.closedByServer());
}

TEST_F(AdminServerTest, UnauthorizedExpectContinueIsAnsweredBeforeTheBody) {
  RawHttpClient client(server_.boundPort());
  client.send(
      "POST /wasm HTTP/1.1\r\nAuthorization: Bearer wrong\r\nExpect: 100-continue\r\n"
      "Content-Length: 10\r\n\r\n");
  EXPECT_EQ(client.read().status, 401);
}

TEST_F(AdminServerTest, AuthorizedExpectContinueGets100ThenTheAnswer) {
  RawHttpClient client(server_.boundPort());
  client.send("POST /wasm HTTP/1.1\r\nAuthorization: Bearer " + std::string(kToken) +
              "\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  EXPECT_EQ(client.read().status, 100);
  client.send("body");
  const auto response = client.read();
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(nlohmann::json::parse(response.body)["body"], "body");
}

TEST_F(AdminServerTest, HandlerExceptionIs500) {
  const auto error = errorOf(exchange(get("/boom")), 500);
  EXPECT_EQ(error["type"], "server_error");
}

TEST_F(AdminServerTest, InvalidHandlerStatusIs500And204HasNoBody) {
  RawHttpClient client(server_.boundPort());
  client.send(get("/bad-status"));
  EXPECT_EQ(errorOf(client.read(), 500)["type"], "server_error");
  client.send("DELETE /empty HTTP/1.1\r\nAuthorization: Bearer " + std::string(kToken) +
              "\r\n\r\n");
  const auto empty = client.read();
  EXPECT_EQ(empty.status, 204);
  EXPECT_EQ(empty.header("content-length"), "");
  client.send(get("/health"));
  EXPECT_EQ(client.read().body, "ok");
}

TEST_F(AdminServerTest, StopClosesIdleConnectionsAndTheListener) {
  RawHttpClient idle(server_.boundPort());
  idle.send(get("/health"));
  EXPECT_EQ(idle.read().status, 200);
  boost::asio::post(io_, [this] { server_.stop(); });
  EXPECT_TRUE(idle.closedByServer());
  EXPECT_THROW(exchange(get("/health")), std::runtime_error);
}

TEST(AdminServer, ListenOnABusyPortFails) {
  boost::asio::io_context io;
  AdminServer first(io, "token");
  ASSERT_TRUE(first.listen("127.0.0.1", 0));
  AdminServer second(io, "token");
  const auto result = second.listen("127.0.0.1", first.boundPort());
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().find(std::to_string(first.boundPort())), std::string::npos)
      << result.error();
}

TEST(AdminServer, ListenRefusesAnEmptyTokenAndABadAddress) {
  boost::asio::io_context io;
  AdminServer no_token(io, "");
  const auto refused = no_token.listen("127.0.0.1", 0);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("token"), std::string::npos);
  AdminServer bad_host(io, "token");
  const auto bad = bad_host.listen("not-an-ip", 0);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("not-an-ip"), std::string::npos);
}

}  // namespace
}  // namespace sluice::admin
