// llava-rad-cli: the standalone command line of the engine (no Node needed; for GPU machines and benches).
//
//   llava-rad-cli generate --model F.gguf --prompt TEXT [--max-tokens N] [--threads N] [--backend cpu|cuda|auto]
//                          [--ctx N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--ignore-eos]
//                          [--flash-attn 0|1] [--warmup] [--json]
//   llava-rad-cli info [--model F.gguf] [--backend B] [--threads N]
//   llava-rad-cli vision --model VISION.gguf [--images N] [--batch N] [--output projected|features]
//                        [--dump FILE.f32] [--threads N] [--backend B] [--json]
//   llava-rad-cli study --model DECODER.gguf --mmproj VISION.gguf [--studies N] [--parallel P] [--max-tokens T]
//                       [--prompt-tokens K] [--ctx-per-study C] [--latency-runs L] [--overlap 0|1] [--flash-attn 0|1]
//                       [--threads N] [--backend B] [--json]
//   llava-rad-cli bert --model BERT.gguf [--ids-file F | --seqs N --len L --seed S] [--batch 0|1] [--dump FILE.f32]
//                      [--threads N] [--backend B] [--json]
//   llava-rad-cli --version | --help
//
// Same JSON fields as the Node CLI (`llava-rad generate --json`). Exit codes: 0 ok, 1 engine error,
// 2 bad arguments. Everything goes through the C API in llava_rad.h.
//
// One file per component: cli_args (option parsing, UsageError), cli_json (JSON writers), cli_engine (engine
// errors, handle holders, loading), one file per command (generate.cpp, info.cpp, vision.cpp, study.cpp, bert.cpp).
#include "cli_args.h"
#include "cli_commands.h"
#include "cli_engine.h"
#include "llava_rad.h"

#include <cstdio>
#include <exception>
#include <new>
#include <string>

namespace lrcli {

namespace {

const char * const kUsage =
    "Usage: llava-rad-cli <command> [options]\n"
    "\n"
    "Commands:\n"
    "  generate  generate text from a text prompt (BOS prepended, greedy by default)\n"
    "  info      print the build, the CPU code in use and a model's hyperparameters as JSON\n"
    "  vision    encode synthetic images with a vision GGUF (check / time a backend)\n"
    "  study     benchmark whole studies: image -> vision tower -> prompt -> T tokens, P studies at once\n"
    "  bert      run a BERT GGUF (CheXbert) on token ids (check / time a backend)\n"
    "\n"
    "generate options:\n"
    "  -m, --model FILE        GGUF model (LLaMA architecture)\n"
    "  -p, --prompt TEXT       prompt text\n"
    "  -n, --max-tokens N      most tokens to generate (default 256)\n"
    "      --temperature T     0 = greedy (default 0)\n"
    "      --top-k K           (default: off)\n"
    "      --top-p P           (default: off)\n"
    "      --seed S            (default 0)\n"
    "  -t, --threads N         CPU threads (default: physical cores)\n"
    "      --mmap 0|1          1: compute from the file mapping; 0: copy the weights into huge pages (default 0)\n"
    "      --backend B         auto | cpu | cuda (default auto)\n"
    "      --ctx N             context size (default min(4096, training context))\n"
    "      --ignore-eos        keep generating past EOS\n"
    "      --flash-attn 0|1    fused flash attention (default 0)\n"
    "      --warmup            run the same generation once first, untimed (for timings)\n"
    "      --json              print one JSON object instead of the text\n"
    "\n"
    "info options: [--model FILE] [--backend B] [--threads N]\n"
    "\n"
    "vision: encode N synthetic 518x518 test images with a vision GGUF (timing, a checksum, and with --dump\n"
    "  the raw float32 output), to check and time a backend without an image decoder:\n"
    "  --model VISION.gguf [--images N (1)] [--batch N (8)] [--output projected|features] [--dump FILE]\n"
    "  [--threads N] [--backend B] [--json]\n"
    "\n"
    "study: the study-level benchmark. N synthetic studies (synthetic 518x518 images as `vision` makes them,\n"
    "  the official prompt's tokens fitted to K, split around the image rows as the official prompt is);\n"
    "  images are encoded in vision batches of up to P and the studies decoded with up to P in flight\n"
    "  (continuous batching), each generating exactly T tokens (EOS ignored). Reports vision ms per image\n"
    "  (batch 1 and P), time to first token and ms per study alone (P=1), wall time, studies/hour and\n"
    "  decode tok/s at P:\n"
    "  --model DECODER.gguf --mmproj VISION.gguf [--studies N (8)] [--parallel P (1)] [--max-tokens T (100)]\n"
    "  [--prompt-tokens K (60)] [--ctx-per-study C (2048)] [--latency-runs L (min(N, 3); 0: skip)]\n"
    "  [--overlap 0|1 (1: encode the next batch while studies decode; 0: waves of P)] [--flash-attn 0|1]\n"
    "  [--threads N] [--backend B] [--json]\n"
    "\n"
    "bert: run a BERT GGUF (CheXbert's encoder and heads) on the ids of --ids-file (one sequence a line) or on N\n"
    "  pseudo-random sequences (sequence s has max(1, L - 3s) ids); --batch 1 (default) encodes them in one padded\n"
    "  graph, 0 one at a time. --dump writes every [CLS] state, then every sequence's logits, as float32:\n"
    "  --model BERT.gguf [--ids-file F | --seqs N (8) --len L (64) --seed S (0)] [--batch 0|1] [--dump FILE]\n"
    "  [--threads N] [--backend B] [--json]\n"
    "\n"
    "Research use only: LLaVA-Rad is not for clinical care.\n";

} // namespace

void print_usage(std::FILE * f) {
    std::fputs(kUsage, f);
}

} // namespace lrcli

int main(int argc, char ** argv) {
    using namespace lrcli;
    try {
        if (argc < 2 || argv[1] == nullptr) {
            print_usage(stderr);
            return 2;
        }
        const std::string cmd = argv[1];
        if (cmd == "-h" || cmd == "--help" || cmd == "help") {
            print_usage(stdout);
            return 0;
        }
        if (cmd == "-v" || cmd == "--version" || cmd == "version") {
            std::printf("%s\n", lr_build_info());
            return 0;
        }
        if (cmd == "generate") return cmd_generate(argc, argv);
        if (cmd == "info") return cmd_info(argc, argv);
        if (cmd == "vision") return cmd_vision(argc, argv);
        if (cmd == "study") return cmd_study(argc, argv);
        if (cmd == "bert") return cmd_bert(argc, argv);
        throw UsageError{"unknown command '" + cmd + "' (commands: generate, info, vision, study, bert; see llava-rad-cli --help)"};
    } catch (const UsageError & e) {
        std::fprintf(stderr, "llava-rad-cli: %s\n", e.message.c_str());
        return 2;
    } catch (const EngineError & e) {
        std::fprintf(stderr, "llava-rad-cli: error [%s]: %s\n", code_name(e.status), e.message.c_str());
        return 1;
    } catch (const std::bad_alloc &) {
        std::fprintf(stderr, "llava-rad-cli: error [OUT_OF_MEMORY]: out of memory\n");
        return 1;
    } catch (const std::exception & e) {
        std::fprintf(stderr, "llava-rad-cli: error [INTERNAL]: %s\n", e.what());
        return 1;
    }
}
