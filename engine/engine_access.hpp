// What the test kit (durable/testing.hpp) reaches inside an Engine: its store, to read
// journals, and its step mocks. Engine names this class its friend; nothing else uses it.
#pragma once

#include <durable/engine.hpp>

#include "engine/exec/step_mocks.hpp"
#include "engine/store/store.hpp"

namespace durable {

class EngineAccess {
 public:
  static Store& store(Engine& engine);
  static StepMocks& mocks(Engine& engine);
};

}  // namespace durable
