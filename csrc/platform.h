/* PLATFORM: the OCI platform the compiler is targeting, as the greeting names it (shared by hello.c and
 * hello-tiny.c, so both binaries say the same thing on every architecture hello-world ships). */
#ifndef FROMSCRATCH_PLATFORM_H
#define FROMSCRATCH_PLATFORM_H

#if defined(__x86_64__)
#define PLATFORM "linux/amd64"
#elif defined(__aarch64__)
#define PLATFORM "linux/arm64"
#elif defined(__arm__) && __ARM_ARCH >= 7
#define PLATFORM "linux/arm/v7"
#elif defined(__arm__) && __ARM_ARCH == 6
#define PLATFORM "linux/arm/v6"
#elif defined(__arm__)
#define PLATFORM "linux/arm/v5"
#elif defined(__i386__)
#define PLATFORM "linux/386"
#elif defined(__mips__) && defined(__LP64__) && defined(__MIPSEL__)
#define PLATFORM "linux/mips64le"
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
#define PLATFORM "linux/ppc64le"
#elif defined(__riscv) && __riscv_xlen == 64
#define PLATFORM "linux/riscv64"
#elif defined(__s390x__)
#define PLATFORM "linux/s390x"
#else
#define PLATFORM "an unknown platform"
#endif

#define GREETING                                   \
    "Hello from fromscratch!\n"                     \
    "This static binary was built for " PLATFORM " and runs in a FROM scratch image.\n"

#endif
