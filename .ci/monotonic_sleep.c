/* Preloaded before libfaketime in .ci/faketime-run so that Python >= 3.11 can sleep under it.
 *
 * We fake the calendar (CLOCK_REALTIME) and leave the monotonic clock alone
 * (FAKETIME_DONT_FAKE_MONOTONIC=1): timeouts, sleeps and rate limiters keep real durations.
 * Python 3.11's time.sleep() waits with clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...),
 * and libfaketime 0.9.10 (Debian 12) still shifts that absolute monotonic deadline by the fake
 * offset, so the kernel gets a negative time and the sleep fails with EINVAL
 * (wolfcw/libfaketime issue #426). Monotonic sleeps therefore go straight to the kernel here;
 * every other clock is passed on to libfaketime unchanged.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *request, struct timespec *remain) {
    if (clock_id == CLOCK_MONOTONIC || clock_id == CLOCK_MONOTONIC_RAW || clock_id == CLOCK_BOOTTIME) {
        long rc = syscall(SYS_clock_nanosleep, clock_id, flags, request, remain);
        return rc == 0 ? 0 : errno;  /* clock_nanosleep returns the error number, not -1 */
    }
    static int (*next)(clockid_t, int, const struct timespec *, struct timespec *);
    if (!next) {
        next = (int (*)(clockid_t, int, const struct timespec *, struct timespec *))dlsym(RTLD_NEXT, "clock_nanosleep");
    }
    return next(clock_id, flags, request, remain);
}
