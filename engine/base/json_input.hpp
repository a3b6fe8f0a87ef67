// JSON from outside the process: request bodies, the command line's JSON arguments, the
// engine's answers as the CLI reads them. Everything such text goes through one parser,
//
//   nlohmann::json body = parse_json_input(req.body, "the body");
//
// which refuses, with a RequestError(400) that says where, what nlohmann::json::parse would
// hand over but the rest of the program cannot take:
//
// - nesting deeper than kMaxJsonDepth. Copying, printing and comparing a value recurse once per
//   level, so 100,000 '[' would overflow the stack there. The parser is iterative and stops at
//   the first object or array too deep, before building it;
// - a number outside a double's range (1e400): refused naming its field,
//   `"data.amount" in the body: the number 1e400 is out of range`;
// - text that is not JSON: `the body is not valid JSON at line 1, column 17: ...`.
//
// Fields that convert numbers read them with json_int64(), which takes only integers that fit
// an int64_t (not 1e300, 1.5 or 2^64-1), so no cast can overflow.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "engine/base/request_error.hpp"

namespace durable {

// How deeply objects and arrays may nest in JSON from outside: a top-level object is depth 1,
// so `{"data":{"a":[1]}}` is 3 deep. Far beyond any real event or output, and far below
// what a thread's stack allows for the recursive operations on a value.
constexpr int kMaxJsonDepth = 100;

// Parses `text` (JSON, nothing before or after it but whitespace). `what` names the text in
// messages ("the body", "--output"). Throws RequestError(400) for text that is not JSON, for
// objects or arrays nested more than `max_depth` deep, and for a number out of a double's
// range, naming where. Thread-safe.
nlohmann::json parse_json_input(std::string_view text, std::string_view what, int max_depth = kMaxJsonDepth);

// `value` when it is an integer that an int64_t holds; nullopt for anything else: a float
// (even 1e3 or 1.0), an unsigned integer above INT64_MAX, a string.
std::optional<int64_t> json_int64(const nlohmann::json& value);

}  // namespace durable
