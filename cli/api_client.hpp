// The CLI's HTTP client for the engine's API: JSON in, JSON out, every failure an ApiError
// whose message is ready to show the user.
//
//   cli::ApiClient api("http://127.0.0.1:8288", "my-api-key");
//   nlohmann::json runs = api.get("/v1/runs", {{"status", "failed"}});
//   api.post("/v1/runs/" + cli::path_segment(id) + "/cancel", nlohmann::json::object());
#pragma once

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace httplib {
class Client;
}

namespace cli {

// A request that did not succeed. `status` is the HTTP status, or 0 when the engine could not
// be reached (or answered something that is not the API's JSON). The message says what
// happened: the engine's own `error` text with the status, or the URL that could not be
// reached.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// Query parameters; empty values are left out of the request.
using Query = std::map<std::string, std::string>;

class ApiClient {
 public:
  // `url`: scheme, host and port ("http://127.0.0.1:8288", or https). `api_key`: sent as
  // "Authorization: Bearer <key>" when not empty. Throws UsageError for a URL it cannot use.
  ApiClient(const std::string& url, const std::string& api_key);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // GET `path` with `query`; returns the answer's JSON. Throws ApiError unless it is a 2xx.
  nlohmann::json get(const std::string& path, const Query& query = {});
  // POST `body` to `path`; returns the answer's JSON. Throws ApiError unless it is a 2xx.
  nlohmann::json post(const std::string& path, const nlohmann::json& body);

 private:
  std::string url_;
  bool has_key_;
  std::unique_ptr<httplib::Client> http_;
};

// `text` percent-encoded for use as one segment of a URL path (a run id, an event key).
std::string path_segment(std::string_view text);

}  // namespace cli
