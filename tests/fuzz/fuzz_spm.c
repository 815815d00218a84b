/* libFuzzer target for the SentencePiece tokenizer.model (protobuf) parser
 * of the HF converter: any input parses or fails with HS_EFORMAT /
 * HS_ENOMEM naming the input; never a read past the buffer. */
#include "model/convert_vocab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hs_err err;
    int64_t n = -1;
    int rc = hs_convert_spm_check(data, size, "fuzz", &n, &err);
    if (rc != HS_OK && (rc != HS_EFORMAT || strncmp(err.msg, "fuzz", 4)) && rc != HS_ENOMEM)
        abort();
    if (rc == HS_OK && n <= 0)
        abort();
    return 0;
}
