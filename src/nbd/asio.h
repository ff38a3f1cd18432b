// The one way this project includes Boost.Asio.
//
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>, so that
// header must come first. Include this file, never <boost/asio.hpp> directly.
#pragma once

#include <utility>

#include <boost/asio.hpp>
