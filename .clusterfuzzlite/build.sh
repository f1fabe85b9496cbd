#!/bin/bash -eu
# Builds the libFuzzer targets for ClusterFuzzLite / OSS-Fuzz: run by the builder image's
# `compile` (Dockerfile beside this file), or outside Docker by .ci/cflite-check.
# Inputs, all from the builder's environment: CC CXX CFLAGS CXXFLAGS LIB_FUZZING_ENGINE, the
# sources in $SRC/ipc-harness, scratch space in $WORK. Output in $OUT, for every fuzzer the build
# made (fuzz/<name>_fuzzer.cc): <name>_fuzzer, <name>_fuzzer_seed_corpus.zip (fuzz/corpora/<name>),
# <name>_fuzzer.dict (fuzz/<name>.dict, when there is one), and in $OUT/lib the shared libraries
# the fuzzers load, found through their RPATH '$ORIGIN/lib': only $OUT reaches the runner image.
# A compiler launcher (ccache) is taken from CMAKE_C_COMPILER_LAUNCHER/CMAKE_CXX_COMPILER_LAUNCHER
# in the environment, as CMake does by itself; the builder image sets neither.
set -euo pipefail

die() { echo "build.sh: $*" >&2; exit 1; }
for v in CC CXX LIB_FUZZING_ENGINE SRC WORK OUT; do
  [ -n "${!v:-}" ] || die "$v is not set (the OSS-Fuzz/ClusterFuzzLite builder sets it; outside Docker use .ci/cflite-check)"
done
for v in CFLAGS CXXFLAGS; do
  [ -n "${!v+set}" ] || die "$v is not set (the OSS-Fuzz/ClusterFuzzLite builder sets it; outside Docker use .ci/cflite-check)"
done
for tool in cmake ninja zip patchelf ldd; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH (Debian/Ubuntu packages: cmake ninja-build zip patchelf libc-bin)"
done
src=$SRC/ipc-harness
[ -f "$src/fuzz/CMakeLists.txt" ] || die "no ipc-harness checkout at $src (the Dockerfile copies it there)"

# The builder puts -stdlib=libc++ (its own libc++) in CXXFLAGS. The HTTP transport links the
# system's cpp-httplib, a compiled C++ library built against libstdc++, so everything is built
# against the image's libstdc++ instead (GCC 13's on Ubuntu 24.04, with C++20 <span>, <concepts>).
build_cxxflags=${CXXFLAGS//-stdlib=libc++/}

# Only the fuzzers and what they link (IPCH_FUZZ_ONLY); the engine and the sanitizers are the
# builder's (IPCH_FUZZ_ENGINE, $CFLAGS), and so are -O and -g: no CMAKE_BUILD_TYPE. No -Werror: the
# builder's clang is newer than the ones the project is kept warning-free with. Time bounds get
# the fuzz preset's sanitizer slowdown.
build=$WORK/build
cmake -S "$src" -B "$build" -G Ninja \
  -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_CXX_FLAGS="$build_cxxflags" \
  -DIPCH_FUZZ=ON -DIPCH_FUZZ_ONLY=ON -DIPCH_FUZZ_ENGINE="$LIB_FUZZING_ENGINE" \
  -DIPCH_WERROR=OFF -DIPCH_SLOWDOWN=3
cmake --build "$build" --target ipch_fuzzers

# Libraries every Ubuntu image has (glibc's, and libstdc++ and libgcc_s, which apt itself needs):
# the runner's own are used. Any other library a fuzzer loads is copied to $OUT/lib, and the
# fuzzer's RPATH (a DT_RPATH, which also applies to those libraries' own dependencies, unlike a
# DT_RUNPATH) becomes '$ORIGIN/lib' alone.
is_system_lib() {
  case $1 in
    linux-vdso.so.* | ld-linux*.so.* | libc.so.* | libm.so.* | libdl.so.* | librt.so.* | libpthread.so.* | \
      libresolv.so.* | libutil.so.* | libstdc++.so.* | libgcc_s.so.*) return 0 ;;
  esac
  return 1
}
bundle_libs() {  # fuzzer binary; prints what it copied
  local deps line soname path copied=()
  deps=$(LD_LIBRARY_PATH='' ldd "$1") || die "ldd $1 failed"
  while read -r line; do
    case $line in
      *"=> not found"*) die "$(basename "$1") needs ${line%% *}, which is not found" ;;
      *" => /"*) soname=${line%% =>*} path=${line#*=> } path=${path% (*} ;;
      *) continue ;;  # the vDSO and the loader
    esac
    is_system_lib "$soname" && continue
    cp -L "$path" "$OUT/lib/$soname"
    copied+=("$soname")
  done <<<"$deps"
  echo "${copied[*]:-none}"
}

shopt -s nullglob
fuzzers=("$build"/fuzz/*_fuzzer)
[ ${#fuzzers[@]} -gt 0 ] || die "the build made no fuzzer ($build/fuzz/*_fuzzer)"
mkdir -p "$OUT/lib"
for bin in "${fuzzers[@]}"; do
  fuzzer=$(basename "$bin")
  name=${fuzzer%_fuzzer}
  [[ $fuzzer =~ ^[A-Za-z0-9_-]+$ ]] || die "fuzzer name '$fuzzer' is not [A-Za-z0-9_-]+"
  cp "$bin" "$OUT/$fuzzer"
  libs=$(bundle_libs "$bin")
  # shellcheck disable=SC2016  # $ORIGIN is the loader's, not the shell's
  patchelf --force-rpath --set-rpath '$ORIGIN/lib' "$OUT/$fuzzer"

  seeds=("$src/fuzz/corpora/$name"/*)
  [ ${#seeds[@]} -gt 0 ] || die "$fuzzer has no seed corpus: fuzz/corpora/$name is missing or empty"
  rm -f "$OUT/${fuzzer}_seed_corpus.zip"
  zip -q -X -j "$OUT/${fuzzer}_seed_corpus.zip" "${seeds[@]}"
  dict=none
  if [ -f "$src/fuzz/$name.dict" ]; then
    cp "$src/fuzz/$name.dict" "$OUT/$fuzzer.dict"
    dict=$fuzzer.dict
  fi
  echo "build.sh: $fuzzer: ${#seeds[@]} seeds, dictionary $dict, libraries in lib/: $libs"
done

# A fuzz target whose source is not registered with ipch_fuzz_target is built by no one.
for cc in "$src"/fuzz/*_fuzzer.cc; do
  fuzzer=$(basename "$cc" .cc)
  [ -f "$OUT/$fuzzer" ] || echo "build.sh: warning: fuzz/$fuzzer.cc was not built (no ipch_fuzz_target in fuzz/CMakeLists.txt)" >&2
done
