// A file written whole or not at all: reports and result documents that a reader (a CI job, a
// browser, a later run) must never see half of.
#pragma once

#include <string>
#include <string_view>

#include "ipch/result.h"

namespace ipch {

// Writes `text` to PATH.tmp.<pid> beside `path` and renames it over `path`; on failure removes
// the temporary file and leaves `path` as it was.
Status WriteFileAtomically(const std::string& path, std::string_view text);

}  // namespace ipch
