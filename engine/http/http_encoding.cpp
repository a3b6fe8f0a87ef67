#include "engine/http/http_encoding.hpp"

#include <zlib.h>

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "engine/base/request_error.hpp"

namespace durable {

namespace {

std::string lower_trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Inflates zlib- or gzip-wrapped data (windowBits 15 + 32 detects which), member after member
// for concatenated gzip members, stopping at `limit` bytes of output.
std::string inflate_limited(std::string_view in, size_t limit) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 32) != Z_OK) throw RequestError(500, "cannot start zlib");
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char chunk[64 * 1024];
  int rc = Z_OK;
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof(chunk);
    rc = inflate(&z, Z_NO_FLUSH);
    size_t produced = sizeof(chunk) - z.avail_out;
    if (out.size() + produced > limit) {
      inflateEnd(&z);
      throw RequestError(413, fmt::format("the request's body inflates to more than the limit of {} bytes", limit));
    }
    out.append(chunk, produced);
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      inflateReset(&z);  // another gzip member follows
      continue;
    }
    if (rc != Z_OK || (z.avail_in == 0 && produced == 0)) {
      inflateEnd(&z);
      throw RequestError(400, "the request's body is not valid for its Content-Encoding (truncated or corrupt)");
    }
  }
  inflateEnd(&z);
  return out;
}

}  // namespace

std::string decode_body(std::string body, std::string_view content_encoding, size_t limit) {
  std::string coding = lower_trimmed(content_encoding);
  if (coding.empty() || coding == "identity") return body;
  if (coding == "gzip" || coding == "x-gzip" || coding == "deflate") return inflate_limited(body, limit);
  throw RequestError(415, fmt::format("unsupported Content-Encoding '{}': send the body as it is, or gzip or deflate it",
                                      coding.substr(0, 64)));
}

bool accepts_gzip(std::string_view accept_encoding) {
  size_t at = 0;
  while (at < accept_encoding.size()) {
    size_t comma = std::min(accept_encoding.find(',', at), accept_encoding.size());
    std::string_view item = accept_encoding.substr(at, comma - at);
    size_t semi = std::min(item.find(';'), item.size());
    std::string name = lower_trimmed(item.substr(0, semi));
    if (name == "gzip" || name == "x-gzip" || name == "*") {
      std::string params = lower_trimmed(semi < item.size() ? item.substr(semi + 1) : "");
      params.erase(std::remove(params.begin(), params.end(), ' '), params.end());
      bool refused = params.starts_with("q=0") && params.find_first_not_of("q=0.", 0) == std::string::npos;
      if (!refused) return true;
    }
    at = comma + 1;
  }
  return false;
}

std::string gzip(std::string_view text) {
  z_stream z{};
  // 15 + 16: a gzip header and trailer around the deflate stream.
  if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out;
  out.resize(deflateBound(&z, static_cast<uLong>(text.size())));
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? out : std::string();
}

}  // namespace durable
