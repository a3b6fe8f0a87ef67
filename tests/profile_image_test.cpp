// The profile-image example does real work: decode the sample, write 512, 128 and 64 pixel
// WebP files, publish them, and record their URLs in the application database. Its whole
// workflow also runs here on an engine, through its sleep.
#include <sqlite3.h>
#include <webp/decode.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <doctest/doctest.h>

#include "examples/profile_image/image_pipeline.hpp"
#include "examples/profile_image/workflow.hpp"
#include "tests/testing.hpp"

using namespace durable;
using namespace durable::testing;
using namespace std::chrono_literals;

namespace {

// The width and height of the WebP file at `path`.
std::pair<int, int> webp_size(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int w = 0, h = 0;
  REQUIRE(WebPGetInfo(bytes.data(), bytes.size(), &w, &h));
  return {w, h};
}

std::string avatar_in(const std::string& app_db, const std::string& column, const std::string& user) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(app_db.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  std::string sql = "SELECT " + column + " FROM users WHERE id = ?";
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
  sqlite3_bind_text(s, 1, user.c_str(), -1, SQLITE_TRANSIENT);
  std::string value = sqlite3_step(s) == SQLITE_ROW ? reinterpret_cast<const char*>(sqlite3_column_text(s, 0)) : "";
  sqlite3_finalize(s);
  sqlite3_close(db);
  return value;
}

}  // namespace

TEST_SUITE("profile_image") {
  TEST_CASE("the sample becomes 512, 128 and 64 pixel WebP thumbnails") {
    TempDir dir;
    auto thumbnails = make_thumbnails(DURABLE_SOURCE_DIR "/examples/profile_image/sample.jpg", dir.file("work"), "u_1",
                                      {512, 128, 64});
    REQUIRE(thumbnails.size() == 3);
    for (const auto& t : thumbnails) {
      CHECK(webp_size(t.path) == std::pair{t.size, t.size});
      CHECK(std::filesystem::file_size(t.path) == t.bytes);
    }
    CHECK_THROWS_WITH_AS(make_thumbnails(dir.file("missing.jpg"), dir.file("work"), "u_1", {64}),
                         doctest::Contains("cannot read image"), std::runtime_error);
  }

  TEST_CASE("the workflow publishes the thumbnails and records their URLs, once, across a sleep") {
    TempDir dir;
    auto clock = std::make_shared<ManualClock>();
    Engine engine(engine_options(dir.file("engine.db"), clock));
    std::string app_db = dir.file("app.db");
    std::string public_dir = dir.file("public");
    add_profile_image_function(engine, {.work_dir = dir.file("work"),
                                        .public_dir = public_dir,
                                        .base_url = "https://cdn.test",
                                        .app_db = app_db,
                                        .cool_down = std::chrono::seconds(300)});
    engine.start();
    auto event_id = engine.send({.name = "image/profile.uploaded",
                                 .data = {{"userId", "u_7"}, {"image", DURABLE_SOURCE_DIR "/examples/profile_image/sample.jpg"}}});
    REQUIRE(engine.drain());
    CHECK(only_run(engine, event_id).status == RunStatus::sleeping);
    CHECK(std::filesystem::exists(public_dir + "/avatars/u_7/512.webp"));
    advance(engine, *clock, 5min);

    Run run = only_run(engine, event_id);
    REQUIRE(run.status == RunStatus::completed);
    CHECK(run.output["urls"]["64"] == "https://cdn.test/avatars/u_7/64.webp");
    CHECK(avatar_in(app_db, "avatar_512", "u_7") == "https://cdn.test/avatars/u_7/512.webp");
    CHECK(avatar_in(app_db, "avatar_128", "u_7") == "https://cdn.test/avatars/u_7/128.webp");
    auto journal = read_journal(dir.file("engine.db"), run.id);
    CHECK(entries_of(journal, JournalKind::step_completed).size() == 3);  // each step once
  }
}
