// The control protocol's version (docs/control-protocol.md), shared by the daemon's
// ControlServer and snapshotctl without pulling in either side.
#pragma once

namespace snapstore {

// Bumped only for an incompatible change; adding a command, an optional argument or a
// result field keeps the version.
inline constexpr int control_protocol_version = 1;

}  // namespace snapstore
