/* Test support: a copy of an all-f32 GGUF with every 2-D tensor whose rows fit
 * the type's blocks quantized by the reference quantizer (the one that writes
 * model files); other tensors stay f32. Asserts on any failure. */
#ifndef HS_TEST_REQUANT_H
#define HS_TEST_REQUANT_H

void test_requantize(const char *src, const char *dst, int type);

#endif
