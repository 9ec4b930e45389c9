/* gs_mem.c -- see gs_mem.h */
#include <errno.h>
#include <stdint.h>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "gs_mem.h"

#define HUGE_PAGE ((uintptr_t)2 * 1024 * 1024)

apr_status_t gs_mem_huge(void *p, apr_size_t len)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    uintptr_t start = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    uintptr_t end = ((uintptr_t)p + len) & ~(HUGE_PAGE - 1);
    uintptr_t page = (uintptr_t)4096;
    apr_status_t rv = APR_SUCCESS;

    if (len >= GS_MEM_HUGE_AT && end > start
        && madvise((void *)start, (size_t)(end - start), MADV_HUGEPAGE) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
#ifdef MADV_POPULATE_WRITE
    /* then the whole buffer's pages at once (one call, not a fault each: half the time here) */
    start = ((uintptr_t)p + page - 1) & ~(page - 1);
    end = ((uintptr_t)p + len) & ~(page - 1);
    if (len >= GS_MEM_POPULATE_AT && end > start
        && madvise((void *)start, (size_t)(end - start), MADV_POPULATE_WRITE) != 0
        && rv == APR_SUCCESS) {
        rv = APR_FROM_OS_ERROR(errno);
    }
#endif
    return rv;
#else
    (void)p;
    (void)len;
    return APR_ENOTIMPL;
#endif
}
