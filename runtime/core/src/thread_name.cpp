#include "outpost/core/thread_name.h"

#include <pthread.h>

#include <string>

namespace outpost {

void SetThreadName(std::string_view name) {
  std::string n(name.substr(0, 15));
  pthread_setname_np(pthread_self(), n.c_str());  // fails only on a name too long: cut above
}

}  // namespace outpost
