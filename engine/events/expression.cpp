#include "engine/events/expression.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <compare>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "engine/base/printable.hpp"

namespace durable {

using nlohmann::json;

ExpressionError::ExpressionError(int column, const std::string& message)
    : Error(fmt::format("column {}: {}", column, message)), column_(column) {}

// A copy rather than a view of the list: the array behind an initializer_list dies with the
// statement, and `Bindings vars{{"event", &e}};` followed by uses of `vars` must work.
Bindings::Bindings(std::initializer_list<Binding> list) {
  if (list.size() > kMax) throw std::invalid_argument(fmt::format("at most {} expression variables", kMax));
  std::copy(list.begin(), list.end(), list_.begin());
  size_ = list.size();
}

const json* Bindings::find(std::string_view name) const {
  for (size_t i = 0; i < size_; ++i)
    if (list_[i].name == name) return list_[i].value;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// The parsed form. Nodes live in one vector and refer to their operands by index, so a
// program is a few allocations however long the expression, and copying an Expression only
// copies a shared_ptr. && and || are n-ary and comparisons do not chain, so the tree is no
// deeper than the nesting the parser allowed: evaluation recurses a bounded number of times.

enum class Op {
  literal,  // `literal`
  path,     // `root` then `segments`
  not_, and_, or_,
  eq, ne, lt, le, gt, ge, in,
  starts_with, ends_with, contains, size,
};

struct Segment {
  std::string key;     // `.key` or `["key"]`: an object member
  int64_t index = -1;  // `[index]`: an array element (when >= 0)
};

struct Node {
  Op op = Op::literal;
  json literal;                   // Op::literal
  std::string root;               // Op::path: the variable
  std::vector<Segment> segments;  // Op::path: the steps from it
  std::vector<int> args;          // operands, by index into ExpressionProgram::nodes
};

struct ExpressionProgram {
  std::string text;
  std::vector<Node> nodes;
  int root = 0;
};

namespace {

// ---------------------------------------------------------------------------------------------
// Lexing. The whole text is cut into tokens first; the parser then only looks at tokens.

enum class Tok { end, number, string, name, punct };

struct Token {
  Tok kind = Tok::end;
  std::string_view text;  // as written (for strings: with the quotes)
  size_t pos = 0;         // byte offset in the text
  json value;             // Tok::number and Tok::string: the value
};

// Messages quote user text: its first 24 bytes, printable.
std::string quoted(std::string_view text) { return printable(text, 24); }

[[noreturn]] void fail_at(size_t pos, const std::string& message) {
  throw ExpressionError(static_cast<int>(pos) + 1, message);
}

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

Token lex_string(std::string_view text, size_t start) {
  const char quote = text[start];
  std::string value;
  size_t i = start + 1;
  for (;;) {
    if (i >= text.size()) fail_at(start, "unterminated string");
    char c = text[i];
    if (c == quote) break;
    if (c == '\\') {
      if (i + 1 >= text.size()) fail_at(start, "unterminated string");
      switch (text[i + 1]) {
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        default: fail_at(i, fmt::format("unknown escape '\\{}' (known: \\\\ \\' \\\" \\n \\t \\r)",
                                        quoted(text.substr(i + 1, 1))));
      }
      i += 2;
      continue;
    }
    value += c;
    ++i;
  }
  return {Tok::string, text.substr(start, i + 1 - start), start, json(std::move(value))};
}

// [-]digits[.digits][(e|E)[+-]digits]: an integer when it has no fraction or exponent and
// fits 64 bits (signed, or unsigned), a double otherwise.
Token lex_number(std::string_view text, size_t start) {
  size_t i = start;
  if (text[i] == '-') ++i;
  bool integral = true;
  while (i < text.size() && is_digit(text[i])) ++i;
  if (i + 1 < text.size() && text[i] == '.' && is_digit(text[i + 1])) {
    integral = false;
    for (++i; i < text.size() && is_digit(text[i]);) ++i;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    size_t j = i + 1;
    if (j < text.size() && (text[j] == '+' || text[j] == '-')) ++j;
    if (j < text.size() && is_digit(text[j])) {
      integral = false;
      for (i = j; i < text.size() && is_digit(text[i]);) ++i;
    }
  }
  if (i < text.size() && is_name_char(text[i])) fail_at(i, fmt::format("unexpected '{}' in a number", quoted(text.substr(i, 1))));
  std::string_view digits = text.substr(start, i - start);
  const char* first = digits.data();
  const char* last = first + digits.size();
  if (integral) {
    int64_t n = 0;
    if (auto [end, error] = std::from_chars(first, last, n); error == std::errc() && end == last)
      return {Tok::number, digits, start, json(n)};
    uint64_t u = 0;  // up to 2^64 - 1, like nlohmann's own parsing of event JSON
    if (auto [end, error] = std::from_chars(first, last, u); error == std::errc() && end == last)
      return {Tok::number, digits, start, json(u)};
  }
  double d = 0;
  auto [end, error] = std::from_chars(first, last, d);
  if (error != std::errc() || end != last || !std::isfinite(d)) fail_at(start, "number out of range");
  return {Tok::number, digits, start, json(d)};
}

std::vector<Token> lex(std::string_view text) {
  static constexpr std::string_view kTwoCharOps[] = {"==", "!=", "<=", ">=", "&&", "||"};
  static constexpr std::string_view kOneCharOps = "<>!()[],.";
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
    } else if (c == '\'' || c == '"') {
      tokens.push_back(lex_string(text, i));
      i += tokens.back().text.size();
    } else if (is_digit(c) || (c == '-' && i + 1 < text.size() && is_digit(text[i + 1]))) {
      // No operator takes '-', so a '-' before a digit can only begin a negative number.
      tokens.push_back(lex_number(text, i));
      i += tokens.back().text.size();
    } else if (is_name_start(c)) {
      size_t start = i;
      while (i < text.size() && is_name_char(text[i])) ++i;
      tokens.push_back({Tok::name, text.substr(start, i - start), start, {}});
    } else {
      std::string_view two = text.substr(i, 2);
      bool matched = false;
      for (std::string_view op : kTwoCharOps) {
        if (two == op) {
          tokens.push_back({Tok::punct, two, i, {}});
          i += 2;
          matched = true;
          break;
        }
      }
      if (matched) continue;
      if (kOneCharOps.find(c) != std::string_view::npos) {
        tokens.push_back({Tok::punct, text.substr(i, 1), i, {}});
        ++i;
      } else if (c == '=') {
        fail_at(i, "unexpected '='; compare with '=='");
      } else if (c == '&' || c == '|') {
        fail_at(i, fmt::format("unexpected '{}'; did you mean '{}{}'?", c, c, c));
      } else {
        fail_at(i, fmt::format("unexpected character '{}'", quoted(text.substr(i, 1))));
      }
    }
  }
  tokens.push_back({Tok::end, {}, text.size(), {}});
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// Parsing: recursive descent, one function per precedence level (docs/expressions.md):
//   or   := and ('||' and)*
//   and  := not ('&&' not)*
//   not  := '!' not | cmp
//   cmp  := primary [('==' | '!=' | '<' | '<=' | '>' | '>=' | 'in') primary]
//   primary := literal | array | path | call | '(' or ')'

struct Function {
  std::string_view name;
  Op op;
  size_t arity;
};
constexpr Function kFunctions[] = {
    {"starts_with", Op::starts_with, 2},
    {"ends_with", Op::ends_with, 2},
    {"contains", Op::contains, 2},
    {"size", Op::size, 1},
};

struct Comparison {
  std::string_view token;
  Op op;
};
constexpr Comparison kComparisons[] = {
    {"==", Op::eq}, {"!=", Op::ne}, {"<", Op::lt}, {"<=", Op::le}, {">", Op::gt}, {">=", Op::ge}, {"in", Op::in},
};

class Parser {
 public:
  Parser(std::string_view text, std::vector<Node>& nodes) : tokens_(lex(text)), nodes_(nodes) {}

  int parse() {
    int root = parse_or();
    if (peek().kind != Tok::end)
      fail_at(peek().pos, fmt::format("unexpected {} after the end of the expression", describe(peek())));
    return root;
  }

 private:
  // Counts nesting for the duration of a parse function; throws past Expression::kMaxDepth.
  // Every way back into parse_or ('(' and calls) and every recursion ('!', '[') holds one.
  class Nesting {
   public:
    Nesting(Parser& parser, size_t pos) : parser_(parser) {
      if (++parser_.depth_ > Expression::kMaxDepth)
        fail_at(pos, fmt::format("nested deeper than {} levels", Expression::kMaxDepth));
    }
    ~Nesting() { --parser_.depth_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;

   private:
    Parser& parser_;
  };

  const Token& peek() const { return tokens_[next_]; }
  const Token& take() { return tokens_[next_++]; }
  bool at(std::string_view punct) const { return peek().kind == Tok::punct && peek().text == punct; }
  bool at_name(std::string_view name) const { return peek().kind == Tok::name && peek().text == name; }

  static std::string describe(const Token& token) {
    return token.kind == Tok::end ? "the end of the expression" : fmt::format("'{}'", quoted(token.text));
  }

  void expect(std::string_view punct, std::string_view what) {
    if (!at(punct)) fail_at(peek().pos, fmt::format("expected {}, found {}", what, describe(peek())));
    take();
  }

  int add(Node node) {
    nodes_.push_back(std::move(node));
    return static_cast<int>(nodes_.size() - 1);
  }

  // An n-ary `op` over operands parsed by `operand`, separated by `token`.
  int parse_chain(std::string_view token, Op op, int (Parser::*operand)()) {
    int first = (this->*operand)();
    if (!at(token)) return first;
    Node node{.op = op, .args = {first}};
    while (at(token)) {
      take();
      node.args.push_back((this->*operand)());
    }
    return add(std::move(node));
  }

  int parse_or() { return parse_chain("||", Op::or_, &Parser::parse_and); }

  int parse_and() { return parse_chain("&&", Op::and_, &Parser::parse_not); }

  int parse_not() {
    if (!at("!")) return parse_comparison();
    Nesting nesting(*this, take().pos);
    return add({.op = Op::not_, .args = {parse_not()}});
  }

  const Comparison* comparison_at() const {
    for (const Comparison& c : kComparisons)
      if ((peek().kind == Tok::punct || peek().kind == Tok::name) && peek().text == c.token) return &c;
    return nullptr;
  }

  int parse_comparison() {
    int left = parse_primary();
    const Comparison* comparison = comparison_at();
    if (!comparison) return left;
    take();
    int right = parse_primary();
    if (comparison_at())
      fail_at(peek().pos, fmt::format("comparisons do not chain: write 'a < b && b < c', not 'a < b < c'"));
    return add({.op = comparison->op, .args = {left, right}});
  }

  int parse_primary() {
    const Token& token = peek();
    if (token.kind == Tok::number || token.kind == Tok::string || at("[") || at_name("true") ||
        at_name("false") || at_name("null"))
      return add({.op = Op::literal, .literal = parse_constant()});
    if (at("(")) {
      size_t open = take().pos;
      Nesting nesting(*this, open);
      int inner = parse_or();
      if (!at(")"))
        fail_at(peek().pos, fmt::format("expected ')' to close the '(' at column {}, found {}", open + 1, describe(peek())));
      take();
      return inner;
    }
    if (token.kind == Tok::name && token.text != "in") {
      if (tokens_[next_ + 1].kind == Tok::punct && tokens_[next_ + 1].text == "(") return parse_call();
      return parse_path();
    }
    if (next_ == 0) fail_at(token.pos, fmt::format("expected a value, found {}", describe(token)));
    fail_at(token.pos, fmt::format("expected a value after '{}', found {}", quoted(tokens_[next_ - 1].text),
                                   describe(token)));
  }

  // A literal: number, string, true, false, null, or an array of literals.
  json parse_constant() {
    const Token& token = take();
    if (token.kind == Tok::number || token.kind == Tok::string) return token.value;
    if (token.text == "true") return true;
    if (token.text == "false") return false;
    if (token.text == "null") return nullptr;
    // '[': array elements are literals, so the whole array is built here, once.
    Nesting nesting(*this, token.pos);
    json array = json::array();
    if (at("]")) {
      take();
      return array;
    }
    for (;;) {
      const Token& element = peek();
      bool literal = element.kind == Tok::number || element.kind == Tok::string || at("[") || at_name("true") ||
                     at_name("false") || at_name("null");
      if (!literal)
        fail_at(element.pos, fmt::format("array elements must be literals (numbers, strings, true, false, null "
                                         "or arrays), found {}",
                                         describe(element)));
      array.push_back(parse_constant());
      if (at("]")) break;
      if (!at(","))
        fail_at(peek().pos, fmt::format("expected ',' or ']' to close the '[' at column {}, found {}", token.pos + 1,
                                        describe(peek())));
      take();
    }
    take();
    return array;
  }

  // name ('.' name | '[' string ']' | '[' integer ']')*
  int parse_path() {
    Node node{.op = Op::path, .root = std::string(take().text)};
    for (;;) {
      if (at(".")) {
        take();
        if (peek().kind != Tok::name)
          fail_at(peek().pos, fmt::format("expected a field name after '.', found {}", describe(peek())));
        node.segments.push_back({.key = std::string(take().text)});
      } else if (at("[")) {
        size_t open = take().pos;
        const Token& index = take();
        if (index.kind == Tok::string)
          node.segments.push_back({.key = index.value.get<std::string>()});
        else if (index.kind == Tok::number && index.value.is_number_integer() && index.value.get<int64_t>() >= 0)
          node.segments.push_back({.index = index.value.get<int64_t>()});
        else
          fail_at(index.pos, fmt::format("expected a quoted field name or an index >= 0 after '[', found {}",
                                         describe(index)));
        if (!at("]"))
          fail_at(peek().pos, fmt::format("expected ']' to close the '[' at column {}, found {}", open + 1, describe(peek())));
        take();
      } else {
        return add(std::move(node));
      }
    }
  }

  int parse_call() {
    const Token& name = take();
    const Function* function = nullptr;
    for (const Function& f : kFunctions)
      if (f.name == name.text) function = &f;
    if (!function)
      fail_at(name.pos, fmt::format("unknown function '{}' (known: starts_with, ends_with, contains, size)",
                                    quoted(name.text)));
    Nesting nesting(*this, name.pos);
    size_t open = take().pos;
    Node node{.op = function->op};
    if (!at(")")) {
      node.args.push_back(parse_or());
      while (at(",")) {
        take();
        node.args.push_back(parse_or());
      }
    }
    if (!at(")"))
      fail_at(peek().pos, fmt::format("expected ',' or ')' to close the '(' at column {}, found {}", open + 1,
                                      describe(peek())));
    take();
    if (node.args.size() != function->arity)
      fail_at(name.pos, fmt::format("{}() takes {} argument{}, got {}", function->name, function->arity,
                                    function->arity == 1 ? "" : "s", node.args.size()));
    return add(std::move(node));
  }

  std::vector<Token> tokens_;
  std::vector<Node>& nodes_;
  size_t next_ = 0;
  int depth_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Evaluation. A node's value is usually JSON that already exists (a field of a bound variable,
// a literal), so it is borrowed by pointer; only booleans, sizes and null are made, and those
// never allocate.

const json kNull;

struct Value {
  const json* borrowed = nullptr;
  json made;  // when nothing is borrowed: a bool, a number or null
  const json& get() const { return borrowed ? *borrowed : made; }
};

Value borrow(const json& j) { return {&j, {}}; }
Value make(json j) { return {nullptr, std::move(j)}; }

bool truthy(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return false;
    case json::value_t::boolean: return j.get<bool>();
    case json::value_t::number_integer: return j.get<int64_t>() != 0;
    case json::value_t::number_unsigned: return j.get<uint64_t>() != 0;
    case json::value_t::number_float: return j.get<double>() != 0;
    case json::value_t::string: return !j.get_ref<const std::string&>().empty();
    case json::value_t::array:
    case json::value_t::object: return !j.empty();
    default: return true;  // binary, discarded: not produced by JSON text
  }
}

// Exact for any two integers (signed or unsigned 64-bit); through double when a float is involved.
std::partial_ordering compare_numbers(const json& a, const json& b) {
  using T = json::value_t;
  if (a.is_number_float() || b.is_number_float()) return a.get<double>() <=> b.get<double>();
  if (a.type() == T::number_unsigned && b.type() == T::number_unsigned) return a.get<uint64_t>() <=> b.get<uint64_t>();
  if (a.type() == T::number_integer && b.type() == T::number_integer) return a.get<int64_t>() <=> b.get<int64_t>();
  // One signed, one unsigned: a negative signed is the smaller; otherwise both fit uint64.
  if (a.type() == T::number_integer) {
    int64_t x = a.get<int64_t>();
    return x < 0 ? std::partial_ordering::less : static_cast<uint64_t>(x) <=> b.get<uint64_t>();
  }
  int64_t y = b.get<int64_t>();
  return y < 0 ? std::partial_ordering::greater : a.get<uint64_t>() <=> static_cast<uint64_t>(y);
}

bool equal(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b) == 0;
  return a == b;
}

// Numbers with numbers, strings with strings (byte-wise); anything else is unordered.
std::partial_ordering compare(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b);
  if (a.is_string() && b.is_string())
    return a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>()) <=> 0;
  return std::partial_ordering::unordered;
}

// `needle in haystack`, which is also contains(haystack, needle).
bool contained(const json& needle, const json& haystack) {
  if (haystack.is_array()) {
    for (const json& element : haystack)
      if (equal(needle, element)) return true;
    return false;
  }
  if (haystack.is_string() && needle.is_string())
    return haystack.get_ref<const std::string&>().find(needle.get_ref<const std::string&>()) != std::string::npos;
  if (haystack.is_object() && needle.is_string()) return haystack.contains(needle.get_ref<const std::string&>());
  return false;
}

bool starts_with(const json& s, const json& prefix) {
  return s.is_string() && prefix.is_string() &&
         s.get_ref<const std::string&>().starts_with(prefix.get_ref<const std::string&>());
}

bool ends_with(const json& s, const json& suffix) {
  return s.is_string() && suffix.is_string() &&
         s.get_ref<const std::string&>().ends_with(suffix.get_ref<const std::string&>());
}

json size_of(const json& j) {
  if (j.is_string()) return j.get_ref<const std::string&>().size();
  if (j.is_array() || j.is_object()) return j.size();
  return nullptr;
}

const json& walk(const Node& node, const Bindings& vars) {
  const json* at = vars.find(node.root);
  if (!at) return kNull;
  for (const Segment& segment : node.segments) {
    if (segment.index >= 0) {
      if (!at->is_array() || static_cast<uint64_t>(segment.index) >= at->size()) return kNull;
      at = &(*at)[static_cast<size_t>(segment.index)];
    } else {
      if (!at->is_object()) return kNull;
      auto member = at->find(segment.key);
      if (member == at->end()) return kNull;
      at = &*member;
    }
  }
  return *at;
}

Value eval(const ExpressionProgram& program, int index, const Bindings& vars) {
  const Node& node = program.nodes[static_cast<size_t>(index)];
  auto arg = [&](size_t i) { return eval(program, node.args[i], vars); };
  switch (node.op) {
    case Op::literal: return borrow(node.literal);
    case Op::path: return borrow(walk(node, vars));
    case Op::not_: return make(!truthy(arg(0).get()));
    case Op::and_:
      for (int operand : node.args)
        if (!truthy(eval(program, operand, vars).get())) return make(false);
      return make(true);
    case Op::or_:
      for (int operand : node.args)
        if (truthy(eval(program, operand, vars).get())) return make(true);
      return make(false);
    default: break;
  }
  // The rest take exactly the operands the parser checked for.
  Value a = arg(0);
  if (node.op == Op::size) return make(size_of(a.get()));
  Value b = arg(1);
  const json& x = a.get();
  const json& y = b.get();
  switch (node.op) {
    case Op::eq: return make(equal(x, y));
    case Op::ne: return make(!equal(x, y));
    case Op::lt: return make(compare(x, y) < 0);
    case Op::le: return make(compare(x, y) <= 0);
    case Op::gt: return make(compare(x, y) > 0);
    case Op::ge: return make(compare(x, y) >= 0);
    case Op::in: return make(contained(x, y));
    case Op::contains: return make(contained(y, x));
    case Op::starts_with: return make(starts_with(x, y));
    case Op::ends_with: return make(ends_with(x, y));
    default: return make(nullptr);  // unreachable: every op is handled above
  }
}

}  // namespace

Expression Expression::parse(std::string_view text) {
  if (text.size() > kMaxLength)
    throw ExpressionError(static_cast<int>(kMaxLength) + 1,
                          fmt::format("the expression is {} bytes long; the limit is {}", text.size(), kMaxLength));
  auto program = std::make_shared<ExpressionProgram>();
  program->text = std::string(text);
  // The tokens refer into program->text, which outlives the parser.
  program->root = Parser(program->text, program->nodes).parse();
  return Expression(std::move(program));
}

json Expression::evaluate(const Bindings& vars) const { return eval(*program_, program_->root, vars).get(); }

bool Expression::matches(const Bindings& vars) const { return truthy(eval(*program_, program_->root, vars).get()); }

const std::string& Expression::text() const { return program_->text; }

}  // namespace durable
