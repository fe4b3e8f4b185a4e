/* stb_decode.h - internal to src/image: the stb_image decoder compiled in
 * stb_decode.c, every call under a memory budget.
 *
 * Code that decodes untrusted bytes must come here, not to the stbi_load* /
 * stbi_info* that Debian's libstb exports (those have no budget);
 * stb_image_write and stb_image_resize still come from libstb.
 */
#ifndef AEC_IMAGE_STB_DECODE_H
#define AEC_IMAGE_STB_DECODE_H

#include <stddef.h>
#include <stdint.h>

/* What the decoder may hold at once while it reads only a header. */
#define AEC_STBI_INFO_BUDGET ((size_t)1 << 20)

/* The budget for decoding an image whose header declares w x h, from len
 * bytes of input (the rule and its reasons are in stb_decode.c). Never
 * refuses an image stb can decode within the size it declares. */
size_t aec_stbi_decode_budget(int w, int h, size_t len);

/* stbi_info_from_memory under AEC_STBI_INFO_BUDGET. */
int aec_stbi_info_from_memory(const uint8_t *buf, int len, int *w, int *h, int *comp);

/* stbi_load_from_memory under `budget` bytes: an allocation that would take
 * the decoder past it fails, and so does the decode (stb says "outofmem").
 * Free the result with aec_stbi_image_free. */
uint8_t *aec_stbi_load_from_memory(const uint8_t *buf, int len, size_t budget, int *w, int *h,
                                   int *comp, int req_comp);

/* Why the last aec_stbi_* call on this thread failed (stb's short code). */
const char *aec_stbi_failure_reason(void);

/* Nonzero if the last aec_stbi_* call on this thread was refused memory
 * because of its budget (rather than by malloc). */
int aec_stbi_budget_exceeded(void);

/* The most bytes the last aec_stbi_* call on this thread held at once. */
size_t aec_stbi_peak(void);

void aec_stbi_image_free(void *pixels);

#endif
