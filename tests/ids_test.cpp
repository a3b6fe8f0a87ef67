// Ids: 26-character ULIDs that sort by creation time, even within one millisecond.
#include <set>

#include <doctest/doctest.h>

#include "engine/base/ids.hpp"

using namespace durable;

TEST_SUITE("ids") {
  TEST_CASE("ids made in the same millisecond are unique and increasing; later milliseconds sort after") {
    IdGenerator ids;
    const TimePoint t = from_millis(1893456000000);
    std::string previous;
    std::set<std::string> seen;
    for (int i = 0; i < 5000; ++i) {
      std::string id = ids.next(t);
      CHECK(id.size() == 26);
      CHECK(id > previous);
      previous = id;
      seen.insert(id);
    }
    CHECK(seen.size() == 5000);
    CHECK(ids.next(t + std::chrono::milliseconds(1)) > previous);
    // A clock that goes back does not make ids go back.
    CHECK(ids.next(t - std::chrono::hours(1)) > previous);
    // The time prefix encodes the millisecond: two generators agree on the order across ms.
    IdGenerator other;
    CHECK(other.next(t + std::chrono::milliseconds(5)).substr(0, 10) > ids.next(t + std::chrono::milliseconds(1)).substr(0, 10));
  }
}
