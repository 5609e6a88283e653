/* The greeting fromscratch builds by default: a static program that names the platform it was built for. */
#include <unistd.h>

#include "platform.h"

static const char greeting[] = GREETING;

int main(void)
{
    return write(1, greeting, sizeof greeting - 1) == (ssize_t)(sizeof greeting - 1) ? 0 : 1;
}
