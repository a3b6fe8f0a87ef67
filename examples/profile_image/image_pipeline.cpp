#include "image_pipeline.hpp"

#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>
#include <sqlite3.h>
#include <stb_image.h>
#include <stb_image_resize.h>
#include <webp/encode.h>

namespace fs = std::filesystem;

void to_json(nlohmann::json& j, const Thumbnail& t) {
  j = {{"size", t.size}, {"path", t.path}, {"bytes", t.bytes}};
}

void from_json(const nlohmann::json& j, Thumbnail& t) {
  t.size = j.at("size").get<int>();
  t.path = j.at("path").get<std::string>();
  t.bytes = j.at("bytes").get<size_t>();
}

std::vector<Thumbnail> make_thumbnails(const std::string& source, const std::string& out_dir,
                                       const std::string& user_id, const std::vector<int>& sizes) {
  int width = 0, height = 0, channels = 0;
  std::unique_ptr<unsigned char, void (*)(void*)> pixels(stbi_load(source.c_str(), &width, &height, &channels, 3),
                                                         stbi_image_free);
  if (!pixels) throw std::runtime_error(fmt::format("cannot read image '{}': {}", source, stbi_failure_reason()));

  // Centre square crop: avatars are square, and resizing a crop keeps the aspect ratio.
  int side = std::min(width, height);
  const unsigned char* crop = pixels.get() + ((height - side) / 2 * width + (width - side) / 2) * 3;

  fs::create_directories(out_dir);
  std::vector<Thumbnail> out;
  for (int size : sizes) {
    std::vector<unsigned char> resized(static_cast<size_t>(size) * size * 3);
    if (!stbir_resize_uint8_srgb(crop, side, side, width * 3, resized.data(), size, size, 0, 3,
                                 STBIR_ALPHA_CHANNEL_NONE, 0)) {
      throw std::runtime_error(fmt::format("cannot resize '{}' to {}x{}", source, size, size));
    }
    uint8_t* webp = nullptr;
    size_t bytes = WebPEncodeRGB(resized.data(), size, size, size * 3, 80.0f, &webp);
    if (bytes == 0) throw std::runtime_error(fmt::format("cannot encode {}x{} WebP", size, size));
    std::unique_ptr<uint8_t, void (*)(void*)> webp_owner(webp, WebPFree);

    std::string path = (fs::path(out_dir) / fmt::format("{}-{}.webp", user_id, size)).string();
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file.write(reinterpret_cast<const char*>(webp), static_cast<std::streamsize>(bytes));
    if (!file) throw std::runtime_error(fmt::format("cannot write '{}'", path));
    out.push_back(Thumbnail{size, path, bytes});
  }
  return out;
}

nlohmann::json publish(const std::vector<Thumbnail>& thumbnails, const std::string& public_dir,
                       const std::string& base_url, const std::string& user_id) {
  fs::path dir = fs::path(public_dir) / "avatars" / user_id;
  fs::create_directories(dir);
  nlohmann::json urls = nlohmann::json::object();
  for (const Thumbnail& t : thumbnails) {
    std::string name = fmt::format("{}.webp", t.size);
    fs::copy_file(t.path, dir / name, fs::copy_options::overwrite_existing);
    urls[std::to_string(t.size)] = fmt::format("{}/avatars/{}/{}", base_url, user_id, name);
  }
  return urls;
}

void save_avatar_urls(const std::string& app_db, const std::string& user_id, const nlohmann::json& urls) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open(app_db.c_str(), &raw);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close);
  auto fail = [&](const char* what) {
    return std::runtime_error(fmt::format("{} in '{}': {}", what, app_db, sqlite3_errmsg(db.get())));
  };
  if (rc != SQLITE_OK) throw fail("cannot open the application database");
  sqlite3_busy_timeout(db.get(), 5000);
  const char* create =
      "CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, avatar_512 TEXT, avatar_128 TEXT, "
      "avatar_64 TEXT, updated_at TEXT NOT NULL)";
  if (sqlite3_exec(db.get(), create, nullptr, nullptr, nullptr) != SQLITE_OK) throw fail("cannot create users");

  sqlite3_stmt* raw_stmt = nullptr;
  const char* upsert =
      "INSERT INTO users (id, avatar_512, avatar_128, avatar_64, updated_at) "
      "VALUES (?, ?, ?, ?, datetime('now')) ON CONFLICT (id) DO UPDATE SET "
      "avatar_512 = excluded.avatar_512, avatar_128 = excluded.avatar_128, "
      "avatar_64 = excluded.avatar_64, updated_at = excluded.updated_at";
  if (sqlite3_prepare_v2(db.get(), upsert, -1, &raw_stmt, nullptr) != SQLITE_OK) throw fail("cannot prepare");
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw_stmt, sqlite3_finalize);
  std::string u512 = urls.value("512", ""), u128 = urls.value("128", ""), u64 = urls.value("64", "");
  sqlite3_bind_text(stmt.get(), 1, user_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(stmt.get(), 2, u512.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(stmt.get(), 3, u128.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(stmt.get(), 4, u64.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) throw fail("cannot save the avatar URLs");
}
