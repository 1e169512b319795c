// ExecuTorch's C++ runtime serving one .pte on the aarch64 board (built by edgecraft, see board.py).
//
// Why C++: the aarch64 executorch *Python* binding needs libtorch, and PyPI's aarch64 torch is a CUDA build
// that cannot run on the board; the executorch wheel's own C++ runtime (lib/libexecutorch*.so) needs only
// libc/libstdc++. Linking libexecutorch_backend_xnnpack.so (--no-as-needed) registers the XNNPACK delegate
// at load (a static initializer), the optimized and quantized kernel libraries register the operators left
// outside the delegate.
//
// Usage: board_runner MODEL.pte THREADS. Replies "ready NIN NOUT THREADS HWCAP HWCAP2\n" or "error TEXT\n",
// then serves requests on stdin, one per header line, replies on stdout (logs go to stderr):
//   run NIN\n   then NIN tensors        -> "ok NOUT\n" then NOUT tensors
//   time R NIN\n then NIN tensors       -> "ok R\n" then one line of R seconds (steady_clock around forward)
//   exit\n
// An input tensor is a line "DTYPE NBYTES RANK D0 D1 ...\n" (DTYPE a numpy name: float32 float16 int64 int32
// int8 uint8 bool) followed by its NBYTES bytes, little-endian, C order; an output the same without NBYTES.
// A failed request replies "error TEXT\n" (its bytes consumed: the stream stays in step).
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr.h>

#include <sys/auxv.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace executorch::extension::threadpool {
// libexecutorch_threadpool.so's pool, whose header the wheel does not ship (signatures of 1.5.1's
// extension/threadpool/threadpool.h; the symbols are exported, checked with nm -D).
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
  size_t get_thread_count() const;
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

using executorch::aten::ScalarType;
using executorch::extension::TensorPtr;
using executorch::extension::module::Module;
using executorch::runtime::EValue;

namespace {

struct DType {
  const char* name;
  ScalarType type;
  size_t size;
};
const DType kTypes[] = {{"float32", ScalarType::Float, 4}, {"float16", ScalarType::Half, 2},
                        {"int64", ScalarType::Long, 8},    {"int32", ScalarType::Int, 4},
                        {"int8", ScalarType::Char, 1},     {"uint8", ScalarType::Byte, 1},
                        {"bool", ScalarType::Bool, 1}};

const DType& by_name(const std::string& name) {
  for (const auto& t : kTypes)
    if (name == t.name) return t;
  throw std::runtime_error("unsupported input dtype " + name);
}

const DType& by_type(ScalarType type) {
  for (const auto& t : kTypes)
    if (type == t.type) return t;
  throw std::runtime_error("unsupported output scalar type " + std::to_string(static_cast<int>(type)));
}

// One input tensor as sent: its header line and its bytes (read whole first, so a bad tensor never leaves
// bytes behind that the next request would be parsed from).
struct Raw {
  std::string header;
  std::vector<uint8_t> bytes;
};

Raw read_raw() {
  Raw raw;
  if (!std::getline(std::cin, raw.header)) throw std::runtime_error("input ended inside a request");
  std::istringstream head(raw.header);
  std::string name;
  size_t nbytes = 0;
  if (!(head >> name >> nbytes)) throw std::runtime_error("bad tensor header: " + raw.header);
  raw.bytes.resize(nbytes);
  if (!std::cin.read(reinterpret_cast<char*>(raw.bytes.data()), static_cast<std::streamsize>(nbytes)))
    throw std::runtime_error("input ended inside a tensor's data");
  return raw;
}

TensorPtr make_tensor(Raw& raw) {
  std::istringstream head(raw.header);
  std::string name;
  size_t nbytes = 0, rank = 0;
  head >> name >> nbytes >> rank;
  const DType& dtype = by_name(name);
  std::vector<executorch::aten::SizesType> sizes(rank);
  size_t numel = 1;
  for (auto& d : sizes) {
    head >> d;
    numel *= static_cast<size_t>(d);
  }
  if (!head || numel * dtype.size != nbytes) throw std::runtime_error("bad tensor header: " + raw.header);
  return executorch::extension::make_tensor_ptr(std::move(sizes), std::move(raw.bytes), {}, {}, dtype.type);
}

void write_tensor(const EValue& value) {
  if (!value.isTensor()) throw std::runtime_error("an output is not a tensor");
  const auto& t = value.toTensor();
  std::cout << by_type(t.scalar_type()).name << ' ' << t.dim();
  for (auto d : t.sizes()) std::cout << ' ' << d;
  std::cout << '\n';
  std::cout.write(static_cast<const char*>(t.const_data_ptr()), static_cast<std::streamsize>(t.nbytes()));
}

std::vector<EValue> forward(Module& module, const std::vector<EValue>& inputs) {
  auto result = module.forward(inputs);
  if (!result.ok())
    throw std::runtime_error("forward failed (executorch error " +
                             std::to_string(static_cast<int>(result.error())) + ")");
  return *result;
}

void serve(Module& module) {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream request(line);
    std::string op;
    request >> op;
    if (op == "exit") return;
    try {
      size_t repeats = 0, count = 0;
      if (op == "time") request >> repeats;
      request >> count;
      std::vector<Raw> raws;
      for (size_t i = 0; i < count; ++i) raws.push_back(read_raw());
      if (op != "run" && op != "time") throw std::runtime_error("unknown request " + op);
      std::vector<TensorPtr> tensors;
      std::vector<EValue> inputs;
      for (auto& raw : raws) tensors.push_back(make_tensor(raw));
      for (auto& t : tensors) inputs.emplace_back(t);
      if (op == "run") {
        auto outputs = forward(module, inputs);
        std::cout << "ok " << outputs.size() << '\n';
        for (const auto& v : outputs) write_tensor(v);
      } else {
        std::vector<double> seconds;
        for (size_t r = 0; r < repeats; ++r) {
          auto start = std::chrono::steady_clock::now();
          forward(module, inputs);
          seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
        std::cout << "ok " << repeats << '\n';
        for (double s : seconds) std::cout << s << ' ';
        std::cout << '\n';
      }
    } catch (const std::exception& exc) {
      std::cout << "error " << exc.what() << '\n';
    }
    std::cout.flush();
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::cout.precision(9);
  if (argc != 3) {
    std::cout << "error usage: board_runner MODEL.pte THREADS\n";
    return 2;
  }
  auto* pool = executorch::extension::threadpool::get_threadpool();
  if (pool == nullptr || !pool->_unsafe_reset_threadpool(static_cast<uint32_t>(std::atoi(argv[2])))) {
    std::cout << "error cannot size the threadpool to " << argv[2] << " threads\n";
    return 1;
  }
  Module module(argv[1], Module::LoadMode::File);
  auto loaded = module.load_forward();
  if (loaded != executorch::runtime::Error::Ok) {
    std::cout << "error loading " << argv[1] << " failed (executorch error " << static_cast<int>(loaded)
              << "; is the XNNPACK delegate registered?)\n";
    return 1;
  }
  auto meta = module.method_meta("forward");
  if (!meta.ok()) {
    std::cout << "error no forward method in " << argv[1] << '\n';
    return 1;
  }
  // The CPU features XNNPACK's own detection reads (the ELF auxiliary vector, set by QEMU for its CPU model).
  std::cout << "ready " << meta->num_inputs() << ' ' << meta->num_outputs() << ' ' << pool->get_thread_count()
            << ' ' << getauxval(AT_HWCAP) << ' ' << getauxval(AT_HWCAP2) << std::endl;
  serve(module);
  return 0;
}
