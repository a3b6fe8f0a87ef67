// Content codings of HTTP bodies (RFC 9110, 8.4): request bodies sent gzip- or
// deflate-compressed are inflated under a size limit, and answers are gzip-compressed for
// clients that accept it. zlib does the work.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace durable {

// Undoes the `content_encoding` of a request body ("", "identity", "gzip", "x-gzip" or
// "deflate"; case-insensitive). Throws RequestError: 413 as soon as the inflated size passes
// `limit` (the memory it costs is bounded by the limit, whatever the compression ratio), 400
// for a body that is not what its coding says, 415 for any other coding.
std::string decode_body(std::string body, std::string_view content_encoding, size_t limit);

// Whether an Accept-Encoding header value accepts gzip (not with q=0).
bool accepts_gzip(std::string_view accept_encoding);

// `text` in the gzip format, compressed fast (zlib level 1: a 300 KB answer takes a few ms).
std::string gzip(std::string_view text);

}  // namespace durable
