// Expressions (docs/expressions.md): parsing, every operator and function, paths, and the
// errors malformed text gets.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "engine/events/expression.hpp"

using namespace durable;
using nlohmann::json;

namespace {

const json kEvent = json::parse(R"({
  "name": "order/created",
  "data": {
    "amount": 150,
    "price": 99.5,
    "big": 18446744073709551615,
    "currency": "EUR",
    "email": "ada@example.com",
    "tags": ["vip", "new"],
    "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
    "odd key": "yes",
    "empty": "",
    "zero": 0,
    "none": null,
    "flag": true,
    "nested": {"in": 1}
  }
})");

json eval(std::string_view text, const json& event = kEvent) {
  return Expression::parse(text).evaluate({{"event", &event}});
}

bool match(std::string_view text, const json& event = kEvent) {
  return Expression::parse(text).matches({{"event", &event}});
}

// The message of the ExpressionError that parsing `text` throws, or "" if it parses.
std::string error(std::string_view text) {
  try {
    Expression::parse(text);
  } catch (const ExpressionError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("expression") {
  TEST_CASE("the issue's trigger filter matches EUR orders over 100 and nothing else") {
    const auto filter = Expression::parse("event.data.amount > 100 && event.data.currency == 'EUR'");
    auto order = [](json amount, json currency) {
      return json{{"name", "order/created"}, {"data", {{"amount", amount}, {"currency", currency}}}};
    };
    auto matches = [&](const json& event) { return filter.matches({{"event", &event}}); };
    CHECK(matches(order(150, "EUR")));
    CHECK(matches(order(100.5, "EUR")));
    CHECK_FALSE(matches(order(100, "EUR")));
    CHECK_FALSE(matches(order(150, "USD")));
    CHECK_FALSE(matches(order("150", "EUR")));  // a string is not a number
    CHECK_FALSE(matches(json{{"name", "order/created"}}));  // no data at all
    CHECK(filter.text() == "event.data.amount > 100 && event.data.currency == 'EUR'");
  }

  TEST_CASE("literals: integers, floats, exponents, negatives, strings with escapes, true, false, null, arrays") {
    CHECK(eval("42") == 42);
    CHECK(eval("-7") == -7);
    CHECK(eval("2.5") == 2.5);
    CHECK(eval("1e3") == 1000.0);
    CHECK(eval("-1.5E-1") == -0.15);
    CHECK(eval("18446744073709551615") == 18446744073709551615ULL);
    CHECK(eval("99999999999999999999") == 1e20);  // too big for 64 bits: a double
    CHECK(eval("'single'") == "single");
    CHECK(eval("\"double\"") == "double");
    CHECK(eval(R"('it\'s \"q\" \\ \n\t\r')") == "it's \"q\" \\ \n\t\r");
    CHECK(eval(R"("a'b")") == "a'b");
    CHECK(eval("true") == true);
    CHECK(eval("false") == false);
    CHECK(eval("null") == nullptr);
    CHECK(eval("[1, 'x', [true, null], []]") == json::parse(R"([1, "x", [true, null], []])"));
  }

  TEST_CASE("paths: members, indexes, quoted keys; anything missing is null") {
    CHECK(eval("event.name") == "order/created");
    CHECK(eval("event.data.items[1].sku") == "B-2");
    CHECK(eval("event.data['odd key']") == "yes");
    CHECK(eval("event[\"data\"].tags[0]") == "vip");
    CHECK(eval("event.data.nested.in") == 1);  // keywords are fine as field names
    CHECK(eval("event.data") == kEvent["data"]);
    CHECK(eval("event.data.missing") == nullptr);
    CHECK(eval("event.data.missing.deeper[3]") == nullptr);
    CHECK(eval("event.data.items[9].sku") == nullptr);
    CHECK(eval("event.data.amount.value") == nullptr);  // a member of a number
    CHECK(eval("event.data.tags.first") == nullptr);    // a member of an array
    CHECK(eval("event.data[0]") == nullptr);            // an index into an object
    CHECK(eval("unbound.x") == nullptr);
    CHECK(match("event.data.missing == null"));
    CHECK(match("event.data.none == null"));
  }

  TEST_CASE("several variables are bound at once") {
    const json async = {{"data", {{"order_id", "o-1"}}}};
    const json event = {{"data", {{"order_id", "o-1"}}}};
    auto same = Expression::parse("async.data.order_id == event.data.order_id");
    CHECK(same.matches({{"event", &event}, {"async", &async}}));
    CHECK_FALSE(same.matches({{"event", &event}}));  // async unbound: null != "o-1"
    const json other = {{"data", {{"order_id", "o-2"}}}};
    CHECK_FALSE(same.matches({{"event", &event}, {"async", &other}}));
    // Bindings may be kept in a variable (they copy the list, which dies with its statement).
    Bindings vars{{"event", &event}, {"async", &async}};
    CHECK(same.matches(vars));
    CHECK_THROWS_AS(Bindings({{"a", &event}, {"b", &event}, {"c", &event}, {"d", &event}, {"e", &event}}),
                    std::invalid_argument);
  }

  TEST_CASE("== and != compare JSON equality, numbers by value across int, unsigned and float") {
    CHECK(match("event.data.amount == 150"));
    CHECK(match("event.data.amount == 150.0"));
    CHECK(match("event.data.price != 99"));
    CHECK(match("event.data.currency == \"EUR\""));
    CHECK(match("event.data.tags == ['vip', 'new']"));
    CHECK(match("event.data.big == 18446744073709551615"));  // exact, as unsigned integers
    CHECK_FALSE(match("event.data.big == 18446744073709551614"));
    CHECK(match("event.data.big != -1"));
    CHECK_FALSE(match("event.data.amount == '150'"));
    CHECK_FALSE(match("event.data.flag == 1"));
    CHECK(match("event.data.flag != 1"));
    CHECK(match("null == null"));
    CHECK_FALSE(match("event.data.zero == null"));
  }

  TEST_CASE("< <= > >= order numbers with numbers and strings with strings; other pairs are false") {
    CHECK(match("event.data.amount > 100"));
    CHECK(match("event.data.amount >= 150"));
    CHECK(match("event.data.amount <= 150"));
    CHECK(match("event.data.amount < 150.5"));
    CHECK_FALSE(match("event.data.amount < 150"));
    CHECK(match("event.data.big > 9223372036854775807"));  // unsigned beyond int64 vs int64
    CHECK(match("-1 < event.data.big"));
    CHECK(match("'apple' < 'banana'"));
    CHECK(match("'b' >= 'abc'"));
    CHECK(match("'' < 'a'"));
    // Different types are neither smaller, nor greater, nor equal.
    for (const char* op : {"<", "<=", ">", ">="}) {
      CAPTURE(op);
      CHECK_FALSE(match(std::string("event.data.amount ") + op + " '100'"));
      CHECK_FALSE(match(std::string("event.data.missing ") + op + " 0"));
      CHECK_FALSE(match(std::string("event.data.flag ") + op + " false"));
      CHECK_FALSE(match(std::string("[1] ") + op + " [1]"));
    }
  }

  TEST_CASE("&& || ! use truthiness: null, false, 0, '', [] and {} are false") {
    for (const char* falsy : {"null", "false", "0", "0.0", "''", "[]", "event.data.empty", "event.data.zero",
                              "event.data.missing", "event.data.nested.missing"}) {
      CAPTURE(falsy);
      CHECK_FALSE(match(falsy));
      CHECK(match(std::string("!") + falsy));
    }
    for (const char* truthy : {"true", "1", "-1", "0.5", "'x'", "[0]", "event.data", "event.data.tags"}) {
      CAPTURE(truthy);
      CHECK(match(truthy));
      CHECK_FALSE(match(std::string("!") + truthy));
    }
    CHECK(eval("1 && 'x'") == true);  // logical operators give booleans
    CHECK(eval("0 || ''") == false);
    CHECK(match("!!1"));
    CHECK(match("true && true && true"));
    CHECK_FALSE(match("true && true && false"));
    CHECK(match("false || false || true"));
    // Short-circuit: the right side is not needed, and a missing field is harmless anyway.
    CHECK(match("true || event.x.y.z"));
  }

  TEST_CASE("precedence: || below &&, && below !, ! below comparisons; parentheses override") {
    CHECK(match("true || false && false"));      // true || (false && false)
    CHECK_FALSE(match("(true || false) && false"));
    CHECK(match("false && false || true"));      // (false && false) || true
    CHECK(match("!event.data.amount == 1"));     // !(amount == 1)
    CHECK_FALSE(match("(!event.data.amount) == 1"));
    CHECK(match("!false && true"));              // (!false) && true
    CHECK_FALSE(match("!(false || true)"));
    CHECK(match("event.data.amount > 100 && event.data.currency == 'EUR' || false"));
  }

  TEST_CASE("in: an element of an array, a substring of a string, a key of an object") {
    CHECK(match("event.data.currency in ['EUR', 'GBP']"));
    CHECK_FALSE(match("event.data.currency in ['USD', 'GBP']"));
    CHECK(match("event.data.amount in [1, 150.0]"));  // numbers by value
    CHECK(match("'vip' in event.data.tags"));
    CHECK_FALSE(match("'old' in event.data.tags"));
    CHECK(match("'example' in event.data.email"));
    CHECK_FALSE(match("'EXAMPLE' in event.data.email"));  // case matters
    CHECK(match("'amount' in event.data"));
    CHECK_FALSE(match("'nope' in event.data"));
    CHECK(match("[1] in [[1], [2]]"));
    CHECK_FALSE(match("1 in event.data.missing"));
    CHECK_FALSE(match("1 in '123'"));  // a number is not a substring
    CHECK_FALSE(match("event.data.missing in []"));
  }

  TEST_CASE("functions: starts_with, ends_with, contains, size") {
    CHECK(match("starts_with(event.data.email, 'ada@')"));
    CHECK_FALSE(match("starts_with(event.data.email, 'bob@')"));
    CHECK(match("ends_with(event.data.email, '.com')"));
    CHECK_FALSE(match("ends_with(event.data.email, '.org')"));
    CHECK_FALSE(match("starts_with(event.data.amount, '1')"));  // not a string
    CHECK(match("contains(event.data.email, '@example')"));
    CHECK(match("contains(event.data.tags, 'new')"));
    CHECK_FALSE(match("contains(event.data.tags, 'old')"));
    CHECK(match("contains(event.data, 'currency')"));
    CHECK_FALSE(match("contains(event.data.missing, 'x')"));
    CHECK(eval("size(event.data.tags)") == 2);
    CHECK(eval("size(event.data.currency)") == 3);
    CHECK(eval("size(event.data.items[0])") == 2);
    CHECK(eval("size(event.data.amount)") == nullptr);
    CHECK(match("size(event.data.items) >= 2 && size('') == 0"));
    CHECK_FALSE(match("contains(event.data.tags, size(event.data.tags) == 2)"));  // any expression is an argument
    CHECK(match("starts_with((event.data.currency), 'E')"));
  }

  TEST_CASE("whitespace is free and the parsed expression can be evaluated from many threads") {
    CHECK(match(" \t\n event . data . amount\n>\t100 "));
    const auto filter = Expression::parse("event.data.n > 100 && 'x' in event.data.tags");
    std::vector<std::thread> threads;
    std::atomic<int> matched{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 1000; ++i) {
          json event = {{"data", {{"n", i + t}, {"tags", {"x"}}}}};
          if (filter.matches({{"event", &event}})) ++matched;
        }
      });
    }
    for (auto& thread : threads) thread.join();
    CHECK(matched == (899 + 900 + 901 + 902));
  }

  TEST_CASE("errors name the column of the problem") {
    CHECK(error("event.data.amount > 100 &&") ==
          "column 27: expected a value after '&&', found the end of the expression");
    CHECK(error("event.data.amount > 100 && || true") == "column 28: expected a value after '&&', found '||'");
    CHECK(error("") == "column 1: expected a value, found the end of the expression");
    CHECK(error("event.name == 'abc") == "column 15: unterminated string");
    CHECK(error("'abc\\") == "column 1: unterminated string");
    CHECK(error("'a\\qb'") == "column 3: unknown escape '\\q' (known: \\\\ \\' \\\" \\n \\t \\r)");
    CHECK(error("lower(event.name)") ==
          "column 1: unknown function 'lower' (known: starts_with, ends_with, contains, size)");
    CHECK(error("starts_with(event.name)") == "column 1: starts_with() takes 2 arguments, got 1");
    CHECK(error("x && size(1, 2)") == "column 6: size() takes 1 argument, got 2");
    CHECK(error("(event.x == 1") == "column 14: expected ')' to close the '(' at column 1, found the end of the expression");
    CHECK(error("event.x == 1)") == "column 13: unexpected ')' after the end of the expression");
    CHECK(error("event.x == 1 event.y") == "column 14: unexpected 'event' after the end of the expression");
    CHECK(error("event.x = 1") == "column 9: unexpected '='; compare with '=='");
    CHECK(error("a & b") == "column 3: unexpected '&'; did you mean '&&'?");
    CHECK(error("a | b") == "column 3: unexpected '|'; did you mean '||'?");
    CHECK(error("a == #") == "column 6: unexpected character '#'");
    CHECK(error("1 < 2 < 3") == "column 7: comparisons do not chain: write 'a < b && b < c', not 'a < b < c'");
    CHECK(error("event.") == "column 7: expected a field name after '.', found the end of the expression");
    CHECK(error("event.data[-1]") == "column 12: expected a quoted field name or an index >= 0 after '[', found '-1'");
    CHECK(error("event.data['a'") == "column 15: expected ']' to close the '[' at column 11, found the end of the expression");
    CHECK(error("x in [1, event.y]") == "column 10: array elements must be literals (numbers, strings, true, false, "
                                         "null or arrays), found 'event'");
    CHECK(error("x in [1 2]") == "column 9: expected ',' or ']' to close the '[' at column 6, found '2'");
    CHECK(error("contains(a b)") == "column 12: expected ',' or ')' to close the '(' at column 9, found 'b'");
    CHECK(error("12abc") == "column 3: unexpected 'a' in a number");
    CHECK(error("1e999") == "column 1: number out of range");
    CHECK(error("x == \x01") == "column 6: unexpected character '\\x01'");
    CHECK(error("== 1") == "column 1: expected a value, found '=='");
    CHECK(error("in") == "column 1: expected a value, found 'in'");
  }

  TEST_CASE("nesting deeper than 64 levels and text longer than 4 KiB are refused, not a stack overflow") {
    auto nested = [](int depth) { return std::string(depth, '(') + "1" + std::string(depth, ')'); };
    CHECK(error(nested(64)).empty());
    CHECK(error(nested(65)) == "column 65: nested deeper than 64 levels");
    CHECK(error(std::string(100, '!') + "x") == "column 65: nested deeper than 64 levels");
    CHECK(error(std::string(70, '[') + std::string(70, ']')) == "column 65: nested deeper than 64 levels");
    std::string calls;
    for (int i = 0; i < 70; ++i) calls += "size(";
    CHECK(error(calls + "1" + std::string(70, ')')) == "column 321: nested deeper than 64 levels");
    // Long flat chains are fine: && and || take any number of operands.
    std::string chain = "true";
    for (int i = 0; i < 600; ++i) chain += "&&true";
    CHECK(match(chain));
    CHECK(error(std::string(4097, ' ')) == "column 4097: the expression is 4097 bytes long; the limit is 4096");
    try {
      Expression::parse("1 +");
      FAIL("expected an ExpressionError");
    } catch (const ExpressionError& e) {
      CHECK(e.column() == 3);
      const Error& base = e;  // a durable::Error like every error durable throws
      CHECK(std::string(base.what()).starts_with("column 3: "));
    }
  }
}
