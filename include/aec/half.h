/* half.h - IEEE 754 binary16 <-> binary32 conversion (round to nearest even). */
#ifndef AEC_HALF_H
#define AEC_HALF_H

#include <stdint.h>

float aec_f16_to_f32(uint16_t h);
uint16_t aec_f32_to_f16(float f);

#endif
