// libFuzzer target for expressions: any bytes are parsed, and whatever parses is evaluated
// against a fixed event. Parsing may only throw ExpressionError, naming a column inside the
// text (or just past it); evaluation may not throw at all. Run by scripts/fuzz.sh.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/events/expression.hpp"

namespace {

const nlohmann::json kEvent = nlohmann::json::parse(R"({
  "name": "order/created", "ts": 1893456000000,
  "data": {"amount": 150, "price": 99.5, "big": 18446744073709551615, "neg": -3, "currency": "EUR",
           "tags": ["vip", "new"], "items": [{"sku": "A-1", "qty": 2}], "odd key": "", "none": null,
           "flag": true, "nested": {"in": {"x": [1, [2, [3]]]}}}
})");
const nlohmann::json kAsync = nlohmann::json::parse(R"({"name": "order/paid", "data": {"amount": "150"}})");

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto expression = durable::Expression::parse(text);
    if (expression.text() != text) std::abort();
    durable::Bindings vars{{"event", &kEvent}, {"async", &kAsync}};
    nlohmann::json value = expression.evaluate(vars);
    bool matched = expression.matches(vars);
    (void)value;
    (void)matched;
  } catch (const durable::ExpressionError& e) {
    if (e.column() < 1 || static_cast<size_t>(e.column()) > std::max(text.size(), durable::Expression::kMaxLength) + 1)
      std::abort();
  }
  return 0;
}
