// libFuzzer target for the x-inngest-event-id-seed decoder (engine/events/event_id_seed.hpp): the
// first byte picks how many events the request holds (0-15), the rest is the header. A header
// gives nothing, or that many ids: distinct, the same for the same header, each an id as
// engine/base/ids.hpp spells them, with the header's millis as its time. Run by scripts/fuzz.sh.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "engine/base/ids.hpp"
#include "engine/events/event_id_seed.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t count = data[0] % 16;
  std::string_view header(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto ids = durable::event_ids_from_seed(header, count);
  if (!ids) return 0;
  if (ids->size() != count || durable::event_ids_from_seed(header, count) != ids) std::abort();
  std::set<std::string> distinct(ids->begin(), ids->end());
  if (distinct.size() != count) std::abort();
  uint64_t millis = std::stoull(std::string(header.substr(0, header.find(','))));
  for (const std::string& id : *ids) {
    auto bytes = durable::decode_id(id);
    if (!bytes) std::abort();
    uint64_t time = 0;
    for (int i = 0; i < 6; ++i) time = (time << 8) | (*bytes)[static_cast<size_t>(i)];
    if (time != millis || time == 0 || time > static_cast<uint64_t>(durable::kMaxIdMillis)) std::abort();
  }
  return 0;
}
