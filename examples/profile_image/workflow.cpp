#include "workflow.hpp"

#include "image_pipeline.hpp"

void add_profile_image_function(durable::Engine& engine, ProfileImageSettings settings) {
  engine.function(
      {.id = "process-profile-image", .retries = 3},
      durable::on_event("image/profile.uploaded"),
      [s = std::move(settings)](durable::Context& ctx) {
        auto user_id = ctx.event.data.at("userId").get<std::string>();
        auto image = ctx.event.data.at("image").get<std::string>();

        // Each step runs once; after a crash or a restart its recorded result is used.
        auto thumbnails = ctx.step.run("resize-images", [&] {
          return make_thumbnails(image, s.work_dir, user_id, {512, 128, 64});
        });
        auto urls = ctx.step.run("upload", [&] { return publish(thumbnails, s.public_dir, s.base_url, user_id); });

        // Durable: no thread waits, and the deadline survives restarts.
        ctx.step.sleep("cool-down", s.cool_down);

        ctx.step.run("update-database", [&] { save_avatar_urls(s.app_db, user_id, urls); });
        return nlohmann::json{{"userId", user_id}, {"urls", urls}};
      });
}
