# The kernel sets (src/kernels/kernels.h): src/kernels/kernels.cpp compiled once per instruction
# set into its own object file, whose symbols outside its namespace mm::kernels::SET are made
# local (ld -r, then objcopy), so Eigen's and the standard library's inline functions compiled
# for AVX-512 stay inside the AVX-512 kernels instead of being shared with code that runs on any
# CPU. The rest of the library is compiled for the baseline of the target; src/dispatch.cpp
# picks a set at run time from the CPU. Sets: MM_KERNEL_SETS; their objects: MM_KERNEL_OBJECTS;
# the definitions dispatch.cpp needs: MM_KERNEL_DEFINITIONS.
set(MM_KERNEL_SETS)
set(MM_KERNEL_OBJECTS)
set(MM_KERNEL_DEFINITIONS)
if(MAKEMORE_NATIVE)
  set(MM_KERNEL_SETS native)  # one set, for the building machine, like the rest of the build
  set(MM_KERNEL_FLAGS_native ${MM_OPT})
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$" AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  include(CheckCXXCompilerFlag)
  check_cxx_compiler_flag(-march=x86-64-v4 MM_HAS_MARCH_V4)
  # src/dispatch.cpp asks the CPU for its level (GCC 12; clang only from 16: Debian 12's clang 14,
  # which builds the fuzz harnesses, gets the generic set).
  include(CheckCXXSourceCompiles)
  check_cxx_source_compiles(
    "int main() { return __builtin_cpu_supports(\"x86-64-v4\") + __builtin_cpu_supports(\"x86-64-v3\"); }"
    MM_HAS_CPU_LEVELS)
  if(MM_HAS_MARCH_V4 AND MM_HAS_CPU_LEVELS AND CMAKE_OBJCOPY AND CMAKE_LINKER)
    # x86-64-v4: AVX-512 F/BW/CD/DQ/VL with AVX2 and FMA (Skylake-X, Ice Lake, Zen 4 and later);
    # x86-64-v3: AVX2 and FMA (Haswell, Zen 1 and later); generic: SSE2, any x86-64.
    set(MM_KERNEL_SETS avx512 avx2 generic)
    set(MM_KERNEL_FLAGS_avx512 -march=x86-64-v4)
    set(MM_KERNEL_FLAGS_avx2 -march=x86-64-v3)
    set(MM_KERNEL_FLAGS_generic)
  else()
    message(STATUS "makemore: no -march=x86-64-v4, no CPU level check or no objcopy: the generic kernels only")
    set(MM_KERNEL_SETS generic)
  endif()
else()
  set(MM_KERNEL_SETS generic)
endif()

list(LENGTH MM_KERNEL_SETS mm_n_sets)
# The partial link needs GNU ld's --force-group-allocation; with clang CMake finds ld.lld, which
# has no such option: GNU ld (binutils, beside any compiler) does it then.
set(mm_partial_ld ${CMAKE_LINKER})
if(CMAKE_LINKER MATCHES "lld")
  find_program(MM_GNU_LD NAMES ld.bfd)
  if(MM_GNU_LD)
    set(mm_partial_ld ${MM_GNU_LD})
  endif()
endif()
foreach(set IN LISTS MM_KERNEL_SETS)
  set(lib makemore_kernels_${set})
  add_library(${lib} OBJECT ${PROJECT_SOURCE_DIR}/src/kernels/kernels.cpp)
  target_compile_features(${lib} PRIVATE cxx_std_20)
  target_compile_definitions(${lib} PRIVATE MM_KERNEL_SET=${set} EIGEN_NO_DEBUG EIGEN_MAX_ALIGN_BYTES=64
                                            EIGEN_MAX_STATIC_ALIGN_BYTES=64)
  target_compile_options(${lib} PRIVATE ${MM_WARNINGS} ${MM_KERNEL_FLAGS_${set}})
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    # std::sqrt may then skip setting errno (nothing here reads it), which lets the compiler
    # vectorize the optimizers' element loops (Adam, RMSprop): with errno, every element took a
    # scalar sqrt and a branch to sqrtf. Same IEEE sqrt and division, the same bits.
    target_compile_options(${lib} PRIVATE -fno-math-errno)
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # A function-local static of an inline function (Eigen's cache sizes) is otherwise a
    # STB_GNU_UNIQUE symbol, which objcopy leaves global: make it an ordinary weak one.
    target_compile_options(${lib} PRIVATE -fno-gnu-unique)
  endif()
  target_link_libraries(${lib} PRIVATE Eigen3::Eigen)
  string(TOUPPER ${set} upper)
  list(APPEND MM_KERNEL_DEFINITIONS MM_KERNELS_${upper})
  if(mm_n_sets EQUAL 1)
    list(APPEND MM_KERNEL_OBJECTS $<TARGET_OBJECTS:${lib}>)
    continue()
  endif()
  set(obj ${PROJECT_BINARY_DIR}/kernels/kernels_${set}.o)
  string(LENGTH ${set} len)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/kernels
    COMMAND ${mm_partial_ld} -r --force-group-allocation -o ${obj}.all.o $<TARGET_OBJECTS:${lib}>
    COMMAND ${CMAKE_OBJCOPY} --wildcard --keep-global-symbol=_ZN2mm7kernels${len}${set}* ${obj}.all.o ${obj}
    DEPENDS $<TARGET_OBJECTS:${lib}>
    COMMAND_EXPAND_LISTS VERBATIM
    COMMENT "Kernel set ${set}: its own symbols only")
  set_source_files_properties(${obj} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
  list(APPEND MM_KERNEL_OBJECTS ${obj})
endforeach()
