// llava-rad-cli: the commands (one file each) and the usage text (main.cpp).
#pragma once

#include <cstdio>

namespace lrcli {

void print_usage(std::FILE * f);

int cmd_generate(int argc, char ** argv);
int cmd_info(int argc, char ** argv);
int cmd_vision(int argc, char ** argv);
int cmd_study(int argc, char ** argv);
int cmd_bert(int argc, char ** argv);

} // namespace lrcli
