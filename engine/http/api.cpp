#include "engine/http/api.hpp"

#include <algorithm>
#include <charconv>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/base/ids.hpp"
#include "engine/base/json_input.hpp"
#include "engine/base/log.hpp"
#include "engine/base/request_error.hpp"
#include "engine/http/api_json.hpp"
#include "engine/http/cursor.hpp"

namespace durable {

namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;

HttpResponse json_response(const nlohmann::json& body, int status = 200) {
  return HttpResponse{status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

int64_t parse_int(const std::string& name, const std::string& text) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw RequestError(400, fmt::format("\"{}\" must be an integer, not '{}'", name, text));
  }
  return value;
}

std::string query(const HttpRequest& req, const std::string& name) {
  auto it = req.query.find(name);
  return it == req.query.end() ? std::string() : it->second;
}

// A flag parameter: "true", or "false" / absent.
bool query_bool(const HttpRequest& req, const std::string& name) {
  std::string text = query(req, name);
  if (text != "" && text != "true" && text != "false") throw RequestError(400, fmt::format("\"{}\" must be true or false", name));
  return text == "true";
}

// Ids hold a time as 48 bits of ms (until the year 10889), and time filters are id ranges:
// a time outside those bits would wrap around to a wrong range instead of failing.
TimePoint time_value(const std::string& name, int64_t ms) {
  if (ms < 0 || ms > kMaxIdMillis) {
    throw RequestError(400, fmt::format("\"{}\" must be ms since the Unix epoch, from 0 to {}", name, kMaxIdMillis));
  }
  return from_millis(ms);
}

std::optional<TimePoint> query_time(const HttpRequest& req, const std::string& name) {
  std::string text = query(req, name);
  if (text.empty()) return std::nullopt;
  return time_value(name, parse_int(name, text));
}

// How many runs POST /v1/functions/{id}/verify replays by default, and at most.
constexpr int64_t kDefaultVerifyLimit = 10000;
constexpr int64_t kMaxVerifyLimit = 1000000;

int page_size(int64_t limit) {
  if (limit < 1 || limit > kMaxPageSize) {
    throw RequestError(400, fmt::format("\"limit\" must be between 1 and {}", kMaxPageSize));
  }
  return static_cast<int>(limit);
}

int query_limit(const HttpRequest& req) {
  std::string text = query(req, "limit");
  return text.empty() ? kDefaultPageSize : page_size(parse_int("limit", text));
}

RunStatus parse_status(const std::string& text) {
  try {
    return parse_run_status(text);
  } catch (const Error&) {
    throw RequestError(400, fmt::format("unknown status '{}': use queued, running, sleeping, waiting, completed, failed or cancelled", text));
  }
}

std::vector<RunStatus> parse_statuses(const std::string& comma_list) {
  std::vector<RunStatus> out;
  size_t at = 0;
  while (at <= comma_list.size() && !comma_list.empty()) {
    size_t comma = comma_list.find(',', at);
    std::string one = comma_list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    if (!one.empty()) out.push_back(parse_status(one));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

nlohmann::json parse_body(const HttpRequest& req) {
  if (req.body.empty()) return nlohmann::json::object();
  nlohmann::json body = parse_json_input(req.body, "the body");
  if (!body.is_object()) throw RequestError(400, "the body must be a JSON object");
  return body;
}

// The filter of a bulk action's body; at least one field is required, so that an empty body
// never acts on every run.
RunFilter bulk_filter(const nlohmann::json& body) {
  RunFilter f;
  bool any = false;
  if (auto it = body.find("function"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) throw RequestError(400, "\"function\" must be a string");
    f.function_id = it->get<std::string>();
    any = true;
  }
  if (auto it = body.find("event"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) throw RequestError(400, "\"event\" must be a string");
    f.event_id = it->get<std::string>();
    any = true;
  }
  if (auto it = body.find("status"); it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      f.statuses = parse_statuses(it->get<std::string>());
    } else if (it->is_array()) {
      for (const auto& s : *it) {
        if (!s.is_string()) throw RequestError(400, "\"status\" must be a string or an array of strings");
        f.statuses.push_back(parse_status(s.get<std::string>()));
      }
    } else {
      throw RequestError(400, "\"status\" must be a string or an array of strings");
    }
    any = any || !f.statuses.empty();
  }
  for (const char* field : {"started_after", "started_before"}) {
    if (auto it = body.find(field); it != body.end() && !it->is_null()) {
      std::optional<int64_t> ms = json_int64(*it);
      if (!ms) throw RequestError(400, fmt::format("\"{}\" must be ms since the Unix epoch (an integer)", field));
      (std::string_view(field) == "started_after" ? f.created_after : f.created_before) = time_value(field, *ms);
      any = true;
    }
  }
  if (!any) {
    throw RequestError(400, "give at least one of \"function\", \"event\", \"status\", \"started_after\", \"started_before\": "
                            "a bulk action never applies to every run");
  }
  return f;
}

struct BulkPage {
  int limit = kMaxPageSize;
  std::string cursor;
  bool dry_run = false;  // only count the matching runs
};

BulkPage bulk_page(const nlohmann::json& body) {
  BulkPage page;
  if (auto it = body.find("dry_run"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) throw RequestError(400, "\"dry_run\" must be true or false");
    page.dry_run = it->get<bool>();
  }
  if (auto it = body.find("limit"); it != body.end() && !it->is_null()) {
    std::optional<int64_t> limit = json_int64(*it);
    if (!limit) throw RequestError(400, "\"limit\" must be an integer");
    page.limit = page_size(*limit);
  }
  if (auto it = body.find("cursor"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) throw RequestError(400, "\"cursor\" must be a string");
    page.cursor = decode_cursor("cursor", it->get<std::string>());
  }
  return page;
}

nlohmann::json cursor_json(const std::string& cursor) {
  return cursor.empty() ? nlohmann::json(nullptr) : nlohmann::json(cursor);
}

nlohmann::json bulk_json(const BulkResult& r) {
  nlohmann::json j{{"count", r.run_ids.size()},
                   {"run_ids", r.run_ids},
                   {"next_cursor", cursor_json(r.next_cursor)}};
  if (r.total) j["total"] = *r.total;
  return j;
}

// Stores the events of the body (one or an array, as Inngest's event API takes them); answers
// their ids in order.
HttpResponse send_events(ApiServices& api, const HttpRequest& req) {
  auto ids = api.ingestor.ingest(parse_events(req.body, api.limits), req.header("x-inngest-event-id-seed"));
  return json_response({{"ids", ids}, {"status", 200}});
}

// A bulk action's dry run: how many runs it would act on now, for a confirmation.
HttpResponse dry_run_json(ApiServices& api, const RunFilter& filter) {
  return json_response({{"dry_run", true}, {"total", api.store.count_runs(filter)}});
}

// GET /v1/functions?stats=true: each function's runs over the last day, by status: totals
// for the last hour and day, and a chart of kChartBuckets buckets ending now. One query for
// every function: it reads the last day's runs once.
constexpr int kChartBuckets = 96;
constexpr std::chrono::milliseconds kChartBucket = std::chrono::minutes(15);

void add_stats(ApiServices& api, nlohmann::json& functions) {
  TimePoint now = api.clock.now();
  // The last bucket ends just after now, so that it holds the runs created at `now`.
  TimePoint from = now + std::chrono::milliseconds(1) - kChartBucket * kChartBuckets;
  int64_t hour_start = kChartBuckets - std::chrono::hours(1) / kChartBucket;
  std::map<std::string, nlohmann::json> stats;
  for (const auto& f : functions) {
    nlohmann::json zeros = nlohmann::json::object(), series = nlohmann::json::object();
    for (RunStatus s : kAllRunStatuses) {
      zeros[std::string(to_string(s))] = 0;
      series[std::string(to_string(s))] = std::vector<int64_t>(kChartBuckets, 0);
    }
    stats[f["id"]] = {{"last_hour", zeros}, {"last_day", zeros},
                      {"chart", {{"from", to_millis(from)}, {"bucket_ms", kChartBucket.count()}, {"series", series}}}};
  }
  for (const RunCount& c : api.store.count_runs_by_time({}, from, kChartBucket, kChartBuckets)) {
    auto it = stats.find(c.function_id);
    if (it == stats.end()) continue;  // unregistered since
    nlohmann::json& s = it->second;
    std::string status(to_string(c.status));
    s["chart"]["series"][status][static_cast<size_t>(c.bucket)] = c.count;
    s["last_day"][status] = s["last_day"][status].get<int64_t>() + c.count;
    if (c.bucket >= hour_start) s["last_hour"][status] = s["last_hour"][status].get<int64_t>() + c.count;
  }
  for (auto& f : functions) f["stats"] = std::move(stats[f["id"]]);
}

// Throws 404 unless some process recorded the function.
void must_be_recorded(ApiServices& api, const std::string& function_id) {
  auto functions = api.store.list_functions();
  bool known = std::any_of(functions.begin(), functions.end(), [&](const FunctionRecord& f) { return f.id == function_id; });
  if (!known) throw RequestError(404, fmt::format("no function with id '{}'", function_id));
}

StoredEvent must_find_event(ApiServices& api, const std::string& id) {
  auto event = api.store.find_event(id);
  if (!event) throw RequestError(404, fmt::format("no event with id '{}'", id));
  return *event;
}

nlohmann::json runs_json(const std::vector<Run>& runs) {
  nlohmann::json out = nlohmann::json::array();
  for (const Run& r : runs) out.push_back(run_json(r));
  return out;
}

}  // namespace

std::vector<Route> api_routes(ApiServices* api, bool metrics_require_api_key) {
  std::vector<Route> routes;
  auto add = [&](const char* method, const char* path, Access access, HttpHandler handler) {
    routes.push_back(Route{method, path, access, std::move(handler)});
  };

  // After a fail-stop (docs/operations.md, "Storage faults") the store refuses every write
  // and the process is about to exit: 503, so that a probe sees it even before the exit.
  routes.push_back(Route{"GET", "/health", Access::open, [api](const HttpRequest&) {
                           if (auto failure = api ? api->store.failure() : std::nullopt) {
                             return json_response({{"status", "failed"}, {"error", *failure}}, 503);
                           }
                           return json_response({{"status", "ok"}});
                         },
                         /*quick=*/true});

  add("GET", "/metrics", metrics_require_api_key ? Access::api_key : Access::open, [api](const HttpRequest&) {
    return HttpResponse{200, api->metrics(), "text/plain; version=0.0.4; charset=utf-8"};
  });

  add("POST", "/e/{key}", Access::event_key, [api](const HttpRequest& req) { return send_events(*api, req); });
  add("POST", "/e/", Access::open, [](const HttpRequest&) -> HttpResponse {
    throw RequestError(401, "missing event key: POST /e/{event_key}");
  });

  add("GET", "/v1/functions", Access::api_key, [api](const HttpRequest& req) {
    nlohmann::json out = nlohmann::json::array();
    for (const FunctionRecord& f : api->store.list_functions()) out.push_back(function_json(f));
    if (query_bool(req, "stats")) add_stats(*api, out);
    return json_response({{"functions", out}});
  });

  add("POST", "/v1/functions/{id}/unregister", Access::api_key, [api](const HttpRequest& req) {
    const std::string& id = req.path_params[0];
    if (!api->store.unregister_function(id)) throw RequestError(404, fmt::format("no function with id '{}'", id));
    log(LogLevel::info, "function unregistered", {{"function", id}});
    return json_response({{"unregistered", id}});
  });

  add("POST", "/v1/functions/{id}/verify", Access::api_key, [api](const HttpRequest& req) {
    const std::string& id = req.path_params[0];
    std::string text = query(req, "limit");
    int64_t limit = text.empty() ? kDefaultVerifyLimit : parse_int("limit", text);
    if (limit < 1 || limit > kMaxVerifyLimit) {
      throw RequestError(400, fmt::format("\"limit\" must be between 1 and {}", kMaxVerifyLimit));
    }
    std::optional<VerifyReport> report = api->verify(id, static_cast<int>(limit));
    if (!report) {
      must_be_recorded(*api, id);
      throw RequestError(409, fmt::format("function '{}' is not registered in this process: verify replays runs against "
                                          "the code, so ask a process that registers it (a worker of the new version)",
                                          id));
    }
    nlohmann::json diverged = nlohmann::json::array();
    for (const VerifiedRun& r : report->diverged) {
      diverged.push_back({{"run_id", r.run_id}, {"status", to_string(r.status)}, {"expected", r.expected},
                          {"actual", r.actual}, {"message", r.message}, {"steps_replayed", r.steps_replayed}});
    }
    return json_response({{"function_id", id}, {"checked", report->checked}, {"diverged", diverged}});
  });

  add("GET", "/v1/events", Access::api_key, [api](const HttpRequest& req) {
    EventFilter filter{query(req, "name"), query_time(req, "received_after"), query_time(req, "received_before")};
    int limit = query_limit(req);
    bool with_runs = query_bool(req, "runs");
    auto events = api->store.list_events(filter, limit + 1, decode_cursor("cursor", query(req, "cursor")));
    std::string next = trim_page(events, limit);
    nlohmann::json out = nlohmann::json::array();
    for (const StoredEvent& e : events) out.push_back(event_json(e));
    if (with_runs) {
      // The runs of the whole page in one query, rather than one per event.
      std::vector<std::string> ids;
      for (const StoredEvent& e : events) ids.push_back(e.id);
      std::map<std::string, nlohmann::json> runs;
      for (const Run& r : api->store.runs_for_events(ids)) runs[r.event_id].push_back(run_json(r));
      for (auto& e : out) e["runs"] = runs.count(e["id"]) ? runs[e["id"]] : nlohmann::json::array();
    }
    return json_response({{"events", out}, {"next_cursor", cursor_json(next)}});
  });
  // Sending with the API key rather than an event key: operators and the dashboard's test
  // event form. The body and the answer are those of POST /e/{key}.
  add("POST", "/v1/events", Access::api_key, [api](const HttpRequest& req) { return send_events(*api, req); });
  add("GET", "/v1/events/{id}", Access::api_key, [api](const HttpRequest& req) {
    return json_response(event_json(must_find_event(*api, req.path_params[0])));
  });
  add("GET", "/v1/events/{id}/runs", Access::api_key, [api](const HttpRequest& req) {
    must_find_event(*api, req.path_params[0]);
    return json_response({{"runs", runs_json(api->store.runs_for_event(req.path_params[0]))}});
  });

  add("GET", "/v1/runs", Access::api_key, [api](const HttpRequest& req) {
    RunFilter filter{parse_statuses(query(req, "status")), query(req, "function"), query(req, "event"),
                     query_time(req, "started_after"), query_time(req, "started_before")};
    int limit = query_limit(req);
    auto runs = api->store.list_runs(filter, limit + 1, decode_cursor("cursor", query(req, "cursor")));
    std::string next = trim_page(runs, limit);
    return json_response({{"runs", runs_json(runs)}, {"next_cursor", cursor_json(next)}});
  });
  add("GET", "/v1/runs/{id}", Access::api_key, [api](const HttpRequest& req) {
    const std::string& id = req.path_params[0];
    auto run = api->store.find_run(id);
    if (!run) throw RequestError(404, fmt::format("no run with id '{}'", id));
    auto journal = api->store.load_journal(id);
    auto event = api->store.find_event(run->event_id);
    nlohmann::json j = run_json(*run);
    j["event"] = event ? event_json(*event) : nlohmann::json(nullptr);
    j["replays"] = api->store.replays_of(id);
    j["steps"] = steps_json(journal, api->clock.now());
    j["body_errors"] = body_errors_json(journal);
    return json_response(j);
  });

  add("POST", "/v1/runs/{id}/cancel", Access::api_key, [api](const HttpRequest& req) {
    return json_response({{"run", run_json(api->control.cancel(req.path_params[0]))}});
  });
  add("POST", "/v1/runs/{id}/resume", Access::api_key, [api](const HttpRequest& req) {
    return json_response({{"run", run_json(api->control.resume(req.path_params[0]))}});
  });
  add("POST", "/v1/runs/{id}/replay", Access::api_key, [api](const HttpRequest& req) {
    nlohmann::json body = parse_body(req);
    ReplayOptions options;
    if (auto it = body.find("from_step"); it != body.end() && !it->is_null()) {
      if (!it->is_string() || it->get<std::string>().empty()) throw RequestError(400, "\"from_step\" must be a step key");
      options.from_step = it->get<std::string>();
    }
    if (auto it = body.find("output"); it != body.end()) options.output = *it;
    return json_response({{"run", run_json(api->control.replay(req.path_params[0], options))}}, 201);
  });

  add("POST", "/v1/cancellations", Access::api_key, [api](const HttpRequest& req) {
    nlohmann::json body = parse_body(req);
    RunFilter filter = bulk_filter(body);
    BulkPage page = bulk_page(body);
    if (page.dry_run) return dry_run_json(*api, filter);
    return json_response(bulk_json(api->control.cancel_matching(filter, page.limit, page.cursor)));
  });
  add("POST", "/v1/replays", Access::api_key, [api](const HttpRequest& req) {
    nlohmann::json body = parse_body(req);
    RunFilter filter = bulk_filter(body);
    BulkPage page = bulk_page(body);
    if (page.dry_run) return dry_run_json(*api, filter);
    BulkResult result = api->control.replay_matching(filter, page.limit, page.cursor);
    nlohmann::json j = bulk_json(result);
    j["replayed"] = nlohmann::json::array();
    for (const auto& [original, run] : result.replayed) j["replayed"].push_back({{"original", original}, {"run", run}});
    return json_response(j);
  });

  add("POST", "/v1/gc", Access::api_key, [api](const HttpRequest& req) {
    nlohmann::json body = parse_body(req);
    auto it = body.find("older_than_ms");
    std::optional<int64_t> older_than = it == body.end() ? std::nullopt : json_int64(*it);
    // Bounded like the times of ids, so that the cutoff (now minus it) cannot overflow.
    if (!older_than || *older_than < 0 || *older_than > kMaxIdMillis) {
      throw RequestError(400, fmt::format("\"older_than_ms\" is required: a non-negative integer (ms), at most {}",
                                          kMaxIdMillis));
    }
    GcResult r = api->collect(api->clock.now() - std::chrono::milliseconds(*older_than));
    return json_response({{"runs_deleted", r.runs_deleted}, {"events_deleted", r.events_deleted}});
  });

  return routes;
}

}  // namespace durable
