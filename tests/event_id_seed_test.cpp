// Event ids from an inngest SDK's x-inngest-event-id-seed header ("<millis>,<base64 of 10
// bytes>"): the same header gives the same ids, every event of a request its own, and a
// malformed header none.
#include <set>

#include <doctest/doctest.h>

#include "engine/base/ids.hpp"
#include "engine/events/event_id_seed.hpp"

using namespace durable;

namespace {

// The example from Inngest's own documentation of the header.
constexpr std::string_view kSeed = "1743130137367,eii2YKXRVTJPuA==";

}  // namespace

TEST_SUITE("event_id_seed") {
  TEST_CASE("the same seed header gives the same ids, one per event, in order") {
    auto first = event_ids_from_seed(kSeed, 3);
    auto again = event_ids_from_seed(kSeed, 3);
    REQUIRE(first);
    REQUIRE(again);
    CHECK(first->size() == 3);
    CHECK(*first == *again);
    // A request of fewer events gets the first of the same ids: event i's id depends on i only.
    CHECK(*event_ids_from_seed(kSeed, 1) == std::vector<std::string>{(*first)[0]});
  }

  TEST_CASE("seeded ids are the ULIDs Inngest's server derives: seed millis, then the entropy plus the 1-based index") {
    // Expected values computed apart from this code: the ulid npm package's encodeTime for the
    // timestamp, and the entropy with index added to its last 32 bits, in base 32.
    CHECK(*event_ids_from_seed(kSeed, 2) ==
          std::vector<std::string>{"01JQDAE4RQF8MBCR55T5AK4KXS", "01JQDAE4RQF8MBCR55T5AK4KXT"});
    CHECK(*event_ids_from_seed("1,AAAAAAAAAAAAAA==", 2) ==
          std::vector<std::string>{"00000000010000000000000001", "00000000010000000000000002"});
    // Adding the index wraps within the last 32 bits and leaves the bits before them alone.
    CHECK(*event_ids_from_seed("1743130137367,/////////////w==", 2) ==
          std::vector<std::string>{"01JQDAE4RQZZZZZZZZZW000000", "01JQDAE4RQZZZZZZZZZW000001"});
  }

  TEST_CASE("every event of a request gets its own id, and different seeds give different ids") {
    auto ids = event_ids_from_seed(kSeed, 1000);
    REQUIRE(ids);
    std::set<std::string> unique(ids->begin(), ids->end());
    CHECK(unique.size() == 1000);
    for (const auto& id : *ids) CHECK(id.size() == 26);

    auto other_entropy = event_ids_from_seed("1743130137367,eii2YKXRVTJPuQ==", 1);
    auto other_millis = event_ids_from_seed("1743130137368,eii2YKXRVTJPuA==", 1);
    REQUIRE(other_entropy);
    REQUIRE(other_millis);
    CHECK((*other_entropy)[0] != (*ids)[0]);
    CHECK((*other_millis)[0] != (*ids)[0]);
  }

  TEST_CASE("the time part of a seeded id is the seed's millis") {
    auto ids = event_ids_from_seed(kSeed, 2);
    REQUIRE(ids);
    // id_floor spells a millisecond with the random part zero: the first 10 characters (50
    // bits, of which the top 2 are zero) are the 48-bit timestamp.
    std::string floor = id_floor(from_millis(1743130137367));
    for (const auto& id : *ids) CHECK(id.substr(0, 10) == floor.substr(0, 10));
    CHECK(event_ids_from_seed("281474976710655,AAAAAAAAAAAAAA==", 1)->at(0).substr(0, 10) == "7ZZZZZZZZZ");  // 2^48-1
  }

  TEST_CASE("a malformed seed header gives nullopt") {
    for (std::string_view bad : {
             "",                                     // empty
             "1743130137367",                        // no comma
             "1743130137367eii2YKXRVTJPuA==",        // no comma
             "1743130137367,eii2YKXRVTJPuA==,1",     // two commas
             ",eii2YKXRVTJPuA==",                    // no millis
             "abc,eii2YKXRVTJPuA==",                 // millis not a number
             "17431x0137367,eii2YKXRVTJPuA==",       // millis not a number
             "-1743130137367,eii2YKXRVTJPuA==",      // negative
             "+1743130137367,eii2YKXRVTJPuA==",      // signed
             " 1743130137367,eii2YKXRVTJPuA==",      // spaces
             "0,eii2YKXRVTJPuA==",                   // millis must be positive
             "281474976710656,eii2YKXRVTJPuA==",     // 2^48: does not fit a ULID
             "99999999999999999999999,eii2YKXRVTJPuA==",  // overflows
             "1743130137367,",                       // no entropy
             "1743130137367,eii2YKXRVTJPuA",         // unpadded
             "1743130137367,eii2YKXRVTJPuA=",        // badly padded
             "1743130137367,eii2YKXRVTJP!A==",       // not base64
             "1743130137367,eii2YKXRVTJPuA-_",       // URL-safe alphabet
             "1743130137367,eii2YKXRVTJP",           // 9 bytes
             "1743130137367,eii2YKXRVTJPuA==AA==",   // too long: padding in the middle
             "1743130137367,eii2YKXRVTJPuAAA",       // 12 bytes
             "1743130137367,=ii2YKXRVTJPuA==",       // padding first
         }) {
      CHECK_MESSAGE(!event_ids_from_seed(bad, 1), "accepted: '", std::string(bad), "'");
    }
  }

  TEST_CASE("count 0 gives no ids for a valid seed, and still nullopt for a malformed one") {
    auto none = event_ids_from_seed(kSeed, 0);
    REQUIRE(none);
    CHECK(none->empty());
    CHECK(!event_ids_from_seed("nonsense", 0));
  }
}
