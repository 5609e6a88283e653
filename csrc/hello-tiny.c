/* hello-tiny: the same greeting without any libc, for the smallest FROM scratch image. The program is two
 * system calls (write, then exit) made straight to the kernel, one inline-assembly stub per architecture
 * that hello-world ships. Build it with -nostdlib -static (invoke build-hello --tiny does). */
#include "platform.h"

static const char greeting[] = GREETING;

#if defined(__x86_64__)
#define SYS_WRITE 1
#define SYS_EXIT 60
static long sys3(long n, long a, long b, long c)
{
    register long rax __asm__("rax") = n;
    register long rdi __asm__("rdi") = a;
    register long rsi __asm__("rsi") = b;
    register long rdx __asm__("rdx") = c;
    __asm__ volatile("syscall" : "+r"(rax) : "r"(rdi), "r"(rsi), "r"(rdx) : "rcx", "r11", "memory");
    return rax;
}
#elif defined(__i386__)
#define SYS_WRITE 4
#define SYS_EXIT 1
static long sys3(long n, long a, long b, long c)
{
    __asm__ volatile("int $0x80" : "+a"(n) : "b"(a), "c"(b), "d"(c) : "memory");
    return n;
}
#elif defined(__aarch64__) || (defined(__riscv) && __riscv_xlen == 64)
/* the generic syscall table (asm-generic/unistd.h) */
#define SYS_WRITE 64
#define SYS_EXIT 93
static long sys3(long n, long a, long b, long c)
{
#if defined(__aarch64__)
    register long nr __asm__("x8") = n;
    register long a0 __asm__("x0") = a;
    register long a1 __asm__("x1") = b;
    register long a2 __asm__("x2") = c;
    __asm__ volatile("svc #0" : "+r"(a0) : "r"(nr), "r"(a1), "r"(a2) : "memory");
#else
    register long nr __asm__("a7") = n;
    register long a0 __asm__("a0") = a;
    register long a1 __asm__("a1") = b;
    register long a2 __asm__("a2") = c;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(nr), "r"(a1), "r"(a2) : "memory");
#endif
    return a0;
}
#elif defined(__arm__)
/* EABI: the number in r7, whatever the ARM version */
#define SYS_WRITE 4
#define SYS_EXIT 1
static long sys3(long n, long a, long b, long c)
{
    register long nr __asm__("r7") = n;
    register long a0 __asm__("r0") = a;
    register long a1 __asm__("r1") = b;
    register long a2 __asm__("r2") = c;
    __asm__ volatile("svc #0" : "+r"(a0) : "r"(nr), "r"(a1), "r"(a2) : "memory");
    return a0;
}
#elif defined(__mips__) && defined(__LP64__)
/* n64 ABI numbers start at 5000; a3 comes back as the error flag */
#define SYS_WRITE 5001
#define SYS_EXIT 5058
static long sys3(long n, long a, long b, long c)
{
    register long v0 __asm__("$2") = n;
    register long a0 __asm__("$4") = a;
    register long a1 __asm__("$5") = b;
    register long a2 __asm__("$6") = c;
    register long a3 __asm__("$7");
    __asm__ volatile("syscall"
                     : "+r"(v0), "=r"(a3)
                     : "r"(a0), "r"(a1), "r"(a2)
                     : "$1", "$3", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15", "$24", "$25",
                       "hi", "lo", "memory");
    return a3 ? -v0 : v0;
}
#elif defined(__powerpc64__)
#define SYS_WRITE 4
#define SYS_EXIT 1
static long sys3(long n, long a, long b, long c)
{
    register long r0 __asm__("r0") = n;
    register long r3 __asm__("r3") = a;
    register long r4 __asm__("r4") = b;
    register long r5 __asm__("r5") = c;
    __asm__ volatile("sc"
                     : "+r"(r0), "+r"(r3), "+r"(r4), "+r"(r5)
                     :
                     : "r6", "r7", "r8", "r9", "r10", "r11", "r12", "cr0", "ctr", "xer", "memory");
    return r3;
}
#elif defined(__s390x__)
#define SYS_WRITE 4
#define SYS_EXIT 1
static long sys3(long n, long a, long b, long c)
{
    register long r1 __asm__("r1") = n;
    register long r2 __asm__("r2") = a;
    register long r3 __asm__("r3") = b;
    register long r4 __asm__("r4") = c;
    __asm__ volatile("svc 0" : "+r"(r2) : "r"(r1), "r"(r3), "r"(r4) : "memory");
    return r2;
}
#else
#error "hello-tiny.c has no system call stub for this architecture"
#endif

/* The kernel jumps here with no C runtime at all: nothing to return to, so exit is the last word. */
__attribute__((noreturn)) void _start(void)
{
    long len = (long)sizeof greeting - 1;
    long written = sys3(SYS_WRITE, 1, (long)greeting, len);
    sys3(SYS_EXIT, written == len ? 0 : 1, 0, 0);
    for (;;) {
    }
}

#if defined(__mips__)
/* MIPS linkers enter at __start, and n64 code finds its data through $gp, which each function derives
 * from its own address in $25 ($t9): the kernel sets neither, so load $25 and jump. */
__asm__(".text\n"
        ".globl __start\n"
        "__start:\n"
        "  .set push\n"
        "  .set noreorder\n"
        "  lui $25, %highest(_start)\n"
        "  daddiu $25, $25, %higher(_start)\n"
        "  dsll $25, $25, 16\n"
        "  daddiu $25, $25, %hi(_start)\n"
        "  dsll $25, $25, 16\n"
        "  daddiu $25, $25, %lo(_start)\n"
        "  jr $25\n"
        "  nop\n"
        "  .set pop\n");
#endif
