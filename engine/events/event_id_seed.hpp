// Event ids from the x-inngest-event-id-seed header that Inngest's SDKs send with every
// POST /e/{key}: "<millis>,<entropy>", the milliseconds since the Unix epoch when send() was
// called and 10 random bytes in standard, padded base64 (e.g. "1743130137367,eii2YKXRVTJPuA==").
// An SDK keeps the header of a send() across its retries, so the ids derived from it let a
// retried request be recognised as the one already accepted.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace durable {

// Event ids derived from an inngest SDK's x-inngest-event-id-seed header, one per event of
// the request, in order: the same header always gives the same ids, so a retried send is
// recognised. nullopt when the header is malformed (the caller then assigns fresh ids).
//
// Each id is a ULID (as engine/base/ids.hpp spells them) whose timestamp is the header's millis and
// whose 80-bit random part is the header's entropy with the event's 1-based position in the
// request added to its last 32 bits (big-endian, wrapping): the ids Inngest's own server gives.
// Malformed: not exactly one comma, millis not a decimal integer in 1..2^48-1, entropy not
// standard padded base64 of exactly 10 bytes.
std::optional<std::vector<std::string>> event_ids_from_seed(std::string_view header, size_t count);

}  // namespace durable
