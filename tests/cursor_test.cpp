// Page cursors (engine/http/cursor.hpp) and the id decoding under them (decode_id, engine/base/ids.hpp):
// exactly the ids encode_id writes are accepted, as the bytes they spell; anything else is a
// 400 naming the parameter.
#include <array>
#include <string>

#include <doctest/doctest.h>

#include "engine/base/ids.hpp"
#include "engine/base/request_error.hpp"
#include "engine/http/cursor.hpp"

using namespace durable;

TEST_SUITE("cursor") {
  TEST_CASE("every id encode_id writes decodes to its bytes") {
    std::array<uint8_t, 16> zero{}, ones{}, mixed{};
    ones.fill(0xff);
    for (size_t i = 0; i < mixed.size(); ++i) mixed[i] = static_cast<uint8_t>(i * 37 + 11);
    for (const auto& bytes : {zero, ones, mixed}) {
      std::string id = encode_id(bytes);
      CAPTURE(id);
      REQUIRE(decode_id(id));
      CHECK(*decode_id(id) == bytes);
    }
    CHECK(encode_id(ones) == "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    IdGenerator ids;
    for (int i = 0; i < 100; ++i) {
      std::string id = ids.next(from_millis(1893456000000 + i));
      CHECK(decode_id(id));
      CHECK(encode_id(*decode_id(id)) == id);
    }
  }

  TEST_CASE("anything but an id as encode_id spells it is not decoded") {
    std::string id = encode_id({});
    for (std::string bad : {std::string(""), id.substr(1), id + "0", std::string("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"),
                            std::string("01jqdae4rqf8mbcr55t5ak4kxs"),  // lower case
                            std::string("01JQDAE4RQF8MBCR55T5AK4KXI"), std::string("01JQDAE4RQF8MBCR55T5AK4KXL"),
                            std::string("01JQDAE4RQF8MBCR55T5AK4KXO"), std::string("01JQDAE4RQF8MBCR55T5AK4KXU"),
                            std::string("01JQDAE4RQF8MBCR55T5AK4KX-"), std::string("' OR 1=1 --0123456789ABCD"),
                            std::string("01JQDAE4RQF8MBCR55T5AK4KX\0", 26)}) {
      CAPTURE(bad);
      CHECK_FALSE(decode_id(bad));
    }
  }

  TEST_CASE("a cursor is empty (the first page) or an id; anything else is a 400 naming the parameter") {
    CHECK(decode_cursor("cursor", "") == "");
    CHECK(decode_cursor("cursor", "01JQDAE4RQF8MBCR55T5AK4KXS") == "01JQDAE4RQF8MBCR55T5AK4KXS");
    try {
      decode_cursor("cursor", "zzz\xff");
      FAIL("a malformed cursor was accepted");
    } catch (const RequestError& e) {
      CHECK(e.status() == 400);
      CHECK(std::string(e.what()) ==
            R"("cursor" must be the next_cursor of an earlier page (a 26-character id), not 'zzz\xff')");
    }
  }
}
