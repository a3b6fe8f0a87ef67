// The run cache hands back a suspended run's journal only if nobody held the run since.
#include <doctest/doctest.h>

#include "engine/exec/run_cache.hpp"

using namespace durable;

namespace {

CachedRun suspended_at(int64_t epoch, size_t payload_bytes = 10) {
  return CachedRun{epoch,
                   {JournalEntry{.seq = 0, .kind = JournalKind::run_started, .payload = std::string(payload_bytes, 'x')}},
                   std::make_shared<const Event>(Event{.name = "e"})};
}

}  // namespace

TEST_SUITE("run_cache") {
  TEST_CASE("a run claimed at the next epoch gets its cached journal back, once") {
    RunCache cache;
    cache.put("R1", suspended_at(3));
    auto hit = cache.take("R1", 4);
    REQUIRE(hit);
    CHECK(hit->journal.size() == 1);
    CHECK(hit->event->name == "e");
    CHECK_FALSE(cache.take("R1", 4));  // taken
  }

  TEST_CASE("a run another worker held in between is not served from the cache") {
    RunCache cache;
    cache.put("R1", suspended_at(3));
    CHECK_FALSE(cache.take("R1", 6));  // claimed (4), recovered or suspended elsewhere (5), claimed again (6)
    CHECK_FALSE(cache.take("R1", 4));  // and the stale entry is gone
  }

  TEST_CASE("the cache keeps to its size, dropping the oldest runs first") {
    RunCache cache(10'000);
    for (int i = 0; i < 100; ++i) cache.put("R" + std::to_string(i), suspended_at(1, 1000));
    CHECK_FALSE(cache.take("R0", 2));
    CHECK(cache.take("R99", 2));
  }
}
