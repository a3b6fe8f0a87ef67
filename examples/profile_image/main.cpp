// The profile-image pipeline, served over HTTP: when a user uploads a profile picture, make
// 512, 128 and 64 pixel WebP thumbnails, publish them, wait a moment, and record their URLs
// in the application's database (the workflow is in workflow.cpp). Each step is durable: kill
// the process at any point, start it again, and the run goes on from the last finished step.
//
//   ./profile_image [--port 8288] [--database profile_image.db] [--app-db app.db]
//                   [--out profile_image_out] [--cool-down-seconds 10]
//
// Then send an event (the program prints this line with the right path and key):
//   curl -d '{"name":"image/profile.uploaded","data":{"userId":"u_1","image":"<path>"}}' \
//        http://127.0.0.1:8288/e/<key>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include <fmt/format.h>

#include <durable/durable.hpp>

#include "../common/env.hpp"
#include "workflow.hpp"

namespace {

struct Config {
  int port = 8288;
  std::string database = "profile_image.db";
  std::string app_db = "app.db";
  std::string out = "profile_image_out";
  int cool_down_seconds = 10;
};

Config parse_args(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << "usage: profile_image [--port N] [--database FILE] [--app-db FILE] [--out DIR] "
                   "[--cool-down-seconds N]\n";
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::cerr << "profile_image: " << flag << " needs a value (see --help)\n";
      std::exit(2);
    }
    std::string value = argv[++i];
    try {
      if (flag == "--port") c.port = std::stoi(value);
      else if (flag == "--database") c.database = value;
      else if (flag == "--app-db") c.app_db = value;
      else if (flag == "--out") c.out = value;
      else if (flag == "--cool-down-seconds") c.cool_down_seconds = std::stoi(value);
      else {
        std::cerr << "profile_image: unknown option " << flag << " (see --help)\n";
        std::exit(2);
      }
    } catch (const std::exception&) {
      std::cerr << "profile_image: " << flag << " needs a number, not '" << value << "'\n";
      std::exit(2);
    }
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  Config config = parse_args(argc, argv);
  std::string out_dir = std::filesystem::absolute(config.out).string();
  std::string public_dir = out_dir + "/public";

  try {
    durable::Engine engine({.database = config.database});
    add_profile_image_function(engine, {.work_dir = out_dir + "/work",
                                        .public_dir = public_dir,
                                        .base_url = "file://" + public_dir,
                                        .app_db = config.app_db,
                                        .cool_down = std::chrono::seconds(config.cool_down_seconds)});

    // Local development keys unless the environment sets real ones.
    using examples::env_or;
    std::string key = env_or("DURABLE_EVENT_KEY", "local-dev-key");
    std::string api_key = env_or("DURABLE_API_KEY", "local-dev-api-key");
    std::string sample = DURABLE_SAMPLE_IMAGE;  // the picture that ships with the example
    std::cout << fmt::format(
                     "\nprofile_image: send an event with\n\n"
                     "  curl -d '{{\"name\":\"image/profile.uploaded\",\"data\":{{\"userId\":\"u_1\",\"image\":\"{}\"}}}}' "
                     "http://127.0.0.1:{}/e/{}\n\n"
                     "and watch its run with the CLI (docs/cli.md):\n\n"
                     "  DURABLE_API_KEY={} build/durable --url http://127.0.0.1:{} runs\n\n"
                     "thumbnails go to {}; URLs to the users table of {}. Ctrl-C stops.\n",
                     sample, config.port, key, api_key, config.port, public_dir, config.app_db)
              << std::flush;
    return engine.serve({.port = config.port, .event_keys = {key}, .api_keys = {api_key}});
  } catch (const std::exception& e) {
    std::cerr << "profile_image: " << e.what() << "\n";
    return 1;
  }
}
