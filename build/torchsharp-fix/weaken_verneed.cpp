// Marks one version requirement (e.g. GLIBCXX_3.4.32) of an ELF64 shared library as weak
// (VER_FLG_WEAK in vna_flags), so the dynamic loader does not refuse the library when the
// host's libstdc++ lacks that version. Used only on hosts that need it (see fix-libtorchsharp.sh).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <elf.h>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3) { std::fprintf(stderr, "usage: weaken_verneed FILE VERSION\n"); return 2; }
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) { std::fprintf(stderr, "weaken_verneed: cannot read %s\n", argv[1]); return 2; }
  std::vector<char> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  if (b.size() < sizeof(Elf64_Ehdr) || std::memcmp(b.data(), ELFMAG, SELFMAG) != 0 || b[EI_CLASS] != ELFCLASS64) {
    std::fprintf(stderr, "weaken_verneed: %s is not an ELF64 file\n", argv[1]); return 2;
  }
  auto* eh = reinterpret_cast<Elf64_Ehdr*>(b.data());
  auto* sh = reinterpret_cast<Elf64_Shdr*>(b.data() + eh->e_shoff);
  int changed = 0;
  for (int i = 0; i < eh->e_shnum; ++i) {
    if (sh[i].sh_type != SHT_GNU_verneed) continue;
    const char* strtab = b.data() + sh[sh[i].sh_link].sh_offset;
    size_t off = sh[i].sh_offset;
    for (;;) {
      auto* vn = reinterpret_cast<Elf64_Verneed*>(b.data() + off);
      size_t aoff = off + vn->vn_aux;
      for (int k = 0; k < vn->vn_cnt; ++k) {
        auto* va = reinterpret_cast<Elf64_Vernaux*>(b.data() + aoff);
        if (std::strcmp(strtab + va->vna_name, argv[2]) == 0) { va->vna_flags |= VER_FLG_WEAK; ++changed; }
        if (va->vna_next == 0) break;
        aoff += va->vna_next;
      }
      if (vn->vn_next == 0) break;
      off += vn->vn_next;
    }
  }
  if (changed == 0) { std::fprintf(stderr, "weaken_verneed: %s has no requirement %s\n", argv[1], argv[2]); return 1; }
  std::ofstream out(argv[1], std::ios::binary | std::ios::trunc);
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
  return out ? 0 : 2;
}
