// GCC 13's libstdc++ exports std::ios_base_library_init() to initialize iostreams; older libstdc++
// (Debian 12's GCC 12) initializes them itself, so an empty body is correct on the hosts that load this.
namespace std { void ios_base_library_init() {} }
