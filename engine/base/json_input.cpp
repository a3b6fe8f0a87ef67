#include "engine/base/json_input.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/base/printable.hpp"

namespace durable {

namespace {

using nlohmann::json;

// Builds the value from nlohmann's SAX events, as its own DOM parser does, and keeps what a
// message needs to name a place: the open objects and arrays, and in each object the member
// being parsed. nlohmann's parser keeps its own state on the heap, so the only recursion left
// would be ours, and there is none.
class Builder final : public nlohmann::json_sax<json> {
 public:
  Builder(std::string_view text, std::string_view what, int max_depth) : text_(text), what_(what), max_depth_(max_depth) {}

  json take() { return std::move(root_); }

  bool null() override { return add(nullptr); }
  bool boolean(bool value) override { return add(value); }
  bool number_integer(number_integer_t value) override { return add(value); }
  bool number_unsigned(number_unsigned_t value) override { return add(value); }
  bool number_float(number_float_t value, const string_t&) override { return add(value); }
  bool string(string_t& value) override { return add(std::move(value)); }
  bool binary(binary_t& value) override { return add(json::binary(std::move(value))); }  // not in JSON text

  bool start_object(std::size_t) override { return open(json::object()); }
  bool start_array(std::size_t) override { return open(json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& name) override {
    // Invariant: only the innermost open container receives members, so the slot stays put
    // (objects are maps: inserting elsewhere would not move it anyway).
    Level& level = levels_.back();
    level.member = &(*level.container)[std::move(name)];
    return true;
  }

  bool parse_error(std::size_t position, const std::string& last_token, const json::exception& e) override {
    if (e.id == 406) {
      // nlohmann's "number overflow": the token is a number a double cannot hold. Its value is
      // not built yet, so the path ends at the place it was going.
      std::string where = path();
      std::string field = where.empty() ? std::string(what_) : fmt::format("\"{}\" in {}", printable(where, 100), what_);
      throw RequestError(400, fmt::format("{}: the number {} is out of range", field, printable(last_token, 40)));
    }
    // nlohmann's message reads "[json.exception.parse_error.101] parse error at line 1,
    // column 2: syntax error while parsing ..."; keep what follows the place, which is given
    // here as the line and column of the byte that broke the syntax (nlohmann counts a
    // newline read after a bad literal as the start of the next line, at column 0).
    std::string message = e.what();
    if (size_t at = message.find("parse error"); at != std::string::npos) {
      if (size_t colon = message.find(": ", at); colon != std::string::npos) message.erase(0, colon + 2);
    }
    size_t at = std::min(position == 0 ? 0 : position - 1, text_.size());  // `position` counts that byte
    size_t line = 1, column = 1;
    for (size_t i = 0; i < at; ++i) {
      column = text_[i] == '\n' ? 1 : column + 1;
      line += text_[i] == '\n';
    }
    // Its "last read" quotes the input: a long token (an unterminated string) is cut short.
    throw RequestError(400, fmt::format("{} is not valid JSON at line {}, column {}: {}", what_, line, column,
                                        printable(message, 300)));
  }

 private:
  struct Level {
    json* container;          // an object or array being built
    json* member = nullptr;   // objects: the slot of the member being parsed
  };

  // Puts `value` where the parser is: the root, the next element of the innermost array, or
  // the member of the innermost object whose key came last.
  json* place(json value) {
    if (levels_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    Level& level = levels_.back();
    if (level.container->is_array()) {
      level.container->push_back(std::move(value));
      return &level.container->back();
    }
    *level.member = std::move(value);
    return level.member;
  }

  bool add(json value) {
    place(std::move(value));
    return true;
  }

  bool open(json empty) {
    if (levels_.size() >= static_cast<size_t>(max_depth_)) {
      // Refused before it is built: nothing deeper than max_depth ever exists.
      std::string where = path();
      throw RequestError(400, fmt::format("{} is nested more than {} levels deep{}", what_, max_depth_,
                                          where.empty() ? "" : fmt::format(" (at \"{}\")", printable(where, 60))));
    }
    levels_.push_back(Level{place(std::move(empty))});
    return true;
  }

  bool close() {
    levels_.pop_back();
    return true;
  }

  // Where the parser is, as `data.items[3].qty`: the keys and indexes of the open containers,
  // ending with the place of the value being parsed. Only built for a message.
  std::string path() const {
    std::string out;
    for (size_t i = 0; i < levels_.size(); ++i) {
      const json& container = *levels_[i].container;
      if (container.is_array()) {
        // An enclosing array holds the open container as its last element; the innermost
        // one has not received the value being parsed yet.
        size_t index = i + 1 < levels_.size() ? container.size() - 1 : container.size();
        out += fmt::format("[{}]", index);
        continue;
      }
      for (auto it = container.begin(); it != container.end(); ++it) {
        if (&*it != levels_[i].member) continue;
        if (!out.empty()) out += '.';
        out += it.key();
        break;
      }
    }
    return out;
  }

  std::string_view text_;
  std::string_view what_;
  int max_depth_;
  json root_;
  std::vector<Level> levels_;  // the open containers, outermost first
};

}  // namespace

json parse_json_input(std::string_view text, std::string_view what, int max_depth) {
  Builder builder(text, what, max_depth);
  // Every refusal throws from inside the builder, which never answers false.
  bool parsed = json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json, /*strict=*/true);
  if (!parsed) throw RequestError(400, fmt::format("{} is not valid JSON", what));
  return builder.take();
}

std::optional<int64_t> json_int64(const nlohmann::json& value) {
  if (value.is_number_unsigned()) {
    auto n = value.get<uint64_t>();
    if (n > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(n);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return std::nullopt;
}

}  // namespace durable
