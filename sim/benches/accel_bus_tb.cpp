// Verilator C++ bench of the bare accelerator, its model read over the ``bus`` ports from the flash
// image held here: the C++ twin of the cocotb bench ``accelerator_bus.py`` (mode "exact"), without
// cocotb, VPI or --public-flat-rw, so that the paper-size model builds and runs in minutes.
// Launcher, file formats and judging: csdformer.sim.verilator_bus (sim/verilator_bus.py).
//
// The weight stream: any backend's StreamTiming for an always-ready user (meta.txt's
// stream_latency, stream_byte_cycles, stream_init_cycles; default RomStream(byte_cycles=1):
// StreamTiming("rom", 2, 1), init 0; the QSPI reader's: QspiFlashReader.timing and .init_cycles),
// stepped every cycle as RomStreamModel._step does: at the falling edge of cycle c the beat of cycle
// c (the stream's registers after the rising edge that began it) is driven, cmd and data.ready of
// cycle c are sampled (after the combinational logic settled) and the registers of the next cycle
// computed; a rising edge that samples rst high resets them. Bytes past the image read 0xFF;
// addresses wrap at stream_addr_bits (RomStream: its memory's address bits; the flash: 24).
// (struct Stream below; the model loader is always ready, which the run checks.)
//
// The bench: accelerator.py's _run, falling edge for falling edge: reset (2 rising edges), then per
// image: wait for ``prefetched``, one pixel a cycle, the logits, class and counters, the debug-port
// read-back of the spike frames (DBG_LATENCY cycles behind the address).
//
// Usage: tb DIR   (DIR holds meta.txt, flash.bin; results written there: hw.txt, spk.bin,
// result.json, heartbeat.txt, progress.txt; trace.txt with meta's trace_cycles)

#include "Vtop.h"
#include "verilated.h"

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

// Verilator spells the "__" of a port name as "___05F".
#define P_CMD_VALID bus___05Fcmd___05Fvalid
#define P_CMD_READY bus___05Fcmd___05Fready
#define P_CMD_PAYLOAD bus___05Fcmd___05Fpayload
#define P_DATA_VALID bus___05Fdata___05Fvalid
#define P_DATA_READY bus___05Fdata___05Fready
#define P_DATA_PAYLOAD bus___05Fdata___05Fpayload
#define P_IMG_VALID image___05Fvalid
#define P_IMG_READY image___05Fready
#define P_IMG_PAYLOAD image___05Fpayload
#define P_LOG_VALID logits___05Fvalid
#define P_LOG_READY logits___05Fready
#define P_LOG_PAYLOAD logits___05Fpayload
#define P_PRED_VALID prediction___05Fvalid
#define P_PRED_READY prediction___05Fready
#define P_PRED_PAYLOAD prediction___05Fpayload

static const uint32_t ADDR_MASK = (1u << 24) - 1;  // RomStream's cur: the bus's 24 address bits

static std::string dir;
static Vtop* top;
static uint64_t cycle = 0;  // rising clock edges so far
static std::chrono::steady_clock::time_point t0;

static double wall() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

static double vm_hwm_mb() {
    FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double mb = -1;
    while (std::fgets(line, sizeof line, f))
        if (!std::strncmp(line, "VmHWM:", 6)) mb = std::atof(line + 6) / 1024.0;
    std::fclose(f);
    return mb;
}

// The weight stream at the bus ports, for an always-ready user (the model loader holds data.ready
// at 1; a beat left untaken is counted and fails the run): any backend's StreamTiming (latency,
// byte_cycles) plus init_cycles, the cycles after reset with cmd.ready low. Cycle c is the one the
// next rising edge ends; step() samples cycle c's inputs and sets the registers of cycle c + 1:
// - a cmd handshake in cycle c (cmd.valid & cmd.ready; a beat of that cycle belongs to the old
//   read) starts a read at its address: no beat in cycles c+1 .. c+latency-1, the first in cycle
//   c+latency (RomStream: cmd → read issued → beat valid, 1 + byte_cycles; QspiFlashReader: its
//   deselect gap, command, address, dummy and first byte on SCK, its input and data registers);
// - a beat taken in cycle b: the next in cycle b + byte_cycles (byte_cycles = 1: back to back),
//   forever (the reader keeps reading until the next cmd; bytes past the image read 0xFF);
// - cmd.ready: 0 in cycles 0 .. init_cycles-1 after reset (QspiFlashReader's wake-up: deselect,
//   0xAB, tRES, and with quad_enable the QE sequence), 1 after (RomStream: init_cycles 0).
struct Stream {
    std::vector<uint8_t> img;
    uint64_t latency = 2, byte_cycles = 1, init_cycles = 0;
    uint64_t amask = ADDR_MASK;  // the address bits reads wrap at (RomStream: its memory's; flash: 24)
    uint64_t init_left = 0;  // cycles of this cycle on with cmd.ready low
    uint32_t cur = 0;        // the address the next beat shows
    bool active = false;
    uint32_t valid = 0;
    uint64_t wait = 0;       // cycles after the next one before a beat (while none is shown)
    uint64_t cmds = 0, bytes = 0, stepped = 0, untaken = 0;

    void drive() {  // the registers of this cycle
        top->P_CMD_READY = init_left == 0;
        top->P_DATA_VALID = valid;
        uint64_t a = cur & amask;
        top->P_DATA_PAYLOAD = a < img.size() ? img[a] : 0xFF;
    }
    void step() {  // after the inputs settled: the registers of the next cycle
        ++stepped;
        uint32_t v = valid, ready = top->P_DATA_READY;
        if (v && !ready) ++untaken;
        if (top->P_CMD_VALID && init_left == 0) {
            cur = (uint32_t)top->P_CMD_PAYLOAD & ADDR_MASK;
            active = true;
            wait = latency - 1;  // latency >= 2 (checked at start)
            valid = 0;
            ++cmds;
        } else if (active) {
            if (v && ready) {
                cur = (cur + 1) & ADDR_MASK;
                ++bytes;
                wait = byte_cycles - 1;
                valid = wait == 0;
            } else if (!v) {
                --wait;
                valid = wait == 0;
            }
        }
        if (init_left) --init_left;
    }
    void reset() { cur = 0, active = false, valid = 0, wait = 0, init_left = init_cycles; }
};

static Stream rom;
static uint64_t budget = 0, heartbeat_every = 1000000, next_heartbeat = 0;
static std::string error;  // non-empty: the run stopped

static void heartbeat() {
    std::ofstream f(dir + "/heartbeat.txt", std::ios::app);
    f << "{\"cycle\": " << cycle << ", \"wall_s\": " << wall() << ", \"cmds\": " << rom.cmds
      << ", \"bytes\": " << rom.bytes << ", \"loader_ready\": " << (int)top->ready
      << ", \"prefetched\": " << (int)top->prefetched << ", \"busy\": " << (int)top->busy
      << ", \"vm_hwm_mb\": " << vm_hwm_mb() << "}\n";
}

// From one falling edge to the next: the beat, the inputs settle, the rising edge.
struct Budget {};
static int64_t img_not_ready = 0;  // pixels offered while image.ready was low (the bench assumes none)
static int64_t post_reset = -1;    // this cycle's index from the first cycle after reset
static uint64_t trace_cycles = 0;  // meta "trace_cycles": the bus of the first cycles after reset
static FILE* trace = nullptr;      // trace.txt: "cmd.valid cmd.ready cmd.payload data.valid data.payload"
static void advance() {
    rom.drive();
    top->clk = 0;
    top->eval();
    if (trace && !top->rst && post_reset >= 0 && (uint64_t)post_reset < trace_cycles)
        std::fprintf(trace, "%u %u %u %u %u\n", (unsigned)top->P_CMD_VALID, (unsigned)top->P_CMD_READY,
                     (unsigned)top->P_CMD_PAYLOAD, (unsigned)top->P_DATA_VALID, (unsigned)top->P_DATA_PAYLOAD);
    rom.step();
    if (top->P_IMG_VALID && !top->P_IMG_READY) ++img_not_ready;
    top->clk = 1;
    top->eval();
    ++cycle;
    if (top->rst) {
        rom.reset();
        post_reset = 0;
    } else if (post_reset >= 0) {
        ++post_reset;
    }
    if (cycle >= next_heartbeat) {
        heartbeat();
        next_heartbeat += heartbeat_every;
    }
    if (budget && cycle > budget) throw Budget();
}

static std::string grouped(uint64_t v) {  // 1234567 -> "1,234,567"
    std::string d = std::to_string(v), out;
    for (size_t k = 0; k < d.size(); ++k) {
        if (k && (d.size() - k) % 3 == 0) out += ',';
        out += d[k];
    }
    return out;
}

static std::vector<int64_t> read_ints(std::istream& in, size_t n) {
    std::vector<int64_t> v(n);
    for (auto& x : v) in >> x;
    return v;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    t0 = std::chrono::steady_clock::now();
    // meta.txt: "key value" lines; "dump K" then K "base words" lines; "indices" N values (the
    // images' names in messages); "delays" N values; "pixels" N*n_pixels values (image by image).
    std::map<std::string, int64_t> meta;
    std::vector<int64_t> dump, delays, pixels, indices;
    {
        std::ifstream in(dir + "/meta.txt");
        if (!in) {
            std::fprintf(stderr, "no %s/meta.txt\n", dir.c_str());
            return 2;
        }
        std::string key;
        while (in >> key) {
            if (key == "dump") {
                int64_t k;
                in >> k;
                dump = read_ints(in, 2 * k);
            } else if (key == "indices") {
                indices = read_ints(in, meta.at("n_images"));
            } else if (key == "delays") {
                delays = read_ints(in, meta.at("n_images"));
            } else if (key == "pixels") {
                pixels = read_ints(in, meta.at("n_images") * meta.at("n_pixels"));
            } else {
                in >> meta[key];
            }
        }
        if (!in.eof()) {
            std::fprintf(stderr, "meta.txt: unreadable near %s\n", key.c_str());
            return 2;
        }
    }
    {
        std::ifstream f(dir + "/flash.bin", std::ios::binary);
        rom.img.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
    if (meta.count("stream_latency")) rom.latency = (uint64_t)meta["stream_latency"];
    if (meta.count("stream_byte_cycles")) rom.byte_cycles = (uint64_t)meta["stream_byte_cycles"];
    if (meta.count("stream_init_cycles")) rom.init_cycles = (uint64_t)meta["stream_init_cycles"];
    if (meta.count("stream_addr_bits")) rom.amask = (1ull << meta["stream_addr_bits"]) - 1;
    if (rom.latency < 2 || rom.byte_cycles < 1) {
        std::fprintf(stderr, "meta.txt: stream_latency must be >= 2 and stream_byte_cycles >= 1\n");
        return 2;
    }
    rom.reset();
    const int64_t n = meta.at("n_images"), npx = meta.at("n_pixels"), nc = meta.at("num_classes");
    const int lw = (int)meta.at("logit_width"), lat = (int)meta.at("dbg_latency");
    budget = (uint64_t)meta.at("budget_cycles");
    if (meta.count("heartbeat_cycles")) heartbeat_every = (uint64_t)meta["heartbeat_cycles"];
    if (meta.count("trace_cycles") && meta["trace_cycles"] > 0) {
        trace_cycles = (uint64_t)meta["trace_cycles"];
        trace = std::fopen((dir + "/trace.txt").c_str(), "w");
    }
    next_heartbeat = heartbeat_every;
    std::vector<uint32_t> addrs;
    for (size_t k = 0; k + 1 < dump.size(); k += 2)
        for (int64_t a = dump[k]; a < dump[k] + dump[k + 1]; ++a) addrs.push_back((uint32_t)a);

    std::vector<int64_t> logits(n * nc, 0), pred(n, 0), cyc(n, 0), spikes(n, 0), sops(n, 0);
    std::vector<uint64_t> spk(n * addrs.size(), 0);
    int64_t i = 0;

    auto* ctx = new VerilatedContext;
    ctx->commandArgs(argc, argv);
    top = new Vtop{ctx};
    double t_built = wall();
    try {
        // The stream in its reset state (RomStreamModel.start); reset for 2 rising edges,
        // released at the falling edge after them.
        rom.drive();
        top->clk = 0;
        top->rst = 1;
        top->eval();
        advance();
        advance();
        top->rst = 0;
        top->P_LOG_READY = 1;
        top->P_PRED_READY = 0;
        top->P_IMG_VALID = 0;
        for (i = 0; i < n; ++i) {
            advance();
            while (!top->prefetched) {  // the cycle model counts from a loader with two records in
                if (top->error) throw std::string("the accelerator refused its flash image (error)");
                advance();
            }
            top->delay = (uint32_t)delays[i];
            top->P_IMG_VALID = 1;
            for (int64_t p = 0; p < npx; ++p) {
                top->P_IMG_PAYLOAD = (uint32_t)pixels[i * npx + p];
                advance();
            }
            top->P_IMG_VALID = 0;
            if (!top->P_LOG_VALID) {
                do advance();
                while (!top->P_LOG_VALID);
            }
            for (int64_t k = 0; k < nc;) {
                if (top->P_LOG_VALID) {
                    uint64_t v = (uint64_t)top->P_LOG_PAYLOAD;
                    int64_t s = (v >> (lw - 1)) & 1 ? (int64_t)v - ((int64_t)1 << lw) : (int64_t)v;
                    logits[i * nc + k++] = s;
                }
                advance();
            }
            if (!top->P_PRED_VALID) advance();  // the last logit's compare takes a cycle
            if (!top->P_PRED_VALID) throw std::string("no prediction after the logits");
            pred[i] = top->P_PRED_PAYLOAD;
            cyc[i] = top->cycles;
            spikes[i] = top->spikes;
            sops[i] = top->sops;
            top->P_PRED_READY = 1;
            advance();
            top->P_PRED_READY = 0;
            {
                std::ofstream f(dir + "/progress.txt", std::ios::app);
                f << i + 1 << " " << n << " class " << pred[i] << ", " << cyc[i] << " cycles\n";
            }
            // idle: the spike frames, one word a cycle, DBG_LATENCY cycles behind the address
            const int64_t na = (int64_t)addrs.size();
            for (int64_t j = 0; j < na + lat - 1; ++j) {
                if (j < na) top->dbg_addr = addrs[j];
                advance();
                if (j >= lat - 1) spk[i * na + j - lat + 1] = (uint64_t)top->dbg_data;
            }
        }
    } catch (Budget&) {
        std::ostringstream m;
        m << "image " << (i < (int64_t)indices.size() ? indices[i] : i) << " (" << i + 1 << " of " << n
          << "): not done within the cycle budget of " << grouped(budget)
          << " cycles (from the cycle model); the simulation was stopped";
        error = m.str();
    } catch (std::string& e) {
        error = e;
    }
    if (error.empty() && img_not_ready)
        error = "image.ready was low while pixels were offered (" + std::to_string(img_not_ready) + " beats)";
    if (error.empty() && rom.untaken)
        error = "bus.data.ready was low under a beat (" + std::to_string(rom.untaken) +
                " cycles): the stream model is exact only for an always-ready user";
    if (trace) std::fclose(trace);
    double sim_s = wall() - t_built;
    top->final();
    {  // hw.txt: per image "logits... prediction cycles spikes sops"; spk.bin: uint64 words
        std::ofstream f(dir + "/hw.txt");
        for (int64_t k = 0; k < n; ++k) {
            for (int64_t c = 0; c < nc; ++c) f << logits[k * nc + c] << " ";
            f << pred[k] << " " << cyc[k] << " " << spikes[k] << " " << sops[k] << "\n";
        }
        std::ofstream b(dir + "/spk.bin", std::ios::binary);
        b.write((const char*)spk.data(), spk.size() * sizeof(uint64_t));
    }
    {
        std::ofstream f(dir + "/result.json");
        std::string esc;
        for (char ch : error) esc += ch == '"' || ch == '\\' ? std::string("\\") + ch : std::string(1, ch);
        f << "{\"sim_cycles\": " << cycle << ", \"bench_wall_s\": " << sim_s << ", \"images_done\": " << i
          << ", \"vm_hwm_mb\": " << vm_hwm_mb() << ", \"stream\": {\"mode\": \"exact\", \"cmds\": " << rom.cmds
          << ", \"windows\": " << rom.cmds << ", \"unknown_windows\": 0, \"bytes\": " << rom.bytes
          << ", \"stepped_cycles\": " << rom.stepped << ", \"latency\": " << rom.latency
          << ", \"byte_cycles\": " << rom.byte_cycles << ", \"init_cycles\": " << rom.init_cycles
          << ", \"untaken\": " << rom.untaken << "}"
          << (error.empty() ? std::string() : ", \"error\": \"" + esc + "\"") << "}\n";
    }
    delete top;
    delete ctx;
    if (!error.empty()) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return 1;
    }
    return 0;
}
