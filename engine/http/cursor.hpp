// Page cursors: the `cursor` of a listing (GET /v1/runs, GET /v1/events) and of a bulk
// action's body. A cursor is the id of the last item of the page before (that page's
// `next_cursor`); the store compares it with ids in SQL, so anything that is not an id is
// refused here rather than turned into an odd page.
//
//   std::string before = decode_cursor("cursor", query(req, "cursor"));  // "" for the first page
#pragma once

#include <string>
#include <string_view>

namespace durable {

// The id `text` holds, or "" when `text` is empty (the first page). Throws RequestError(400),
// naming `parameter`, unless `text` is an id as engine/base/ids.hpp spells them (decode_id).
std::string decode_cursor(std::string_view parameter, std::string_view text);

}  // namespace durable
