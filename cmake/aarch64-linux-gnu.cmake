# Cross-compiling fedgap for aarch64 Linux (Jetson, Raspberry Pi) on a Debian x86-64 machine with
# Debian's cross compiler and the arm64 multiarch packages of the dependencies; the tests run
# under qemu-user. scripts/test-aarch64.sh does all of it:
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DFEDGAP_CUDA=OFF
# Criterion's arm64 packages cannot be installed beside the native ones (Debian 12 makes them
# conflict), so the script unpacks them into a folder of its own, named by the environment
# variable FEDGAP_AARCH64_DEPS; libraries are searched there too.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Libraries and pkg-config files from the arm64 folders only, never the host's.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(_fg_pc "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
if(DEFINED ENV{FEDGAP_AARCH64_DEPS})
  set(_fg_deps_lib "$ENV{FEDGAP_AARCH64_DEPS}/usr/lib/aarch64-linux-gnu")
  set(_fg_pc "${_fg_deps_lib}/pkgconfig:${_fg_pc}")
  set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,-rpath-link,${_fg_deps_lib}")
endif()
set(ENV{PKG_CONFIG_LIBDIR} "${_fg_pc}")
set(ENV{PKG_CONFIG_PATH} "")
# CTest runs every test program through the emulator (their own child processes reach qemu
# through binfmt_misc, which scripts/test-aarch64.sh registers).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /)
