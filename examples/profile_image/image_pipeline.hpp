// The real work behind the profile-image example, kept apart from the workflow so that
// main.cpp reads as the workflow alone. Every function here throws std::runtime_error with
// a message on failure; durable records it and retries the step.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

// One resized copy of the uploaded image.
struct Thumbnail {
  int size = 0;          // width and height in pixels (square)
  std::string path;      // where the WebP file was written
  size_t bytes = 0;      // its size
};
void to_json(nlohmann::json& j, const Thumbnail& t);
void from_json(const nlohmann::json& j, Thumbnail& t);

// Decodes `source` (JPEG, PNG, ...), crops it to a centred square, resizes it to each of
// `sizes` and writes `<out_dir>/<user_id>-<size>.webp` (WebP, quality 80).
std::vector<Thumbnail> make_thumbnails(const std::string& source, const std::string& out_dir,
                                       const std::string& user_id, const std::vector<int>& sizes);

// Copies the thumbnails into `public_dir/avatars/<user_id>/` (our stand-in for an object
// store) and returns their public URLs under `base_url`, keyed by size ("512", "128", "64").
nlohmann::json publish(const std::vector<Thumbnail>& thumbnails, const std::string& public_dir,
                       const std::string& base_url, const std::string& user_id);

// Records the avatar URLs of `user_id` in the `users` table of the application database at
// `app_db` (created if missing). Idempotent: a replay writes the same row again.
void save_avatar_urls(const std::string& app_db, const std::string& user_id, const nlohmann::json& urls);
