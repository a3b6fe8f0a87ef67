#include "webhook_endpoint.hpp"

#include <httplib.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <durable/errors.hpp>

namespace webhook {

namespace {

// durable's limit on event names (Engine::send refuses longer ones).
constexpr size_t kMaxEventName = 512;

// Stripe's `created` is Unix seconds; anything past the year 9999 is not a time.
constexpr uint64_t kMaxUnixSeconds = 253402300799;

void answer(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  // Messages may quote the body, which may not be valid UTF-8.
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void refuse(httplib::Response& res, int status, const std::string& message) {
  answer(res, status, {{"error", message}});
}

// The durable event for the Stripe event `stripe_event`, or the reason it is none (a 400).
struct Conversion {
  durable::Event event;
  std::string error;
};

Conversion to_durable_event(nlohmann::json stripe_event) {
  if (!stripe_event.is_object()) return {.error = "the body is not a JSON object"};
  auto id = stripe_event.find("id");
  if (id == stripe_event.end() || !id->is_string() || id->get_ref<const std::string&>().empty()) {
    return {.error = "the event has no \"id\" (a non-empty string)"};
  }
  auto type = stripe_event.find("type");
  if (type == stripe_event.end() || !type->is_string() || type->get_ref<const std::string&>().empty()) {
    return {.error = "the event has no \"type\" (a non-empty string)"};
  }
  std::string name = kEventPrefix + type->get<std::string>();
  // Checked here so that Engine::send has nothing left to refuse but its own failures.
  if (name.size() > kMaxEventName) {
    return {.error = fmt::format("the event type is too long: the limit is {} characters",
                                 kMaxEventName - std::string_view(kEventPrefix).size())};
  }
  durable::Event event{.id = id->get<std::string>(), .name = std::move(name)};
  if (auto created = stripe_event.find("created");
      created != stripe_event.end() && created->is_number_unsigned() && created->get<uint64_t>() <= kMaxUnixSeconds) {
    event.ts = durable::from_millis(static_cast<int64_t>(created->get<uint64_t>()) * 1000);
  }
  event.data = std::move(stripe_event);
  return {.event = std::move(event)};
}

}  // namespace

void add_stripe_endpoint(httplib::Server& server, EndpointOptions options, SendEvent send) {
  if (options.secret.empty()) throw std::invalid_argument("the Stripe webhook's signing secret is empty");
  if (!send) throw std::invalid_argument("the Stripe webhook has no send function");
  if (!options.now) options.now = [] { return std::chrono::system_clock::now(); };
  std::string path = options.path;

  server.Post(path, [o = std::move(options), send = std::move(send)](const httplib::Request& req,
                                                                      httplib::Response& res) {
    // Size first: no HMAC over a body that is refused anyway.
    if (req.body.size() > o.max_body_bytes) {
      return refuse(res, 413, fmt::format("the body is {} bytes; the limit is {} bytes", req.body.size(),
                                          o.max_body_bytes));
    }

    // The signature covers the body exactly as it arrived: req.body, not the parsed JSON.
    // Nothing unauthenticated is parsed.
    std::string header = req.get_header_value(kSignatureHeader);
    std::optional<std::string_view> signature;
    if (req.has_header(kSignatureHeader)) signature = header;
    Verification check = verify(signature, req.body, o.secret, o.now(), o.tolerance);
    if (!check.ok()) return refuse(res, 401, check.reason);

    Conversion converted = to_durable_event(nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false));
    if (!converted.error.empty()) return refuse(res, 400, converted.error);

    // A redelivery (same Stripe id within durable's 24-hour dedup window) is stored as a
    // duplicate and starts no run; it is answered 200 like the first, or Stripe would keep
    // retrying it. Anything that fails here is durable's failure, not Stripe's: 500, and
    // Stripe delivers the event again later.
    std::string event_id;
    try {
      event_id = send(converted.event);
    } catch (const std::exception& e) {
      return refuse(res, 500, fmt::format("the event could not be stored: {}", e.what()));
    }
    answer(res, 200, {{"received", true}, {"event_id", event_id}});
  });
}

}  // namespace webhook
