// The Context a function receives: the event that started the run, the run's identity, and
// `step`, through which every durable action is taken.
//
//   engine.function({.id = "greet"}, durable::on_event("user/signed.up"),
//                   [](durable::Context& ctx) {
//     auto name = ctx.event.data.at("name").get<std::string>();
//     ctx.step.run("send-welcome", [&] { send_mail(name); });
//   });
#pragma once

#include <string>

#include <durable/event.hpp>
#include <durable/runtime.hpp>
#include <durable/step.hpp>

namespace durable {

struct Context {
  Context(Runtime& runtime, Event event, std::string event_id, std::string run_id,
          std::string function_id, int attempt)
      : event(std::move(event)),
        event_id(std::move(event_id)),
        run_id(std::move(run_id)),
        function_id(std::move(function_id)),
        attempt(attempt),
        step(runtime) {}

  Event event;              // the event that started this run
  std::string event_id;     // the id the engine gave that event (what send() returned)
  std::string run_id;       // this run
  std::string function_id;  // the function this run belongs to
  int attempt;              // 0 on the first try; n when retrying a step (or the body) for the nth time
  Step step;                // run steps and sleeps through this
};

}  // namespace durable
