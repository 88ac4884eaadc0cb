#pragma once

// A blocking HTTP/1.1 client over a plain socket for the admin listener's tests: requests are
// written byte for byte as given, and every read gives up after a few seconds so that a server
// bug fails a test instead of hanging it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sluice::admin::testing {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lowercased names
  std::string body;

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class RawHttpClient {
 public:
  explicit RawHttpClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket() failed");
    timeval timeout{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect() failed");
    }
  }
  ~RawHttpClient() { ::close(fd_); }
  RawHttpClient(const RawHttpClient&) = delete;
  RawHttpClient& operator=(const RawHttpClient&) = delete;

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send() failed");
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }

  // Reads one response with a Content-Length body (the admin listener always sends one).
  RawResponse read() {
    size_t end;
    while ((end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) throw std::runtime_error("connection closed before a response: " + pending_);
    }
    RawResponse response;
    const std::string head = pending_.substr(0, end);
    pending_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.size() < 12 || !status_line.starts_with("HTTP/1.")) {
      throw std::runtime_error("bad status line: " + status_line);
    }
    response.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line = head.substr(start, line_end - start);
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      response.headers[name] = value;
    }
    const size_t length =
        std::stoul(response.header("content-length").empty() ? std::string("0")
                                                             : response.header("content-length"));
    while (pending_.size() < length) {
      if (!fill()) throw std::runtime_error("connection closed inside a body");
    }
    response.body = pending_.substr(0, length);
    pending_.erase(0, length);
    return response;
  }

  // True when the server closed the connection (EOF or reset) with nothing more to read.
  bool closedByServer() {
    if (!pending_.empty()) return false;
    char byte;
    const ssize_t n = ::recv(fd_, &byte, 1, 0);
    if (n > 0) {
      pending_.push_back(byte);
      return false;
    }
    return n == 0 || errno == ECONNRESET;
  }

 private:
  bool fill() {
    char chunk[16384];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    pending_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string pending_;  // received, not yet parsed
};

}  // namespace sluice::admin::testing
