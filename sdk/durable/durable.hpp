// durable: durable-execution workflows for C++. Include this one header.
#pragma once

#include <durable/client.hpp>
#include <durable/clock.hpp>
#include <durable/context.hpp>
#include <durable/engine.hpp>
#include <durable/errors.hpp>
#include <durable/event.hpp>
#include <durable/function.hpp>
#include <durable/run.hpp>
#include <durable/step.hpp>
