// JSON from outside the process (engine/base/json_input.hpp): nesting refused past the limit before
// it is built, numbers out of a double's range refused naming their field, malformed text
// refused with its place, and everything else built exactly as nlohmann::json::parse builds it.
#include <cstdint>
#include <string>

#include <doctest/doctest.h>

#include "engine/base/json_input.hpp"

using namespace durable;
using nlohmann::json;

namespace {

// The message of the RequestError that parsing `text` throws (checking its status), or "".
std::string refusal(const std::string& text, int max_depth = kMaxJsonDepth) {
  try {
    parse_json_input(text, "the body", max_depth);
  } catch (const RequestError& e) {
    CHECK(e.status() == 400);
    return e.what();
  }
  return "";
}

std::string nested_arrays(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string nested_objects(size_t depth) {
  std::string text;
  for (size_t i = 0; i < depth; ++i) text += R"({"a":)";
  text += "1";
  return text + std::string(depth, '}');
}

}  // namespace

TEST_SUITE("json_input") {
  TEST_CASE("objects and arrays nested up to the limit parse; one level more is refused") {
    CHECK(kMaxJsonDepth >= 64);
    CHECK(kMaxJsonDepth <= 128);
    CHECK(parse_json_input(nested_arrays(kMaxJsonDepth), "the body") == json::parse(nested_arrays(kMaxJsonDepth)));
    CHECK(parse_json_input(nested_objects(kMaxJsonDepth), "the body") == json::parse(nested_objects(kMaxJsonDepth)));
    CHECK(refusal(nested_arrays(kMaxJsonDepth + 1)).starts_with("the body is nested more than 100 levels deep"));
    CHECK(refusal(nested_objects(kMaxJsonDepth + 1)).starts_with("the body is nested more than 100 levels deep"));
    // The message says where, cut short.
    CHECK(refusal(R"({"output":)" + nested_arrays(200) + "}").find(R"((at "output[0][0][0])") != std::string::npos);
    CHECK(refusal("[[[]]]", 2) == R"(the body is nested more than 2 levels deep (at "[0][0]"))");
  }

  TEST_CASE("100,000 nested arrays or objects are refused without overflowing the stack") {
    CHECK(refusal(nested_arrays(100'000)).find("nested more than 100 levels") != std::string::npos);
    CHECK(refusal(nested_objects(100'000)).find("nested more than 100 levels") != std::string::npos);
    // Unclosed, and deep inside a wide document.
    CHECK(refusal(R"({"a":[1,2,{"b":)" + std::string(100'000, '[')).find("nested more than") != std::string::npos);
  }

  TEST_CASE("a number out of a double's range is refused naming its field") {
    CHECK(refusal(R"({"name":"x","data":{"amount":1e400}})") ==
          R"("data.amount" in the body: the number 1e400 is out of range)");
    CHECK(refusal(R"({"ts":-1e400})") == R"("ts" in the body: the number -1e400 is out of range)");
    CHECK(refusal(R"({"items":[1,2,{"qty":[0,1E999]}]})") ==
          R"("items[2].qty[1]" in the body: the number 1E999 is out of range)");
    CHECK(refusal(R"([{"name":"a"},{"name":"b","data":{"n":9e99999}}])") ==
          R"("[1].data.n" in the body: the number 9e99999 is out of range)");
    CHECK(refusal("1e999999") == "the body: the number 1e999999 is out of range");
    // An integer too long for any integer type is read as a double; past a double, refused, the
    // token cut short in the message.
    std::string message = refusal(R"({"big":1)" + std::string(400, '0') + "}");
    CHECK(message.starts_with(R"("big" in the body: the number 100000)"));
    CHECK(message.size() < 120);
    // Within range: kept, as doubles.
    json small = parse_json_input(R"({"a":1e308,"b":1)" + std::string(30, '0') + R"(,"c":4.9e-324,"d":1e-400})", "the body");
    CHECK(small["a"] == 1e308);
    CHECK(small["b"] == 1e30);
    CHECK(small["c"].is_number_float());
    CHECK(small["d"] == 0.0);
  }

  TEST_CASE("text that is not JSON is refused with its line and column") {
    CHECK(refusal(R"({"name":"x",)") ==
          "the body is not valid JSON at line 1, column 13: syntax error while parsing object key - unexpected end of "
          "input; expected string literal");
    CHECK(refusal("{\n  \"a\": tru\n}").starts_with("the body is not valid JSON at line 2, column 11: "));
    CHECK(refusal("").starts_with("the body is not valid JSON at line 1, column 1: "));
    CHECK(refusal("{} {}").find("expected end of input") != std::string::npos);
    CHECK(refusal("\"\xff\"").find("ill-formed UTF-8") != std::string::npos);
    // An unterminated string is quoted in the message, cut short.
    CHECK(refusal("\"" + std::string(100'000, 'x')).size() < 400);
  }

  TEST_CASE("what parses is built as nlohmann::json::parse builds it") {
    for (const char* text :
         {"null", "true", "0", "-0", "-9223372036854775808", "18446744073709551615", "1.5e3", R"("h\u00e9\n")",
          "[]", "{}", R"([1,[2,[3,{}]],{"a":{"b":[null,false]}}])",
          R"({"a":1,"a":{"x":[1]}})",  // a repeated key: the last wins
          R"({"":0,"k.e.y":[],"é":"ü"})", " \t\n[ 1 , 2 ]\n "}) {
      CAPTURE(text);
      json ours = parse_json_input(text, "the body");
      json theirs = json::parse(text);
      CHECK(ours == theirs);
      CHECK(ours.dump() == theirs.dump());
    }
    CHECK(parse_json_input("18446744073709551615", "x").is_number_unsigned());
    CHECK(parse_json_input("-5", "x").is_number_integer());
  }

  TEST_CASE("json_int64 takes only integers an int64_t holds") {
    CHECK(json_int64(json::parse("42")) == 42);
    CHECK(json_int64(json::parse("-42")) == -42);
    CHECK(json_int64(json::parse("9223372036854775807")) == INT64_MAX);
    CHECK(json_int64(json::parse("-9223372036854775808")) == INT64_MIN);
    CHECK_FALSE(json_int64(json::parse("9223372036854775808")));
    CHECK_FALSE(json_int64(json::parse("18446744073709551615")));
    CHECK_FALSE(json_int64(json::parse("1e300")));
    CHECK_FALSE(json_int64(json::parse("1.0")));
    CHECK_FALSE(json_int64(json::parse("1e3")));
    CHECK_FALSE(json_int64(json::parse(R"("5")")));
    CHECK_FALSE(json_int64(json::parse("null")));
  }
}
