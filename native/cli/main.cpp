#include "llava_rad.h"
#include <cstdio>
int main() { std::printf("%s\n", lr_build_info()); return 0; }
