/* gs_mem.h -- advice to the kernel about the worker's large buffers (issue 22). */
#ifndef GS_MEM_H
#define GS_MEM_H

#include <apr.h>
#include <apr_errno.h>

/* Buffers of at least this many bytes are worth backing with transparent huge pages ... */
#define GS_MEM_HUGE_AT (2 * 1024 * 1024)
/* ... and of at least this many, worth having their pages at once. */
#define GS_MEM_POPULATE_AT (64 * 1024)

/* For a buffer about to be filled whole, [p, p + len), memory of ours that nothing but us
 * uses: asks for transparent huge pages (madvise MADV_HUGEPAGE) over its 2 MB-aligned part,
 * then for all its pages at once (MADV_POPULATE_WRITE, Linux 5.14). Filling a large buffer
 * otherwise takes a page fault per 4 KB: on this project's machine (a virtual machine) a fault
 * cost 15-18 us, 4 ms per MB filled, 2 ms populated, 0.1 ms in huge pages; a sync of the content
 * mix filled some 450 MB of fresh memory. Advice only: the status says whether the kernel took
 * it (not Linux, an older kernel, THP off: APR_ENOTIMPL or the errno), and the buffer works the
 * same either way. Its pages are resident from here on, used or not. */
apr_status_t gs_mem_huge(void *p, apr_size_t len);

#endif /* GS_MEM_H */
