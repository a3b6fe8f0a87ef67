// Expressions: the small language of trigger filters and wait_for_event conditions
// (docs/expressions.md), e.g.
//
//   auto filter = Expression::parse("event.data.amount > 100 && event.data.currency == 'EUR'");
//   if (filter.matches({{"event", &event_json}})) ...
//
// An expression is parsed once (at registration) into a compact tree whose field paths are
// already split, so evaluating it parses nothing and, for matches(), allocates nothing.
#pragma once

#include <array>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <durable/errors.hpp>

namespace durable {

// A malformed expression. The message names the 1-based column of the problem:
// "column 17: expected a value after '&&', found the end of the expression".
class ExpressionError : public Error {
 public:
  ExpressionError(int column, const std::string& message);
  int column() const { return column_; }

 private:
  int column_;
};

// A root variable of an expression: `event` in `event.data.amount`. The JSON is borrowed.
struct Binding {
  std::string_view name;
  const nlohmann::json* value;
};

// The root variables an evaluation sees, written as a braced list:
//   expr.matches({{"event", &event}, {"async", &other}})
// It copies the (name, pointer) pairs into a fixed array, so it never allocates and may be
// kept in a variable; the names' characters and the JSON are borrowed and must outlive it.
class Bindings {
 public:
  static constexpr size_t kMax = 4;
  // Throws std::invalid_argument for more than kMax variables.
  Bindings(std::initializer_list<Binding> list);
  // The JSON bound to `name`, or nullptr.
  const nlohmann::json* find(std::string_view name) const;

 private:
  std::array<Binding, kMax> list_{};
  size_t size_ = 0;
};

struct ExpressionProgram;  // the parsed tree (expression.cpp)

// A parsed expression. Compile once, evaluate many times; copies share the parsed tree, and
// evaluating concurrently from several threads is safe.
class Expression {
 public:
  // Limits that keep hostile input from exhausting the stack or memory.
  static constexpr size_t kMaxLength = 4096;  // bytes of text
  static constexpr int kMaxDepth = 64;        // nested parentheses, arrays, calls and `!`

  // Throws ExpressionError naming the column of the first problem.
  static Expression parse(std::string_view text);

  // The value of the expression with `vars` bound. Never throws for any input JSON: a
  // missing field or unbound variable is null, comparing values of different types is
  // false (== and != compare JSON equality, numbers by value).
  nlohmann::json evaluate(const Bindings& vars) const;
  // Whether the value is truthy: everything but null, false, 0, "", [] and {}.
  bool matches(const Bindings& vars) const;

  // The text it was parsed from.
  const std::string& text() const;

 private:
  explicit Expression(std::shared_ptr<const ExpressionProgram> program) : program_(std::move(program)) {}
  std::shared_ptr<const ExpressionProgram> program_;
};

}  // namespace durable
