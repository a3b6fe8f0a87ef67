// The profile-image workflow: when a user uploads a profile picture, make 512, 128 and 64
// pixel WebP thumbnails, publish them, wait a moment, and record their URLs in the
// application's database. main.cpp serves it; tests/profile_image_test.cpp runs it.
#pragma once

#include <chrono>
#include <string>

#include <durable/durable.hpp>

struct ProfileImageSettings {
  std::string work_dir;     // where thumbnails are made
  std::string public_dir;   // where they are published (our stand-in for an object store)
  std::string base_url;     // the public URL of public_dir
  std::string app_db;       // the application's SQLite database, with its users table
  std::chrono::seconds cool_down{10};
};

// Registers "process-profile-image", triggered by "image/profile.uploaded" events whose data
// is {"userId": "...", "image": "<path of the uploaded picture>"}.
void add_profile_image_function(durable::Engine& engine, ProfileImageSettings settings);
